"""Where `FastInferMiddleware` answers a small request: on the event loop, or in the thread pool.

A model goes to the pool when its answers cost more than `SLOW_INLINE_S` of CPU on average, and
comes back when they are cheap again. Waiting (for the GIL, held by the prediction logger's flush;
a preemption) is not CPU: it must not send a cheap model to the pool for good, which is what a
wall-clock average did (every answer then paid the thread hop).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from types import SimpleNamespace
from typing import Any

from maestrale.serving.fast_route import SLOW_INLINE_S, FastInferMiddleware


class Recording(FastInferMiddleware):
    """The middleware with `_answer` replaced: it spends `cpu_s` of CPU or `wait_s` asleep, and records
    the thread it ran on."""

    def __init__(self) -> None:
        served = SimpleNamespace(name="pv", version=1)
        plane = SimpleNamespace(lookup=lambda name, version: served)
        super().__init__(app=None, plane=plane)  # type: ignore[arg-type]
        self.cpu_s = self.wait_s = 0.0
        self.threads: list[str] = []

    def _answer(self, served: Any, version: Any, body: bytes, binary: Any, caller: Any) -> tuple[bytes, None]:
        self.threads.append(threading.current_thread().name)
        if self.wait_s:
            time.sleep(self.wait_s)  # no CPU: as a wait for the GIL looks to this thread
        end = time.thread_time() + self.cpu_s
        while time.thread_time() < end:
            pass
        return b"{}", None


def _in_own_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run `main()` on an event loop of a thread of its own: the suite's browser tests leave a loop
    running in the main thread, where `asyncio.run` refuses to start another."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # re-raised in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="test-loop")
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the loop did not finish in 60 s"
    if failure:
        raise failure[0]


async def _call(mw: Recording, n: int) -> list[str]:
    """`n` POSTs of a small body; the threads their answers ran on."""
    scope = {
        "type": "http", "method": "POST", "path": "/v2/models/pv/infer", "headers": [],
        "app": SimpleNamespace(state=SimpleNamespace(auth=None)),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b'{"inputs": []}', "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    start = len(mw.threads)
    for _ in range(n):
        await mw(dict(scope), receive, send)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200] * n
    return mw.threads[start:]


def test_waiting_is_not_cpu_and_never_sends_a_cheap_model_to_the_pool() -> None:
    mw = Recording()
    mw.wait_s = 3 * SLOW_INLINE_S  # every answer takes 6 ms of wall time, none of it CPU

    async def run() -> None:
        loop = threading.current_thread().name
        threads = await _call(mw, 40)
        assert set(threads) == {loop}

    _in_own_loop(run)


def test_a_costly_model_goes_to_the_pool_and_comes_back_when_cheap() -> None:
    mw = Recording()

    async def run() -> None:
        loop = threading.current_thread().name
        mw.cpu_s = 3 * SLOW_INLINE_S
        threads = await _call(mw, 30)
        assert threads[0] == loop and threads[-1] != loop  # measured on the loop, then moved off it
        mw.cpu_s = 0.0  # the same version is cheap again: the pool's answers bring it back
        threads = await _call(mw, 60)
        assert threads[0] != loop and threads[-1] == loop

    _in_own_loop(run)
