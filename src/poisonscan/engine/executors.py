"""Executors run per-shard work. Each yields ``(index, result)`` pairs as results arrive.

Results are merged with associative, commutative merges, so the arrival order does not change the
findings; the engine still merges in arrival order to keep the driver's memory flat.

An executor has ``map(fn, items, shared)``, which runs ``fn(item, shared)`` for every item, and
``close()``. :class:`LocalExecutor` runs in this process or a local process pool;
:class:`poisonscan.engine.dask.DaskExecutor` on a Dask cluster (``--executor dask``).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from poisonscan.config import ScanConfig

# The per-pass shared state (detector plans). A process pool started with ``fork`` inherits it
# copy-on-write, so large plans (count tables) are never pickled per task. It is set only inside
# ``LocalExecutor.map`` and read only by ``_call``.
_SHARED: Any = None


def _call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    # Each worker process is one of --jobs: numba's own threads inside it would oversubscribe
    # the cores (and its thread pool is not safe to carry across fork).
    import numba

    numba.set_num_threads(1)
    return fn(item, _SHARED)


def _init_shared(shared: Any) -> None:  # used with the spawn start method
    global _SHARED
    _SHARED = shared


class LocalExecutor:
    """Run shard work in this process (``jobs == 1``) or in a pool of ``jobs`` worker processes."""

    name = "local"

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def close(self) -> None:
        """Nothing to release: each ``map`` call starts and stops its own pool."""

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any
    ) -> Iterator[tuple[int, Any]]:
        if self.jobs == 1 or len(items) <= 1:
            for i, item in enumerate(items):
                yield i, fn(item, shared)
            return
        global _SHARED
        methods = mp.get_all_start_methods()
        ctx: Any
        if "fork" in methods:
            _SHARED = shared
            ctx = mp.get_context("fork")
            pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(items)), mp_context=ctx)
        else:  # pragma: no cover - platforms without fork
            ctx = mp.get_context("spawn")
            pool = ProcessPoolExecutor(
                max_workers=min(self.jobs, len(items)), mp_context=ctx,
                initializer=_init_shared, initargs=(shared,),
            )
        try:
            pending: dict[Future, int] = {}
            it = iter(enumerate(items))
            # Keep a bounded number of tasks in flight so results never pile up in the driver.
            for _ in range(2 * self.jobs):
                nxt = next(it, None)
                if nxt is None:
                    break
                pending[pool.submit(_call, fn, nxt[1])] = nxt[0]
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: pending[f]):
                    idx = pending.pop(fut)
                    yield idx, fut.result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(_call, fn, nxt[1])] = nxt[0]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _SHARED = None


def make_executor(config: ScanConfig) -> Any:
    """The executor ``config.executor`` names: ``local`` (default) or ``dask``."""
    if config.executor == "dask":
        from poisonscan.engine.dask import DaskExecutor

        return DaskExecutor(config.jobs, config.scheduler)
    return LocalExecutor(config.jobs)
