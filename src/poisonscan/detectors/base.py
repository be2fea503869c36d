"""The small interface every detector implements, and the per-batch token cache they share.

A scan is a fixed number of passes over the data. In each pass the engine reads every shard once and
hands each batch to every active detector's :meth:`Detector.process`, which returns a small
*mergeable* partial result. Partials are merged with :meth:`Detector.merge` (which must be
associative and commutative, so any ``--jobs`` value and any executor give identical results), then
handed back to the detector in :meth:`Detector.finish_pass`. Only the *plan* returned by
:meth:`Detector.plan` travels to the workers, so ``process`` and ``merge`` are class methods that see
the plan and the batch, never the detector's driver-side state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from poisonscan.config import ScanConfig
from poisonscan.findings import Finding
from poisonscan.io.records import RecordBatch, Shape
from poisonscan.kernels.arrow import string_buffers
from poisonscan.kernels.tokenize import tokenize


@dataclass(frozen=True)
class Tokens:
    """The token stream of one text field of a batch (see :func:`poisonscan.kernels.tokenize.tokenize`)."""

    data: np.ndarray  # uint8 text bytes
    offsets: np.ndarray  # int64 per-document byte offsets into data
    hashes: np.ndarray  # uint64
    starts: np.ndarray  # int64 absolute byte offsets
    ends: np.ndarray  # int64
    kinds: np.ndarray  # uint8
    doc_offsets: np.ndarray  # int64 per-document token offsets


class BatchContext:
    """A batch plus lazily computed, cached token streams, shared by all detectors in a pass."""

    def __init__(self, batch: RecordBatch, seed: int = 0) -> None:
        self.batch = batch
        self.seed = seed
        self._tokens: dict[str, Tokens] = {}

    def tokens(self, field: str = "text") -> Tokens:
        """Tokens of ``batch.<field>`` (``text``, ``prompt``, ``response`` or ``rejected``)."""
        cached = self._tokens.get(field)
        if cached is None:
            arr = getattr(self.batch, field)
            if arr is None:
                raise ValueError(f"batch of shape {self.batch.shape.value} has no {field!r} field")
            data, offsets = string_buffers(arr)
            cached = Tokens(data, offsets, *tokenize(data, offsets, self.seed))
            self._tokens[field] = cached
        return cached


class Detector(ABC):
    """Base class of all detectors.

    Subclasses set ``id`` (a stable contract: baselines and SARIF rule ids use it, never rename),
    ``title`` and ``help`` (shown in reports and SARIF rules), ``n_passes``, and implement ``plan``,
    ``process``, ``merge``, ``finish_pass`` and ``findings``.
    """

    id: ClassVar[str]
    title: ClassVar[str]
    help: ClassVar[str]
    n_passes: ClassVar[int] = 1
    # The scan's pass in which each of the detector's own passes runs (None: 0, 1, 2, ...). The
    # detector's methods always see its own pass numbers. Leaving a scan pass out between two of
    # its passes lets the driver finish the earlier one in the background while the workers run
    # the other detectors' next pass.
    scan_passes: ClassVar[tuple[int, ...] | None] = None
    # Kernels first called in a later pass, which a helper process may compile while the first
    # passes run (see poisonscan.kernels.warm): (the detector's first pass that calls them, the
    # kernels, a module-level function calling each with arguments of the types the pass uses).
    ahead: ClassVar[tuple[int, tuple[Any, ...], Callable[[], None]] | None] = None
    # Detectors whose driver-side results this one reads (through :meth:`link`) when it
    # finishes a pass: when both finish the same scan pass, they finish it first (a finish the
    # engine runs in the background is ready only for the next pass's finishes).
    reads: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ScanConfig) -> None:
        self.config = config

    def schedule(self) -> tuple[int, ...]:
        """The scan pass of each of the detector's passes, increasing."""
        return self.scan_passes if self.scan_passes is not None else tuple(range(self.n_passes))

    def wants(self, shape: Shape) -> bool:
        """Whether batches of this record shape are relevant to the detector."""
        return True

    @abstractmethod
    def plan(self, pass_index: int) -> Any:
        """The picklable state workers need for pass ``pass_index`` (0-based); None skips the pass."""

    @classmethod
    @abstractmethod
    def process(cls, pass_index: int, plan: Any, ctx: BatchContext) -> Any:
        """Work on one batch; return a mergeable partial result (or None for nothing)."""

    @classmethod
    @abstractmethod
    def merge(cls, pass_index: int, a: Any, b: Any) -> Any:
        """Combine two partial results. Must be associative and commutative."""

    @classmethod
    def process_into(cls, pass_index: int, plan: Any, ctx: BatchContext, acc: Any) -> Any:
        """Fold one batch into ``acc``, the shard's partial so far (None for the first batch).

        The default is ``merge(acc, process(...))``; detectors with large accumulators (count
        tables) override it to update ``acc`` in place.
        """
        part = cls.process(pass_index, plan, ctx)
        if part is None or acc is None:
            return part if acc is None else acc
        return cls.merge(pass_index, acc, part)

    @classmethod
    def compact(cls, pass_index: int, plan: Any, acc: Any) -> Any:
        """Shrink a shard's partial before it travels back to the driver (default: unchanged)."""
        return acc

    def collect(self, pass_index: int, acc: Any, part: Any) -> Any:
        """Driver side: fold one arriving result (a task's, or a shard's from ``--state``) into the
        pass's accumulator (None for the first), in arrival order.

        The default merges in memory. A detector whose merged state would grow with the corpus
        overrides it to spill parts to disk and reads them back in :meth:`finish_pass`; what it
        hands to ``finish_pass`` must not depend on the order or grouping of the parts.
        """
        return part if acc is None else self.merge(pass_index, acc, part)

    @abstractmethod
    def finish_pass(self, pass_index: int, merged: Any) -> None:
        """Receive the merged result of a pass (None when no batch produced anything)."""

    @abstractmethod
    def findings(self) -> list[Finding]:
        """The findings, after the last pass."""

    def stats(self) -> dict[str, Any]:
        """Numbers for the report's ``stats`` section (JSON-serialisable)."""
        return {}

    def expect(self, files: list[Any], text_bytes: float) -> None:
        """Learn the inputs before the first pass, e.g. to size counting structures: ``files``
        (``InputFile`` objects with path, format, compression, size) and about how many bytes of
        text they hold (see :func:`poisonscan.io.shards.estimate_text_bytes`). The default
        ignores them."""
        return None

    def use_worker_spill(self) -> None:
        """Called before the first pass when the workers run on this host, each task exactly
        once, and no partial is kept for a later run (no ``--state``): a detector may then have
        its tasks append parts of their partials to files in its spill directories, named in
        the plan, instead of returning them, so that neither a worker nor the driver holds a
        task's whole partial. Its :meth:`finish_pass` must then read those files as well. The
        default ignores it: every partial travels back whole."""
        return None

    def link(self, peers: dict[str, Detector]) -> None:
        """Receive the other detectors of the scan (by id), to use what they learn on the driver.

        Called once before the first pass. The default ignores them.
        """
        return None

    def artifacts(self) -> dict[str, Any]:
        """Large per-document results for exports (e.g. ``clusters``), after the last pass."""
        return {}
