"""KeyedPipeline: writes of one key in order and never two at once; different keys concurrently; bounded."""

from __future__ import annotations

import threading
import time

import pytest

from metallb_fast.k8s.pipeline import KeyedPipeline


def test_one_key_runs_in_order_and_alone_while_other_keys_run_beside_it() -> None:
    pipeline = KeyedPipeline("test", workers=4)
    order: dict[str, list[int]] = {"a": [], "b": []}
    running: dict[str, int] = {"a": 0, "b": 0}
    overlap: list[str] = []
    both = threading.Barrier(2, timeout=5)  # a's and b's first jobs must run at the same time
    lock = threading.Lock()

    def job(key: str, i: int) -> None:
        with lock:
            running[key] += 1
            if running[key] > 1:
                overlap.append(key)
        if i == 0:
            both.wait()
        time.sleep(0.002)
        with lock:
            order[key].append(i)
            running[key] -= 1

    try:
        for i in range(20):
            for key in ("a", "b"):
                pipeline.submit(key, lambda key=key, i=i: job(key, i))
        assert pipeline.flush(timeout=10)
    finally:
        pipeline.close()
    assert order == {"a": list(range(20)), "b": list(range(20))}
    assert overlap == []
    assert pipeline.pending == 0


def test_submit_waits_while_the_pipeline_is_full() -> None:
    pipeline = KeyedPipeline("test", workers=1, max_pending=2)
    release = threading.Event()
    submitted = threading.Event()
    try:
        pipeline.submit("a", lambda: release.wait(5))
        pipeline.submit("b", lambda: None)
        third = threading.Thread(target=lambda: (pipeline.submit("c", lambda: None), submitted.set()))
        third.start()
        assert not submitted.wait(0.2)
        release.set()
        assert submitted.wait(5)
        assert pipeline.flush(timeout=5)
    finally:
        release.set()
        pipeline.close()


def test_a_failing_job_does_not_stop_the_others() -> None:
    pipeline = KeyedPipeline("test", workers=1)
    done: list[int] = []

    def fail() -> None:
        raise RuntimeError("boom")

    try:
        pipeline.submit("a", fail)
        pipeline.submit("a", lambda: done.append(1))
        assert pipeline.flush(timeout=5)
    finally:
        pipeline.close()
    assert done == [1]
    with pytest.raises(RuntimeError, match="closed"):
        pipeline.submit("a", lambda: None)
