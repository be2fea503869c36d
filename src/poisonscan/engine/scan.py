"""Run a scan: discover inputs, make every detector's passes over the shards, collect findings."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any

import numpy as np

from poisonscan import __version__
from poisonscan.config import ScanConfig
from poisonscan.detectors import BatchContext, Detector, registry
from poisonscan.engine.executors import LocalExecutor, make_executor
from poisonscan.engine.memory import release_free_memory
from poisonscan.engine.state import ScanState
from poisonscan.findings import Finding, rank_findings
from poisonscan.io.readers import (
    ReadCounter,
    ReadOptions,
    Shard,
    discover_inputs,
    plan_shards,
    read_shard,
)
from poisonscan.io.shards import estimate_text_bytes
from poisonscan.kernels.warm import Warmup, cached

log = logging.getLogger("poisonscan.state")

ProgressCallback = Callable[[str, int, int], None]  # (phase, records, bytes) increments


@dataclass
class InputSummary:
    """What was read from one input file."""

    path: str
    format: str
    shape: str | None
    records: int
    skipped: dict[str, int]
    bytes: int

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class ScanResult:
    """Everything a report needs."""

    config: ScanConfig
    inputs: list[InputSummary]
    findings: list[Finding]
    stats: dict[str, Any] = field(default_factory=dict)
    version: str = __version__
    artifacts: dict[str, Any] = field(default_factory=dict)  # e.g. "clusters": ClusterAssignment


@dataclass(frozen=True)
class _PassTask:
    """What a worker needs for one pass (shared by all shards of the pass)."""

    pass_index: int
    plans: dict[str, Any]  # detector id -> plan
    classes: dict[str, type[Detector]]
    options: ReadOptions
    seed: int
    # detector id -> the detector's own number of this pass (see Detector.scan_passes); None: the
    # scan's pass number for every detector
    steps: dict[str, int] | None = None

    def step(self, det_id: str) -> int:
        return self.pass_index if self.steps is None else self.steps[det_id]


def read_options(config: ScanConfig) -> ReadOptions:
    return ReadOptions(
        shape=config.shape,
        text_field=config.text_field,
        id_field=config.id_field,
        skip_bad_records=config.skip_bad_records,
        max_record_bytes=config.max_record_bytes,
        batch_rows=config.batch_rows,
    )


# Shards smaller than this (in file bytes) are worked on several to a task. Every task has fixed
# costs: the detectors' accumulators (the trigger detector's count tables are sized by the memory
# budget, 288 MB by default, allocated and scanned once per task), a result to send and to merge
# on the driver, scheduling. At 8 MB of input (a few seconds of work) they are a small share.
TASK_BYTES = 8 * 2**20
TASKS_PER_SLOT = 4  # at least this many tasks per worker slot, for load balance


def scan_shards(shards: Sequence[Shard], task: _PassTask) -> tuple[dict[str, Any],
                                                                  list[ReadCounter]]:
    """One pass of every active detector over some shards; returns their merged partials.

    The shards share the detectors' accumulators, as if they were one shard, which is the same
    as merging their partials (merges are associative and commutative), only cheaper.
    """
    # What the previous task freed goes back to the system first. A worker's heap otherwise
    # keeps fragments of every task it ran resident, so workers hold more the more tasks a pass
    # has: in the switch pass of the speed corpus the two workers' median was 863 MB at 4 GB
    # against 780 MB at 1 GB, and 776 MB at 4 GB with this trim.
    release_free_memory()
    counters: list[ReadCounter] = []
    partials: dict[str, Any] = {}
    for shard in shards:
        counter = ReadCounter(path=shard.file.path)
        for batch in read_shard(shard, task.options, counter):
            if len(batch) == 0:
                continue
            ctx = BatchContext(batch, task.seed)
            for det_id, plan in task.plans.items():
                cls = task.classes[det_id]
                acc = cls.process_into(task.step(det_id), plan, ctx, partials.get(det_id))
                if acc is not None:
                    partials[det_id] = acc
        counters.append(counter)
    for det_id, acc in partials.items():
        partials[det_id] = task.classes[det_id].compact(task.step(det_id), task.plans[det_id], acc)
    return partials, counters


def scan_shard(shard: Shard, task: _PassTask) -> tuple[dict[str, Any], ReadCounter]:
    """One pass of every active detector over one shard (the unit ``--state`` keeps)."""
    partials, [counter] = scan_shards((shard,), task)
    return partials, counter


def group_shards(shards: Sequence[Shard], slots: int) -> list[tuple[Shard, ...]]:
    """Runs of consecutive shards, one run per task: every shard alone unless shards are small.

    When there are more shards than ``TASKS_PER_SLOT`` per worker slot and they average under
    ``TASK_BYTES`` of input, they are cut into runs of about equal bytes: as many runs as it takes
    to keep them near ``TASK_BYTES``, and at least ``TASKS_PER_SLOT`` per slot. A shard's size is
    its file's size over the file's shard count.
    """
    per_file = Counter(s.file.path for s in shards)
    sizes = np.array([max(1, s.file.size) / per_file[s.file.path] for s in shards])
    total = float(sizes.sum())
    n_tasks = max(TASKS_PER_SLOT * slots, math.ceil(total / TASK_BYTES))
    n_tasks = min(len(shards), slots * math.ceil(n_tasks / slots))  # no half-empty last round
    if n_tasks >= len(shards):
        return [(s,) for s in shards]
    # Cut where the running size crosses each multiple of total / n_tasks (runs are never empty).
    ends = np.searchsorted(np.cumsum(sizes), total * np.arange(1, n_tasks) / n_tasks) + 1
    ends = np.unique(np.clip(np.concatenate([ends, [len(shards)]]), 1, len(shards)))
    starts = np.concatenate([[0], ends[:-1]])
    return [tuple(shards[a:b]) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def _shard_results(executor: Any, shards: list[Shard], task: _PassTask, state: ScanState | None,
                   shard_keys: list[str], started: Callable[[], None] | None = None
                   ) -> Iterator[tuple[dict[str, Any], list[ReadCounter]]]:
    """Every shard's result of a pass: stored ones from the state, the others from the executor.

    Without a state, small shards are worked on several to a task (see :func:`group_shards`).
    With one, every shard is a task: its result is stored as it arrives, so a scan interrupted at
    any point keeps the work done; stored results are read one at a time. Either way results are
    merged as they arrive: the driver holds the merged partials plus the results of the tasks in
    flight (one at a time locally; on Dask up to the executor's in-flight limit, which the
    workers' results are fetched ahead of), never a number that grows with the shards.

    ``started`` goes to an executor that forks (see ``LocalExecutor.map``); others are not
    given it.
    """
    extra = {} if started is None else {"started": started}
    if state is None:
        groups = group_shards(shards, _slots(executor))
        for _, result in executor.map(scan_shards, groups, task, **extra):
            yield result
        return
    key = state.pass_key(task.pass_index, task)
    todo: list[int] = []
    for i, shard_key in enumerate(shard_keys):
        stored = state.load(key, shard_key)
        if stored is None:
            todo.append(i)
        else:
            yield stored[0], [stored[1]]
    state.summary.passes.append((task.pass_index, len(shards) - len(todo), len(todo)))
    for j, result in executor.map(scan_shard, [shards[i] for i in todo], task, **extra):
        state.save(key, shard_keys[todo[j]], result)
        yield result[0], [result[1]]


def _idle_next(schedule: tuple[int, ...], pass_index: int) -> bool:
    """Whether a detector that ran in ``pass_index`` sits out the next pass and runs later."""
    later = [p for p in schedule if p > pass_index]
    return bool(later) and later[0] > pass_index + 1


class _BackgroundFinishes:
    """Finishes of detectors idle in the next pass, run on a thread while that pass runs.

    With an executor that forks its workers during a pass (the local pool), a thread must not
    run while it forks (see ``LocalExecutor.forks``): such a finish is only queued, and
    :meth:`start` (``map``'s ``started`` callback, once the workers exist) starts it.
    """

    def __init__(self, defer: bool) -> None:
        self.defer = defer
        # Made for each batch of finishes and shut once they are done, so that no idle thread
        # is left alive when the next pass forks.
        self._pool: ThreadPoolExecutor | None = None
        self._queued: dict[str, tuple[Callable[[int, Any], None], int, Any]] = {}
        self._running: dict[str, Future[None]] = {}

    def submit(self, det: Detector, step: int, merged: Any) -> None:
        self._queued[det.id] = (det.finish_pass, step, merged)
        if not self.defer:
            self.start()

    def start(self) -> None:
        """Start every queued finish."""
        for det_id, (finish, step, merged) in self._queued.items():
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1,
                                                thread_name_prefix="poisonscan-finish")
            # ``merged`` goes in a list the thread empties, so that no argument tuple keeps it
            # alive once the finish is done with it.
            self._running[det_id] = self._pool.submit(_finish_then_release, finish, step,
                                                      [merged])
        self._queued.clear()

    def wait(self, det_id: str | None = None) -> None:
        """Run or wait for the finish of ``det_id`` (default: of every detector), re-raising its
        error, and forget it. A queued one runs now: its results are needed."""
        for key in [det_id] if det_id is not None else list(self._queued) + list(self._running):
            queued = self._queued.pop(key, None)
            if queued is not None:
                finish, step, merged = queued
                finish(step, merged)
            future = self._running.pop(key, None)
            if future is not None:
                future.result()
        if not self._running:
            self._end_thread()

    def _end_thread(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def close(self) -> None:
        """After the scan, or when it failed: drop what is queued and let what runs end."""
        self._queued.clear()
        self._end_thread()


def _finish_then_release(finish: Callable[[int, Any], None], step: int, box: list[Any]) -> None:
    """Run a background finish, then give what it freed back to the system (a finish on a
    thread frees into that thread's heap, which glibc shrinks only from its top)."""
    try:
        finish(step, box.pop())
    finally:
        release_free_memory()


def _slots(executor: Any) -> int:
    slots = getattr(executor, "slots", None)
    return int(slots()) if callable(slots) else 1


def _merge_into(merged: dict[str, Any], partials: dict[str, Any],
                detectors: dict[str, Detector], task: _PassTask) -> None:
    for det_id, part in partials.items():
        merged[det_id] = detectors[det_id].collect(task.step(det_id), merged.get(det_id), part)


def _start_warmups(detectors: list[Detector], executor: Any) -> dict[str, tuple[int, Warmup]]:
    """Start a helper compiling each detector's later-pass kernels that numba has not cached yet
    (see :mod:`poisonscan.kernels.warm`): only beside the local executor with more than one job,
    where a core is there to spare (``--jobs 1`` means one process; Dask workers compile on
    their own machines). Returns, per detector, the pass to wait for it before and the helper."""
    if not isinstance(executor, LocalExecutor) or executor.jobs < 2 or not Warmup.possible():
        return {}
    warmups: dict[str, tuple[int, Warmup]] = {}
    for det in detectors:
        if det.ahead is not None and not cached(det.ahead[1]):
            warmups[det.id] = (det.ahead[0], Warmup(det.ahead[2]))
    return warmups


def make_detectors(config: ScanConfig) -> list[Detector]:
    found = registry()
    return [found[d](config) for d in config.detectors if d in found]


def run_scan(
    config: ScanConfig,
    progress: ProgressCallback | None = None,
    executor: Any = None,
) -> ScanResult:
    """Scan ``config.paths`` and return the ranked findings with read statistics.

    ``executor`` defaults to the one ``config.executor`` names (closed at the end); one passed in is
    left open for the caller. With ``config.state_dir`` each shard's partial result of each pass is
    kept there and reused by later runs (see :mod:`poisonscan.engine.state`).
    """
    started = time.perf_counter()
    options = read_options(config)
    files = discover_inputs(config.paths)
    shards = plan_shards(files, options)
    if executor is None:
        with make_executor(config) as owned:
            return _run_passes(config, progress, owned, started, options, files, shards)
    return _run_passes(config, progress, executor, started, options, files, shards)


def _run_passes(config: ScanConfig, progress: ProgressCallback | None, executor: Any,
                started: float, options: ReadOptions, files: list[Any],
                shards: list[Shard]) -> ScanResult:
    state = None
    if config.state_dir:
        try:
            state = ScanState(config.state_dir)
        except OSError as exc:  # the state only saves work: without it the scan is complete
            log.warning("poisonscan: warning: cannot use --state %s (%s); scanning without it",
                        config.state_dir, exc.strerror or exc)
    shard_keys = state.shard_keys(shards, executor.map) if state else []
    detectors = make_detectors(config)
    classes = {d.id: type(d) for d in detectors}
    by_id = {d.id: d for d in detectors}
    text_bytes = estimate_text_bytes(shards)
    for det in detectors:
        det.link({d.id: d for d in detectors if d is not det})
        det.expect(files, text_bytes)
        if state is None and getattr(executor, "local_disk", False):
            det.use_worker_spill()
    schedules = {d.id: d.schedule() for d in detectors}
    n_passes = max((s[-1] + 1 for s in schedules.values() if s), default=1)

    counters: dict[str, ReadCounter] = {f.path: ReadCounter() for f in files}
    pass_seconds: list[float] = []
    # A detector idle in the next pass finishes this one on a thread while the workers run the
    # next pass for the others (the campaign detector's clustering after pass 0 would otherwise
    # leave every worker waiting). A finish is awaited before any other detector's next finish
    # (they may read each other's results) and before the detector's next plan. Beside an
    # executor that forks its workers (the local pool) it starts once they are forked.
    background = _BackgroundFinishes(defer=bool(getattr(executor, "forks", False)))
    # A detector finishes a pass after those it reads (Detector.reads). A finish that goes to
    # the background is awaited before the next pass's finishes, not before the others of its
    # own pass: what it makes can be read from the next pass on (the campaign detector's
    # clusters, after pass 0, are read by the trigger detector in its last pass).
    graph = TopologicalSorter({d.id: [r for r in d.reads if r in by_id] for d in detectors})
    finish_order = [by_id[i] for i in graph.static_order()]
    warmups = _start_warmups(detectors, executor)
    try:
        for pass_index in range(n_passes):
            t0 = time.perf_counter()
            plans: dict[str, Any] = {}
            steps: dict[str, int] = {}
            for det in detectors:
                if pass_index in schedules[det.id]:
                    step = schedules[det.id].index(pass_index)
                    background.wait(det.id)
                    plan = det.plan(step)
                    if plan is not None and det.id in warmups and step >= warmups[det.id][0]:
                        warmups.pop(det.id)[1].wait()  # its kernels are cached for the workers
                    if plan is not None:
                        plans[det.id], steps[det.id] = plan, step
            if not plans and pass_index > 0:
                continue
            task = _PassTask(pass_index, plans, classes, options, config.seed, steps)
            merged: dict[str, Any] = {}
            workers_forked = background.start if background.defer else None
            # A local pool forks its workers now: every page resident in the driver stays
            # alive, shared, until they exit, and each one the driver then writes to is copied.
            # Free heap pages (the plans just made leave some) are given back first.
            release_free_memory()
            for partials, shard_counters in _shard_results(executor, shards, task, state,
                                                           shard_keys, workers_forked):
                _merge_into(merged, partials, by_id, task)
                del partials  # merged in: nothing of it stays alive while the next is awaited
                for counter in shard_counters:
                    if pass_index == 0:
                        counters[counter.path].merge(counter)
                    if progress is not None:
                        progress(f"pass {pass_index + 1}/{n_passes}", counter.records,
                                 counter.bytes)
            background.wait()
            for det in finish_order:
                if det.id not in plans:
                    continue
                if _idle_next(schedules[det.id], pass_index):
                    background.submit(det, steps[det.id], merged.get(det.id))
                else:
                    det.finish_pass(steps[det.id], merged.get(det.id))
            del merged
            release_free_memory()
            pass_seconds.append(time.perf_counter() - t0)
        background.wait()
    finally:
        background.close()
        for _, warmup in warmups.values():
            warmup.close()

    findings: list[Finding] = []
    for det in detectors:
        findings.extend(det.findings())
    inputs = [
        InputSummary(f.path, f.format, counters[f.path].shape, counters[f.path].records,
                     dict(sorted(counters[f.path].skipped.items())), f.size)
        for f in files
    ]
    total_bytes = sum(c.bytes for c in counters.values())
    elapsed = time.perf_counter() - started
    stats: dict[str, Any] = {
        "files": len(files),
        "shards": len(shards),
        "records": sum(i.records for i in inputs),
        "skipped": sum(i.skipped_total for i in inputs),
        "text_bytes": total_bytes,
        "seconds": round(elapsed, 3),
        "pass_seconds": [round(s, 3) for s in pass_seconds],
        "detectors": {det.id: det.stats() for det in detectors},
    }
    skipped_by_reason: Counter = Counter()
    for c in counters.values():
        skipped_by_reason.update(c.skipped)
    stats["skipped_by_reason"] = dict(sorted(skipped_by_reason.items()))
    artifacts: dict[str, Any] = {}
    for det in detectors:
        artifacts.update(det.artifacts())
    if state is not None:
        state.prune()
        artifacts["state"] = state.summary  # reuse counts differ between runs: not in stats
    return ScanResult(config, inputs, rank_findings(findings), stats, artifacts=artifacts)
