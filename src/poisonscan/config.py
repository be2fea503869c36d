"""ScanConfig: every knob of a scan in one frozen, validated value.

Validation happens on construction, and each error names the parameter, the value and the fix, so a
bad flag or config file entry never surfaces as a traceback deep inside the scan.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from poisonscan.errors import ConfigError
from poisonscan.io.records import Shape

FAIL_ON_CHOICES = ("high", "medium", "low", "never")
DETECTOR_IDS = ("trigger", "campaign", "sft-trigger")
EXECUTOR_CHOICES = ("local", "dask")

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "KIB": 2**10, "M": 1e6, "MB": 1e6, "MIB": 2**20,
          "G": 1e9, "GB": 1e9, "GIB": 2**30, "T": 1e12, "TB": 1e12, "TIB": 2**40}


def parse_size(value: str | int, *, name: str) -> int:
    """Parse ``"512MB"``, ``"2GiB"`` or a plain byte count into bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(str(value))
    unit = (match.group(2) or "").upper() if match else ""
    if not match or unit not in _UNITS:
        raise ConfigError(
            f"{name}: cannot read size {value!r}; use a number with an optional unit, e.g. 512MB or 2GiB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def default_jobs() -> int:
    """All CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ScanConfig:
    """The effective configuration of one scan.

    Attributes:
        paths: files, directories (recursive) or globs to scan.
        shape: force a record shape instead of detecting it per file.
        text_field: the text column of plain-text records (default: ``text`` or ``content``).
        id_field: the record-id column (default: ``id`` when present).
        skip_bad_records: count and skip unreadable records instead of stopping with exit code 2.
        max_record_bytes: a record larger than this is an input error (or skipped).
        batch_rows: records per Arrow batch handed to the detectors.
        jobs: worker processes (default: all cores). Findings are identical for every value.
        memory_budget: bytes the counting structures of one worker may use.
        detectors: the detectors to run.
        min_documents: how many documents make a pattern strong: a high trigger finding needs
            twice this many, a high campaign cluster twice this many members (clusters from
            this many are analysed), an sft-trigger finding this many; weaker patterns from
            min(min_documents, 3) documents are reported as medium or low.
        fail_on: the lowest severity that makes the scan exit with code 1.
        seed: seeds every hash family, so results are reproducible.
        executor: where shard work runs: ``local`` processes or a ``dask`` cluster.
        scheduler: the Dask scheduler address; None starts a local Dask cluster of ``jobs`` workers.
        state_dir: keep per-shard partial results here, to resume and to rescan incrementally.
    """

    paths: tuple[str, ...] = ()
    shape: Shape | None = None
    text_field: str | None = None
    id_field: str | None = None
    skip_bad_records: bool = False
    max_record_bytes: int = 64 * 2**20
    batch_rows: int = 4096
    jobs: int = field(default_factory=default_jobs)
    memory_budget: int = 1 * 2**30
    detectors: tuple[str, ...] = DETECTOR_IDS
    min_documents: int = 5
    fail_on: str = "high"
    seed: int = 0
    executor: str = "local"
    scheduler: str | None = None
    state_dir: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.shape, str):
            try:
                object.__setattr__(self, "shape", Shape(self.shape))
            except ValueError:
                choices = ", ".join(s.value for s in Shape)
                raise ConfigError(f"shape: unknown shape {self.shape!r}; choose one of {choices}") from None
        if isinstance(self.memory_budget, str):
            object.__setattr__(self, "memory_budget", parse_size(self.memory_budget, name="memory_budget"))
        if isinstance(self.max_record_bytes, str):
            object.__setattr__(
                self, "max_record_bytes", parse_size(self.max_record_bytes, name="max_record_bytes")
            )
        object.__setattr__(self, "paths", tuple(self.paths))
        object.__setattr__(self, "detectors", tuple(self.detectors))
        if self.jobs < 1:
            raise ConfigError(f"jobs: must be at least 1, got {self.jobs}; omit it to use all cores")
        if self.memory_budget < 64 * 2**20:
            raise ConfigError(
                f"memory_budget: {self.memory_budget} bytes is too small; give at least 64MiB"
            )
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"seed: must be between 0 and 2**63 - 1, got {self.seed}")
        if self.batch_rows < 1:
            raise ConfigError(f"batch_rows: must be at least 1, got {self.batch_rows}")
        if self.max_record_bytes < 1:
            raise ConfigError(f"max_record_bytes: must be positive, got {self.max_record_bytes}")
        if self.min_documents < 2:
            raise ConfigError(
                f"min_documents: a repeated trigger needs at least 2 documents, got {self.min_documents}"
            )
        if self.fail_on not in FAIL_ON_CHOICES:
            raise ConfigError(
                f"fail_on: unknown severity {self.fail_on!r}; choose one of {', '.join(FAIL_ON_CHOICES)}"
            )
        if self.executor not in EXECUTOR_CHOICES:
            raise ConfigError(
                f"executor: unknown executor {self.executor!r}; choose one of "
                f"{', '.join(EXECUTOR_CHOICES)}"
            )
        if self.scheduler and self.executor != "dask":
            raise ConfigError(
                f"scheduler: {self.scheduler!r} is a Dask scheduler address; add --executor dask"
            )
        if self.state_dir is not None and os.path.isfile(self.state_dir):
            raise ConfigError(f"--state: {self.state_dir!r} is a file; give a directory")
        if self.state_dir is not None:
            self._check_state_outside_inputs(self.state_dir)
        if not self.detectors:
            raise ConfigError("detectors: the list is empty; name at least one, or leave the "
                              f"setting out to run all ({', '.join(DETECTOR_IDS)})")
        unknown = [d for d in self.detectors if d not in DETECTOR_IDS]
        if unknown:
            raise ConfigError(
                f"detectors: unknown detector {unknown[0]!r}; choose from {', '.join(DETECTOR_IDS)}"
            )

    def _check_state_outside_inputs(self, state_dir: str) -> None:
        """A state directory holding a scanned input would mark it as a cache (its
        CACHEDIR.TAG makes walks pass over it), and its own files would be read as data. One
        inside a scanned directory is fine: the walks leave it out."""
        from poisonscan.io.filesystems import is_remote, local_path

        state = os.path.realpath(state_dir)
        for p in self.paths:
            if is_remote(p):
                continue
            local = local_path(p)
            cut = min((local.index(c) for c in "*?[" if c in local and not os.path.exists(local)),
                      default=None)
            base = local if cut is None else os.path.dirname(local[:cut]) or "."
            real = os.path.realpath(base)
            if real == state or real.startswith(state.rstrip(os.sep) + os.sep):
                raise ConfigError(f"--state: {state_dir!r} holds the input {p!r}; keep the "
                                  "state in a directory of its own (one inside a scanned "
                                  "directory is fine)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written into reports (paths excluded: reports list inputs separately)."""
        out = asdict(self)
        out.pop("paths")
        out["shape"] = self.shape.value if self.shape else None
        out["detectors"] = list(self.detectors)
        return out

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
