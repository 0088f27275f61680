"""The worker pool with a hard deadline per item: stuck items are killed, the pool goes on."""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest

from assay.errors import AssayError
from assay.verify.deadline import DeadlinePool


def work(item: object) -> object:
    """Module-level (workers import it by name): behaves as the item says."""
    if item == "hang":
        while True:  # a busy loop: no signal or timeout inside the worker can be relied on
            pass
    if item == "sleep":
        time.sleep(3600)
    if item == "exit":
        os._exit(7)
    if item == "raise":
        raise ValueError("bad item")
    if item == "memory":
        return len(bytearray(4 * 1024**3))
    if item == "pid":
        time.sleep(0.2)  # long enough for both workers to take items
        return os.getpid()
    if item == "unpicklable":
        return lambda: None
    return item * 2  # type: ignore[operator]


@pytest.fixture
def pool() -> DeadlinePool:
    p = DeadlinePool(work, workers=2, deadline_s=1.0, memory_mb=512)
    yield p
    p.close()


def test_results_come_back_in_order(pool: DeadlinePool) -> None:
    out = pool.map(list(range(50)))
    assert [o.value for o in out] == [2 * i for i in range(50)]
    assert all(o.ok for o in out)


def test_a_stuck_item_is_killed_within_its_deadline_and_the_pool_goes_on(pool: DeadlinePool) -> None:
    started = time.monotonic()
    out = pool.map([1, "hang", 2, "sleep", 3])
    elapsed = time.monotonic() - started
    assert [o.status for o in out] == ["ok", "timeout", "ok", "timeout", "ok"]
    assert [out[0].value, out[2].value, out[4].value] == [2, 4, 6]
    assert 1.0 <= out[1].seconds < 2.5
    assert elapsed < 4.0  # the two stuck items ran side by side, each killed after ~1 s
    assert pool.counters["timeouts"] == 2
    assert [o.value for o in pool.map([10, 20])] == [20, 40]  # replaced workers serve new items


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_killed_workers_leave_no_process_behind(pool: DeadlinePool) -> None:
    first = {o.value for o in pool.map(["pid", "pid", "pid", "pid"])}
    assert len(first) == 2
    out = pool.map(["hang", "hang"])
    assert [o.status for o in out] == ["timeout", "timeout"]
    time.sleep(0.2)
    assert all(_gone(pid) for pid in first)  # both stuck workers were killed, not left running
    second = {o.value for o in pool.map(["pid", "pid", "pid", "pid"])}
    assert second and not second & first
    pool.close()
    time.sleep(0.5)
    assert all(_gone(pid) for pid in second)


def test_crashes_errors_and_bad_results_are_reported_per_item(pool: DeadlinePool) -> None:
    out = pool.map(["exit", 1, "raise", "unpicklable", "memory", 2])
    assert out[0].status == "crashed" and "exit code" in (out[0].error or "")
    assert out[1].value == 2
    assert out[2].status == "error" and "ValueError: bad item" in (out[2].error or "")
    assert out[3].status == "error" and "could not be sent back" in (out[3].error or "")
    assert out[4].status == "error" and "MemoryError" in (out[4].error or "")
    assert out[5].value == 4


def test_works_from_a_thread(pool: DeadlinePool) -> None:
    results: list[object] = []

    def run() -> None:
        results.append([o.status for o in pool.map([1, "hang", 2])])

    t = threading.Thread(target=run)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive()
    assert results == [["ok", "timeout", "ok"]]


def test_concurrent_maps_from_threads_are_served(pool: DeadlinePool) -> None:
    out: dict[int, list[object]] = {}

    def run(k: int) -> None:
        out[k] = [o.value for o in pool.map([k, k + 1])]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert out == {k: [2 * k, 2 * k + 2] for k in range(4)}


def test_uses_every_worker(pool: DeadlinePool) -> None:
    pids = {o.value for o in pool.map(["pid"] * 12)}
    assert len(pids) == 2


def test_a_worker_is_replaced_after_max_tasks() -> None:
    with DeadlinePool(work, workers=1, deadline_s=5, max_tasks=3) as p:
        pids = [o.value for o in p.map(["pid"] * 7)]
    assert len(set(pids)) == 3


def test_bad_configuration_is_one_clear_error() -> None:
    with pytest.raises(AssayError, match="deadline must be positive"):
        DeadlinePool(work, workers=1, deadline_s=0)
    p = DeadlinePool(work, workers=1, deadline_s=1)
    p.close()
    with pytest.raises(AssayError, match="closed"):
        p.map([1])
