"""Run a scan: discover inputs, make every detector's passes over the shards, collect findings."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from poisonscan import __version__
from poisonscan.config import ScanConfig
from poisonscan.detectors import BatchContext, Detector, registry
from poisonscan.engine.executors import make_executor
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


def read_options(config: ScanConfig) -> ReadOptions:
    return ReadOptions(
        shape=config.shape,
        text_field=config.text_field,
        id_field=config.id_field,
        skip_bad_records=config.skip_bad_records,
        max_record_bytes=config.max_record_bytes,
        batch_rows=config.batch_rows,
    )


def scan_shard(shard: Shard, task: _PassTask) -> tuple[dict[str, Any], ReadCounter]:
    """One pass of every active detector over one shard; returns their merged partials."""
    counter = ReadCounter(path=shard.file.path)
    partials: dict[str, Any] = {}
    for batch in read_shard(shard, task.options, counter):
        if len(batch) == 0:
            continue
        ctx = BatchContext(batch, task.seed)
        for det_id, plan in task.plans.items():
            cls = task.classes[det_id]
            acc = cls.process_into(task.pass_index, plan, ctx, partials.get(det_id))
            if acc is not None:
                partials[det_id] = acc
    for det_id, acc in partials.items():
        partials[det_id] = task.classes[det_id].compact(task.pass_index, task.plans[det_id], acc)
    return partials, counter


def _shard_results(executor: Any, shards: list[Shard], task: _PassTask, state: ScanState | None,
                   shard_keys: list[str]) -> Iterator[tuple[int, Any]]:
    """Every shard's result of a pass: stored ones from the state, the others from the executor.

    Stored results are read one at a time and each new result is stored as it arrives, so a scan
    interrupted at any point keeps the work done, and the driver holds one result at a time.
    """
    if state is None:
        yield from executor.map(scan_shard, shards, task)
        return
    key = state.pass_key(task.pass_index, task)
    todo: list[int] = []
    for i, shard_key in enumerate(shard_keys):
        stored = state.load(key, shard_key)
        if stored is None:
            todo.append(i)
        else:
            yield i, stored
    state.summary.passes.append((task.pass_index, len(shards) - len(todo), len(todo)))
    for j, result in executor.map(scan_shard, [shards[i] for i in todo], task):
        state.save(key, shard_keys[todo[j]], result)
        yield todo[j], result


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
    state = ScanState(config.state_dir) if config.state_dir else None
    shard_keys = state.shard_keys(shards, executor.map) if state else []
    detectors = make_detectors(config)
    classes = {d.id: type(d) for d in detectors}
    for det in detectors:
        det.link({d.id: d for d in detectors if d is not det})
        det.expect(files)
    n_passes = max((d.n_passes for d in detectors), default=1)

    counters: dict[str, ReadCounter] = {f.path: ReadCounter() for f in files}
    pass_seconds: list[float] = []
    for pass_index in range(n_passes):
        t0 = time.perf_counter()
        plans = {}
        for det in detectors:
            if pass_index < det.n_passes:
                plan = det.plan(pass_index)
                if plan is not None:
                    plans[det.id] = plan
        if not plans and pass_index > 0:
            continue
        task = _PassTask(pass_index, plans, classes, options, config.seed)
        merged: dict[str, Any] = {}
        for _, (partials, counter) in _shard_results(executor, shards, task, state, shard_keys):
            for det_id, part in partials.items():
                prev = merged.get(det_id)
                merged[det_id] = (part if prev is None
                                  else classes[det_id].merge(pass_index, prev, part))
            if pass_index == 0:
                counters[counter.path].merge(counter)
            if progress is not None:
                progress(f"pass {pass_index + 1}/{n_passes}", counter.records, counter.bytes)
        for det in detectors:
            if det.id in plans:
                det.finish_pass(pass_index, merged.get(det.id))
        pass_seconds.append(time.perf_counter() - t0)

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
