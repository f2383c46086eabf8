"""Each training job's thread budget: cores (affinity capped by the cgroup's CPU quota) ÷ live training
slots on the host, overridable, and applied in the job's process to OpenMP and BLAS."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from maestrale.config import load_settings
from maestrale.errors import ConfigError
from maestrale.training.requests import TrainingRequests
from maestrale.training.service import wait_for
from maestrale.training.threads import TrainingSlots, available_cores, budget, cgroup_cpu_limit
from maestrale.training.worker import TrainingWorker

# hgb: OpenMP; its ridge baselines and metrics: BLAS. Small, so a job takes a second or two.
SPEC = {
    "name": "pv-threads",
    "data": {"dataset": "nrel_system50", "freq": "1h"},
    "target": "power_kw",
    "feature_set": "pv_features",
    "estimator": "hgb",
    "params": {"max_iter": 5, "early_stopping": False},
    "train_window": {"start": "2011-06-01", "end": "2011-07-31"},
    "split": {"holdout": {"test_start": "2011-07-15"}},
    "capacity": 3.4,
}


@pytest.fixture(autouse=True)
def _no_thread_settings(monkeypatch):
    # the tests choose these; a value in the caller's environment must not decide them
    monkeypatch.delenv("MAESTRALE_TRAIN_THREADS", raising=False)
    monkeypatch.delenv("MAESTRALE_TRAIN_SLOTS_DIR", raising=False)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_cgroup_quota_caps_the_cores(tmp_path):
    # cgroup v2: the pod's cpu.max (limits: cpu: 1500m) under a parent without a limit
    v2 = _tree(tmp_path / "v2", {"cpu.max": "max 100000\n", "kubepods/pod1/cpu.max": "150000 100000\n"})
    proc = _tree(tmp_path / "p", {"v2": "0::/kubepods/pod1\n", "v1": "4:cpu,cpuacct:/docker/c1\n0::/\n"})
    assert cgroup_cpu_limit(v2, proc / "v2") == 1.5
    assert available_cores(v2) >= 1  # this process's own cgroup file, not the fake one: just sane
    # a limit higher up the tree applies to everything below it
    _tree(v2, {"kubepods/cpu.max": "100000 100000\n"})
    assert cgroup_cpu_limit(v2, proc / "v2") == 1.0
    # cgroup v1: cfs_quota_us / cfs_period_us; -1 is no limit
    v1 = _tree(
        tmp_path / "v1",
        {
            "cpu,cpuacct/docker/c1/cpu.cfs_quota_us": "300000\n",
            "cpu,cpuacct/docker/c1/cpu.cfs_period_us": "100000\n",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_limit(v1, proc / "v1") == 3.0
    # no limit anywhere, unreadable or malformed files: no limit known (affinity decides)
    assert cgroup_cpu_limit(_tree(tmp_path / "none", {"cpu.max": "max 100000\n"}), proc / "v2") is None
    assert cgroup_cpu_limit(_tree(tmp_path / "bad", {"cpu.max": "lots\n"}), proc / "v2") is None
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path / "no-proc") is None


def test_budget_is_cores_over_slots_at_least_one_and_the_override_wins():
    assert budget(override=None, cores=8, slots=3) == 2
    assert budget(override=None, cores=2, slots=2) == 1
    assert budget(override=None, cores=2, slots=5) == 1  # oversubscribed anyway: never 0
    assert budget(override=4, cores=2, slots=2) == 4


def test_slots_count_live_workers_and_forget_a_killed_one(tmp_path):
    folder = tmp_path / "slots"
    holder = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from maestrale.training.threads import TrainingSlots
        TrainingSlots(Path({str(folder)!r}), 2).acquire()
        print("held", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with TrainingSlots(folder, 1) as ours:
            assert ours.count() == 3  # the other worker's 2 and our 1
            os.kill(proc.pid, signal.SIGKILL)  # its locks go with it; its files stay behind
            proc.wait(30)
            assert len(list(folder.glob("*.slot"))) == 3
            assert ours.count() == 1  # and the count removed the stale files
            assert len(list(folder.glob("*.slot"))) == 1
        assert list(folder.glob("*.slot")) == [] and TrainingSlots(folder).count() == 0
    finally:
        proc.kill()
        proc.wait(30)


def _train_one(tmp_path: Path, memory_bus, caplog, **settings: object) -> dict:
    """One request through a worker on the memory bus; the threadpoolctl report of its child."""
    config = load_settings(home=tmp_path / "home", bus_namespace=memory_bus.namespace, **settings)
    requests = TrainingRequests(config.database_url)
    caplog.set_level(logging.INFO, logger="maestrale.training.worker")
    worker = TrainingWorker(config, memory_bus, worker_id="threads").start()
    try:
        [record] = requests.submit({**SPEC, "name": f"pv-threads-{uuid.uuid4().hex[:6]}"})
        from maestrale.bus.relay import OutboxRelay

        OutboxRelay(config.database_url, memory_bus).run_once()
        [done] = wait_for(requests, [record.id], timeout=120)
    finally:
        worker.stop()
    assert done.status == "completed", done.error
    [line] = [r for r in caplog.records if getattr(r, "threads", None) and record.id in r.getMessage()]
    return line.threads  # type: ignore[attr-defined]


def test_a_job_runs_with_cores_over_the_live_slots(tmp_path, memory_bus, caplog):
    slots = tmp_path / "slots"
    with TrainingSlots(slots, 1):  # another worker on this host, with one training slot
        seen = _train_one(tmp_path, memory_bus, caplog, train_slots_dir=slots)
    expected = max(1, available_cores() // 2)  # this worker's 1 slot + the other's 1
    assert seen["budget"] == expected
    # read back in the child with threadpoolctl, after the limit: both OpenMP (hgb) and BLAS obey it
    assert seen["openmp"] and set(seen["openmp"]) == {expected}
    assert seen["blas"] and set(seen["blas"]) == {expected}
    assert list(slots.glob("*.slot")) == []  # the worker gave its slot back when it stopped


def test_the_override_wins_over_the_computed_budget(tmp_path, memory_bus, caplog):
    with TrainingSlots(tmp_path / "slots", 8):  # 8 other slots: the computed budget would be 1
        seen = _train_one(tmp_path, memory_bus, caplog, train_slots_dir=tmp_path / "slots", train_threads=3)
    assert seen["budget"] == 3 and set(seen["openmp"]) == {3} and set(seen["blas"]) == {3}


def test_a_bad_thread_setting_fails_at_start_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MAESTRALE_TRAIN_THREADS", "0")
    with pytest.raises(ConfigError, match="MAESTRALE_TRAIN_THREADS: Input should be greater than or equal"):
        load_settings()
