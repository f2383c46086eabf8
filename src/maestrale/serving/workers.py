"""`maestrale serve --workers N`: N server processes on one port (SO_REUSEPORT) under a supervisor.

>>> env = worker_env(refs=["pv-nrel-50@champion"], host="0.0.0.0", port=8000)  # doctest: +SKIP
>>> Supervisor(4, env).run()  # until SIGTERM/SIGINT; 0, or 1 when workers keep dying  # doctest: +SKIP
0

Each worker is a process of its own (`python -m maestrale.serving.workers`) that loads the models,
then binds its own listening socket with SO_REUSEPORT: the kernel spreads incoming connections over
the listening sockets of the group, so no process accepts for the others (uvicorn's `--workers`
shares one socket that all processes wait on instead). The gRPC port is bound the same way: grpcio
sets SO_REUSEPORT by default on Linux (`grpc.so_reuseport`). A worker listens only once its models
are loaded and its lifespan started, so the kernel never routes a connection to a worker that is
still loading. Each worker follows its aliases itself (`maestrale.serving.reload`: its own reload
queue, its own poll), logs its predictions itself (its own `PredictionLogger`) and exports its own
/metrics, labelled with its pid and index (`maestrale_serving_process_info`): a scrape reaches one
worker, so Prometheus sees one worker per scrape (prefer pods to workers when per-pod totals matter).

The supervisor starts the workers in process groups of their own, so a Ctrl-C in the terminal
reaches the supervisor only and each worker gets exactly one signal (a second one makes uvicorn skip
its shutdown, which flushes the prediction log). On SIGTERM or SIGINT it sends each worker one
SIGTERM and waits for them (30 s, then SIGKILL); a second signal kills them at once. A worker that
dies is restarted after a backoff (1, 2, 4 … 30 s); a worker that dies `max_failures` times in a
row, each time within `stable_s` seconds of starting, makes the supervisor stop the others and exit
1. On Linux, a worker dies with its supervisor (PR_SET_PDEATHSIG), so a supervisor killed with
SIGKILL leaves no orphan holding the port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maestrale.errors import ConfigError

WORKER_ENV = "MAESTRALE_SERVE_WORKER"  # the worker's index, 0..N-1
PORT_ENV = "MAESTRALE_SERVE_PORT"
LOG_LEVEL_ENV = "MAESTRALE_SERVE_LOG_LEVEL"
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
WORKERS_PER_CPU = 4


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, as a container's cpuset sets it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_workers(n: int, cpus: int | None = None) -> None:
    """Refuse a worker count outside 1..4 × CPUs, or N > 1 where SO_REUSEPORT does not balance.

    >>> check_workers(2, cpus=2)
    >>> check_workers(9, cpus=2)
    Traceback (most recent call last):
    ...
    maestrale.errors.ConfigError: --workers 9 is more than 4 per CPU (2 CPUs here: at most 8). Each \
