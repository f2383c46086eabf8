"""The thread budget of a training job: the cores this host gives us ÷ the training slots on it.

Why: scikit-learn's HistGradientBoosting (OpenMP) and BLAS start one thread per core by default. Two
workers on two cores then run four spinning OpenMP threads on two cores, and each barrier waits for a
descheduled thread: 2 workers trained 40 models in 78 s where 1 took 41 s. So each job gets
`budget = cores // slots` threads (at least 1), applied with threadpoolctl to OpenMP and BLAS alike.

* `cores` (`available_cores`): the CPUs this process may run on (`sched_getaffinity`), capped by the
  CFS quota of its cgroup (`cpu.max` in cgroup v2, `cpu.cfs_quota_us` in v1): in Kubernetes a pod
  with `limits: cpu: 2` on a 64-core node gets 2, where affinity alone would say 64.
* `slots` (`TrainingSlots`): each running worker holds one lock file per training it may run at
  once (`--concurrency`) in a shared folder, `/dev/shm/maestrale-training-slots` by default
  (`MAESTRALE_TRAIN_SLOTS_DIR`). Counting the locked files counts the slots of live workers; a killed
  worker's lock goes with its process, so no stale count survives a `kill -9`. In Kubernetes each pod
  has its own `/dev/shm`, so the count is the pod's, matching the pod's own CPU limit.
* `MAESTRALE_TRAIN_THREADS` overrides the budget for every job of a worker.

>>> budget(override=None, cores=8, slots=4)
2
>>> budget(override=3, cores=8, slots=4)
3
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")
SLOTS_FOLDER = "maestrale-training-slots"
MAX_SLOT_FILES = 4096  # a count reads at most this many entries: the folder cannot make a job slow


def budget(*, override: int | None, cores: int, slots: int) -> int:
    """Threads for one job: `override` when set, else `cores // slots`, at least 1.

    >>> budget(override=None, cores=2, slots=3)
    1
    """
    if override is not None:
        return max(1, int(override))
    return max(1, cores // max(1, slots))


def _quota(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` line ("200000 100000"; "max 100000" = no limit)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    with contextlib.suppress(ValueError, ZeroDivisionError):
        quota, period = int(parts[0]), int(parts[1])
        if quota > 0 and period > 0:
            return quota / period
    return None


def _own_cgroups(proc_cgroup: Path) -> dict[str, str]:
    """Controller -> this process's cgroup path, from /proc/self/cgroup ("" is the v2 hierarchy)."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in proc_cgroup.read_text().splitlines()[:64]:
            _, controllers, path = [*line.split(":", 2), "", ""][:3]
            for name in controllers.split(",") if controllers else [""]:
                out[name] = path
    return out


def _ancestors(base: Path, path: str) -> list[Path]:
    """`base/path` and each of its parents up to `base`: a limit set higher up applies too."""
    here = base / path.strip("/") if path.strip("/") else base
    out = [here]
    while here != base and base in here.parents:
        here = here.parent
        out.append(here)
    return out


def cgroup_cpu_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """CPUs the CFS quota of this process's cgroup allows (the smallest on its path), or None if none.

    >>> cgroup_cpu_limit(Path("/nonexistent"))  # no cgroup file system: no limit known
    """
    own = _own_cgroups(proc_cgroup)
    limits: list[float] = []
    for folder in _ancestors(root, own.get("", "")):  # cgroup v2 (and a container's own namespace)
        with contextlib.suppress(OSError):
            if (q := _quota((folder / "cpu.max").read_text())) is not None:
                limits.append(q)
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # cgroup v1
        for folder in _ancestors(root / mount, own.get("cpu", "")):
            with contextlib.suppress(OSError, ValueError):
                quota = int((folder / "cpu.cfs_quota_us").read_text())
                period = int((folder / "cpu.cfs_period_us").read_text())
                if quota > 0 and period > 0:
                    limits.append(quota / period)
    return min(limits) if limits else None


def available_cores(root: Path = CGROUP_ROOT) -> int:
    """Whole CPUs this process may use: its affinity mask, capped by its cgroup's CFS quota.

    A quota of 1.5 CPUs gives 1: a second thread would be throttled half of each period.

    >>> available_cores() >= 1
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    return max(1, cores)


def default_slots_dir() -> Path:
    """`/dev/shm/maestrale-training-slots` (memory, per host or per pod), else under the temp folder."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / SLOTS_FOLDER


class TrainingSlots:
    """The training slots of live workers on this host, as locked files in one folder.

    >>> with TrainingSlots(Path(tempfile.mkdtemp()), 2) as slots:
    ...     slots.count()
    2
    """

    def __init__(self, folder: Path | None = None, slots: int = 1) -> None:
        self.folder = Path(folder) if folder is not None else default_slots_dir()
        self.slots = max(1, slots)
        self._held: list[tuple[int, Path]] = []

    def __enter__(self) -> TrainingSlots:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()

    def acquire(self) -> TrainingSlots:
        """Hold this worker's slots until `release` or the end of the process (the kernel drops the locks)."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # shared by every user's workers, like /tmp
                os.chmod(self.folder, 0o1777)
            for _ in range(self.slots - len(self._held)):
                self._held.append(self._take())
        except OSError as exc:  # a read-only or full /dev/shm: count only our own slots
            log.warning(
                "training slots: cannot use %s (%s); each job's thread budget counts only this worker's "
                "slots: set MAESTRALE_TRAIN_SLOTS_DIR to a writable folder, or MAESTRALE_TRAIN_THREADS",
                self.folder, exc,
            )  # fmt: skip
        return self

    def _take(self) -> tuple[int, Path]:
        # locked under a temporary name, then renamed: a counter never sees it unlocked and takes it for stale
        name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        tmp = self.folder / f".{name}"
        fd = os.open(tmp, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        final = self.folder / f"{name}.slot"
        os.rename(tmp, final)
        return fd, final

    def release(self) -> None:
        """Give the slots back (unlink, then unlock)."""
        for fd, path in self._held:
            with contextlib.suppress(OSError):
                path.unlink()
            with contextlib.suppress(OSError):
                os.close(fd)
        self._held = []

    def count(self) -> int:
        """Slots held by live workers on this host (ours included); stale files are removed on the way."""
        live = 0
        with contextlib.suppress(OSError), os.scandir(self.folder) as entries:
            for i, entry in enumerate(entries):
                if i >= MAX_SLOT_FILES:
                    break
                if entry.name.endswith(".slot") and self._locked(Path(entry.path)):
                    live += 1
        return max(live, len(self._held))

    def _locked(self, path: Path) -> bool:
        if any(path == held for _, held in self._held):
            return True
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            return False  # gone meanwhile, or not ours to read
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True  # a live worker holds it
        else:
            with contextlib.suppress(OSError):
                path.unlink()  # its worker died; another user's stale file stays (sticky folder)
            return False
        finally:
            os.close(fd)


def apply_budget(threads: int) -> dict[str, Any]:
    """Limit OpenMP and BLAS to `threads` in this process; what threadpoolctl then reports, per API.

    Called in the training child, whose fork server already loaded scikit-learn's OpenMP runtime and
    BLAS (threadpoolctl limits loaded libraries only).

    >>> apply_budget(1)["openmp"] in ([1], [])
    True
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads)
    seen: dict[str, Any] = {"budget": threads, "openmp": [], "blas": []}
    for pool in threadpool_info():
        seen.setdefault(pool.get("user_api", "other"), []).append(int(pool.get("num_threads", 0)))
    return seen
