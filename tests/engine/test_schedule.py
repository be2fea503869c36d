"""Detectors that sit out a scan pass: their own pass numbers, and their background finish."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from engine_corpus import comparable, config, corpus_records, write_shards

from poisonscan.detectors.campaign import CampaignDetector
from poisonscan.detectors.trigger import TriggerDetector
from poisonscan.engine.executors import LocalExecutor
from poisonscan.engine.scan import _idle_next, run_scan


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records, _ = corpus_records()
    out = tmp_path_factory.mktemp("schedule")
    write_shards(out, records, 3)
    return out


def test_idle_next_only_when_a_later_pass_follows_a_gap() -> None:
    assert _idle_next((0, 2, 3), 0)
    assert not _idle_next((0, 2, 3), 2)
    assert not _idle_next((0, 2, 3), 3)
    assert not _idle_next((0, 1, 2), 0)
    assert not _idle_next((0,), 0)


def test_detectors_see_their_own_pass_numbers_in_their_scan_passes(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    real_plan, real_finish = CampaignDetector.plan, CampaignDetector.finish_pass

    def plan(self: CampaignDetector, pass_index: int) -> Any:
        seen.append(("plan", pass_index))
        return real_plan(self, pass_index)

    def finish(self: CampaignDetector, pass_index: int, merged: Any) -> None:
        seen.append(("finish", pass_index))
        real_finish(self, pass_index, merged)

    monkeypatch.setattr(CampaignDetector, "plan", plan)
    monkeypatch.setattr(CampaignDetector, "finish_pass", finish)
    result = run_scan(config(folder))
    assert CampaignDetector.scan_passes == (0, 2, 3)
    # Never asked for a plan in the scan's pass 1, and every pass finished before the next plan.
    assert seen == [("plan", 0), ("finish", 0), ("plan", 1), ("finish", 1), ("plan", 2),
                    ("finish", 2)]
    assert len(result.stats["pass_seconds"]) == 4


def test_the_same_findings_when_every_detector_runs_in_consecutive_passes(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finishing in the background while other detectors run is only a matter of time."""
    scheduled = comparable(run_scan(config(folder)))
    monkeypatch.setattr(CampaignDetector, "scan_passes", None)
    assert comparable(run_scan(config(folder))) == scheduled


def test_an_error_in_a_background_finish_reaches_the_caller(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_finish = CampaignDetector.finish_pass

    def finish(self: CampaignDetector, pass_index: int, merged: Any) -> None:
        if pass_index == 0:
            raise RuntimeError("clustering failed")
        real_finish(self, pass_index, merged)

    monkeypatch.setattr(CampaignDetector, "finish_pass", finish)
    with pytest.raises(RuntimeError, match="clustering failed"):
        run_scan(config(folder))


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_finish_runs_on_a_thread_but_never_while_the_local_pool_forks(
    folder: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    """A fork copies whatever locks other threads hold at that moment (numba's compiler lock has
    no fork handler), so beside a forking pool a finish starts only once the pass's workers are
    forked, and is done before the next pass forks again."""
    threads: dict[int, str] = {}
    running: list[bool] = [False]
    forks_seen: list[bool] = []  # per fork: whether a finish was running then
    children_at_start: list[int] = []
    real_finish = CampaignDetector.finish_pass
    real_fork = os.fork

    def finish(self: CampaignDetector, pass_index: int, merged: Any) -> None:
        threads[pass_index] = threading.current_thread().name
        if pass_index == 0:
            children_at_start.append(len(multiprocessing.active_children()))
        running[0] = True
        try:
            real_finish(self, pass_index, merged)
        finally:
            running[0] = False

    def fork() -> int:
        forks_seen.append(running[0])
        return real_fork()

    monkeypatch.setattr(CampaignDetector, "finish_pass", finish)
    monkeypatch.setattr(os, "fork", fork)
    run_scan(config(folder, jobs=jobs))
    forks = LocalExecutor(jobs).forks
    assert forks == (jobs > 1 and "fork" in multiprocessing.get_all_start_methods())
    assert threads[0].startswith("poisonscan-finish")
    assert threads[1] == threads[2] == threading.current_thread().name
    assert not any(forks_seen)
    if forks:
        assert len(forks_seen) >= 2 * 3  # every pass forked its two workers
        assert children_at_start == [2]  # pass 1's workers existed when the finish began
    # No finish thread is left over once the scan is done.
    assert not [t for t in threading.enumerate() if t.name.startswith("poisonscan-finish")]


def test_a_detector_finishes_a_pass_after_the_detectors_it_reads(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trigger detector judges phrases by the campaign detector's clusters, whose count
    pass (the same scan pass as the trigger's evidence pass) adds the near members LSH left
    out: the campaign detector finishes that pass first, whatever the order of --detectors."""
    finished: list[str] = []
    for cls in (CampaignDetector, TriggerDetector):
        real = cls.finish_pass

        def finish(self: Any, pass_index: int, merged: Any, real: Any = real) -> None:
            finished.append(f"{self.id} {pass_index}")
            real(self, pass_index, merged)

        monkeypatch.setattr(cls, "finish_pass", finish)
    assert "campaign" in TriggerDetector.reads
    for order in (("trigger", "campaign"), ("campaign", "trigger")):
        finished.clear()
        run_scan(config(folder, detectors=order))
        assert finished[-2:] == ["campaign 2", "trigger 3"], (order, finished)