worker holds its own copy of the models and one CPU serves at most a few; use --workers 1..8, or \
more replicas (pods) for more throughput
    """
    cpus = cpus or usable_cpus()
    most = WORKERS_PER_CPU * cpus
    if n < 1:
        raise ConfigError(f"--workers {n} is not a worker count: use --workers 1..{most}")
    if n > most:
        raise ConfigError(
            f"--workers {n} is more than {WORKERS_PER_CPU} per CPU ({cpus} CPUs here: at most {most}). "
            "Each worker holds its own copy of the models and one CPU serves at most a few; use "
            f"--workers 1..{most}, or more replicas (pods) for more throughput"
        )
    if n > 1 and (sys.platform != "linux" or not hasattr(socket, "SO_REUSEPORT")):
        raise ConfigError(
            f"--workers {n} needs Linux, whose SO_REUSEPORT spreads connections over the workers "
            f"(this is {sys.platform}); run --workers 1 here, or several servers behind a load balancer"
        )


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def ensure_free(host: str, port: int, option: str) -> None:
    """ConfigError unless host:port can be bound now: SO_REUSEPORT would otherwise let the workers join
    another server already listening there (of the same user) and silently share its traffic."""
    probe = socket.socket(_family(host), socket.SOCK_STREAM)
    # SO_REUSEADDR as the servers set it: connections of a server just stopped (TIME_WAIT) do not
    # block the port, a listening socket does (with or without SO_REUSEPORT)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): is another server using it? Stop it or "
            f"choose another {option}"
        ) from None
    finally:
        probe.close()


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT, not yet listening (uvicorn listens on it)."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"worker cannot bind {host}:{port} ({exc.strerror}): is it in use? (--port)"
        ) from None
    return sock


def worker_env(
    base: Mapping[str, str] | None = None, *, refs: Sequence[str], host: str, port: int,
    grpc_port: int | None = None, log: bool = True, reload_poll: float = 30.0,
    trust_types: Sequence[str] = (), auth: bool = False, token_file: str | None = None,
    log_level: str = "info",
) -> dict[str, str]:  # fmt: skip
    """The environment the workers build their app from (`maestrale.serving.app.app_from_env`)."""
    env = dict(os.environ if base is None else base)
    env.update({
        "MAESTRALE_SERVE_REFS": " ".join(refs), "MAESTRALE_SERVE_LOG": "1" if log else "0",
        "MAESTRALE_SERVE_RELOAD_POLL": str(reload_poll), "MAESTRALE_SERVE_TRUST": " ".join(trust_types),
        "MAESTRALE_SERVE_HOST": host, PORT_ENV: str(port), LOG_LEVEL_ENV: log_level,
        # the supervisor decided auth for the host it binds: the workers take that decision as is
        "MAESTRALE_SERVE_AUTH": "on" if auth else "off",
    })  # fmt: skip
    env.pop("MAESTRALE_SERVE_GRPC_PORT", None)
    if grpc_port is not None:
        env["MAESTRALE_SERVE_GRPC_PORT"] = str(grpc_port)
    if token_file is not None:
        env["MAESTRALE_SERVE_TOKEN_FILE"] = token_file
    return env


@dataclass
class _Slot:
    """One worker position: its process, when it started, its run of quick deaths, its restart time."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    last_code: int | None = None


@dataclass
class Supervisor:
    """Run `n` workers, restart the dead ones, forward SIGTERM/SIGINT; `run()` returns the exit code.

    `command` starts one worker (it gets `MAESTRALE_SERVE_WORKER=<index>` on top of `env`); `say`
    prints the supervisor's lines (stderr by default).
    """

    n: int
    env: Mapping[str, str]
    command: Sequence[str] = (sys.executable, "-m", "maestrale.serving.workers")
    backoff: Sequence[float] = BACKOFF_S
    max_failures: int = 5
    stable_s: float = 30.0
    stop_timeout_s: float = 30.0
    say: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    slots: list[_Slot] = field(init=False)
    _signals: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.slots = [_Slot(i) for i in range(self.n)]

    def pids(self) -> list[int]:
        """The pids of the workers running now."""
        return [s.proc.pid for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def _start(self, slot: _Slot) -> None:
        env = {**self.env, WORKER_ENV: str(slot.index)}
        # a group of its own: a terminal's Ctrl-C reaches the supervisor only, which forwards it once
        slot.proc = subprocess.Popen(list(self.command), env=env, process_group=0)
        slot.started, slot.restart_at = time.monotonic(), None
        self.say(f"worker {slot.index}: started, pid {slot.proc.pid}")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals.append(signum)

    def run(self) -> int:
        """Start the workers and supervise them until a signal (0) or until they keep dying (1)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._start(slot)
            failed = self._supervise()
            code = self._stop()
            if failed:
                self.say(f"error: {failed}")
                return 1
            return code
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _supervise(self) -> str | None:
        """Loop until a signal (None) or a worker that keeps dying (the message saying so)."""
        while not self._signals:
            now = time.monotonic()
            for slot in self.slots:
                if slot.proc is not None and (code := slot.proc.poll()) is not None:
                    failed = self._died(slot, code, now)
                    if failed:
                        return failed
                elif slot.proc is None and slot.restart_at is not None and now >= slot.restart_at:
                    self._start(slot)
            time.sleep(0.1)
        return None

    def _died(self, slot: _Slot, code: int, now: float) -> str | None:
        """Schedule the restart of a dead worker; the failure message when it keeps dying."""
        assert slot.proc is not None
        lived = now - slot.started
        slot.failures = slot.failures + 1 if lived < self.stable_s else 1
        slot.last_code, pid, slot.proc = code, slot.proc.pid, None
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        if slot.failures >= self.max_failures:
            return (
                f"worker {slot.index} died {slot.failures} times in a row, each within {self.stable_s:.0f} s "
                f"of starting (last: pid {pid}, {how}); its log above says why. Stopping all workers"
            )
        delay = self.backoff[min(slot.failures, len(self.backoff)) - 1]
        slot.restart_at = now + delay
        self.say(
            f"worker {slot.index}: pid {pid} died after {lived:.1f} s ({how}); restarting in {delay:g} s"
        )
        return None

    def _stop(self) -> int:
        """SIGTERM the running workers (for SIGINT too: a worker still loading its models would print a
        KeyboardInterrupt traceback), wait for them; SIGKILL on a second signal or after the timeout."""
        running = [s for s in self.slots if s.proc is not None]
        seen = len(self._signals)
        for slot in running:
            assert slot.proc is not None
            self.say(f"worker {slot.index}: pid {slot.proc.pid} stopping")
            _send(slot.proc, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while any(s.proc is not None and s.proc.poll() is None for s in running):
            if len(self._signals) > seen or time.monotonic() > deadline:
                for slot in running:
                    assert slot.proc is not None
                    if slot.proc.poll() is None:
                        self.say(f"worker {slot.index}: pid {slot.proc.pid} killed")
                        _send(slot.proc, signal.SIGKILL)
                seen = len(self._signals)
            time.sleep(0.05)
        codes = [s.proc.returncode for s in running if s.proc is not None]
        # -SIGTERM: a worker stopped before uvicorn took over its signals (still loading): a clean stop too
        return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1


def _send(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it died meanwhile: nothing to stop
        proc.send_signal(signum)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent (the supervisor) dies, even by SIGKILL."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except OSError:  # no glibc (musl): the supervisor's own SIGTERM handling still stops the workers
        return
    if os.getppid() == 1:  # the supervisor died before prctl: do not outlive it
        sys.exit(1)


def main() -> None:
    """One worker: build the app from the environment, bind the port with SO_REUSEPORT, serve."""
    _die_with_parent()
    import uvicorn

    from maestrale.serving.app import app_from_env

    index = int(os.environ.get(WORKER_ENV, "0"))
    host = os.environ.get("MAESTRALE_SERVE_HOST", "127.0.0.1")
    port = int(os.environ[PORT_ENV])
    try:
        app = app_from_env()
        sock = reuseport_socket(host, port)  # after loading: no connection waits for a loading worker
    except ConfigError as exc:
        print(f"error: worker {index}: {exc.message}", file=sys.stderr, flush=True)
        sys.exit(1)
    app.state.metrics.identify(index)
    level = os.environ.get(LOG_LEVEL_ENV, "info")
    # uvicorn re-raises the signal that stopped it once it has shut down; a no-op handler then lets the
    # worker exit 0 instead of dying by SIGTERM (or with a KeyboardInterrupt traceback)
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: None)
    grpc_port = os.environ.get("MAESTRALE_SERVE_GRPC_PORT")
    serving = f"worker {index}: pid {os.getpid()} serving http://{host}:{port}" + (
        f" and gRPC {host}:{grpc_port}" if grpc_port else ""
    )

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:  # listening now: say which pid serves
                print(serving, file=sys.stderr, flush=True)

    server = Server(uvicorn.Config(app, host=host, port=port, log_level=level, lifespan="on"))
    server.run(sockets=[sock])
    if not server.started:  # the lifespan failed (a gRPC port in use): say so by the exit code
        sys.exit(3)


if __name__ == "__main__":
    main()
