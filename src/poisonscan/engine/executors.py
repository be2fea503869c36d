"""Executors run per-shard work. Each yields ``(index, result)`` pairs as results arrive.

Results are merged with associative, commutative merges, so the arrival order does not change the
findings; the engine still merges in arrival order to keep the driver's memory flat.

An executor has ``map(fn, items, shared)``, which runs ``fn(item, shared)`` for every item,
``slots()``, how many items it works on at once, and ``close()``; and may say ``local_disk =
True`` when its tasks run on this host exactly once each (then detectors may have tasks write to
the driver's spill: see ``Detector.use_worker_spill``). :class:`LocalExecutor` runs in this
process or a local process pool; :class:`poisonscan.engine.dask.DaskExecutor` on a Dask cluster
(``--executor dask``).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import numpy as np

from poisonscan.kernels.ngrams import nonzero_pairs, scatter

if TYPE_CHECKING:
    from poisonscan.config import ScanConfig

# The per-pass shared state (detector plans). A process pool started with ``fork`` inherits it
# copy-on-write, so large plans (count tables) are never pickled per task. It is set only inside
# ``LocalExecutor.map`` and read only by ``_call``.
_SHARED: Any = None


def _call(fn: Callable[[Any, Any], Any], item: Any) -> Any:
    one_numba_thread()
    return fn(item, _SHARED)


def _quiet_on_interrupt() -> None:
    """Worker start-up: Ctrl-C reaches the whole process group; the driver reports it in one
    line and stops the pool, so a worker just exits, without a traceback of its own. A driver
    that ignores SIGINT (a background job of a script) keeps its workers ignoring it too: the
    workers dying alone broke the pool, and could hang the driver on a half-sent result.

    On Linux a worker also asks to be killed when the driver dies: a driver ended by SIGTERM
    (``timeout``, a cancelled CI job) left its workers blocked forever sending a result, each
    holding its count tables."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(128 + signum))
    if hasattr(signal, "pthread_sigmask"):  # blocked by the driver while it forked (see map)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _die_with_parent()


_DRIVER_PID: int | None = None  # the process that forks the workers (they inherit the value)


def _set_driver_pid() -> None:
    global _DRIVER_PID
    _DRIVER_PID = os.getpid()


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (no library wraps it)
        if _DRIVER_PID is not None and os.getppid() != _DRIVER_PID:
            os._exit(1)  # the driver died before the request took effect
    except (OSError, AttributeError):
        pass


def _init_shared(shared: Any) -> None:  # used with the spawn start method
    global _SHARED
    _SHARED = shared
    _quiet_on_interrupt()


class LocalExecutor:
    """Run shard work in this process (``jobs == 1``) or in a pool of ``jobs`` worker processes."""

    name = "local"
    # The workers run on this host and every task runs exactly once (a pool that loses a worker
    # fails the scan; nothing is retried), so a task may write part of its result to the
    # driver's spill directories instead of returning it (see Detector.use_worker_spill).
    local_disk = True

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def slots(self) -> int:
        """Items worked on at once: the ``jobs`` processes."""
        return self.jobs

    def close(self) -> None:
        """Nothing to release: each ``map`` call starts and stops its own pool."""

    @property
    def forks(self) -> bool:
        """Whether ``map`` forks worker processes. A fork copies locks as they are at that
        moment, so the driver must not have threads running then that might hold one the
        children need (numba's compiler lock, taken while a kernel loads, has no fork handler):
        such threads start from ``map``'s ``started`` callback, once every worker is forked."""
        return self.jobs > 1 and "fork" in mp.get_all_start_methods()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any,
        started: Callable[[], None] | None = None,
    ) -> Iterator[tuple[int, Any]]:
        """Run ``fn(item, shared)`` for every item. ``started`` is called once no more worker
        processes will be forked for this call: from then on the driver may run threads of its
        own (see :attr:`forks`)."""
        if self.jobs == 1 or len(items) <= 1:
            if started is not None:
                started()
            for i, item in enumerate(items):
                yield i, fn(item, shared)
            return
        global _SHARED
        methods = mp.get_all_start_methods()
        ctx: Any
        if "fork" in methods:
            _SHARED = shared
            _set_driver_pid()
            ctx = mp.get_context("fork")
            pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(items)), mp_context=ctx,
                                       initializer=_quiet_on_interrupt)
        else:  # pragma: no cover - platforms without fork
            ctx = mp.get_context("spawn")
            pool = ProcessPoolExecutor(
                max_workers=min(self.jobs, len(items)), mp_context=ctx,
                initializer=_init_shared, initargs=(shared,),
            )
        workers = min(self.jobs, len(items))
        all_started = finished = False
        try:
            pending: dict[Future, int] = {}
            it = iter(enumerate(items))
            # Keep a bounded number of tasks in flight so results never pile up in the driver.
            # (The first submit forks the workers. A Ctrl-C during a fork was lost: Python's
            # fork hooks swallow the KeyboardInterrupt. Blocked meanwhile, it is raised after.)
            with _sigint_held():
                for _ in range(2 * self.jobs):
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    pending[pool.submit(_call, fn, nxt[1])] = nxt[0]
            # With the fork start method, CPython's pool forks all of its workers in the first
            # submit() and never forks again (a pool with a dead worker is broken, not refilled).
            # Checked rather than assumed: otherwise ``started`` waits until the pool is shut.
            all_started = len(getattr(pool, "_processes", None) or ()) >= workers
            if started is not None and all_started:
                started()
            # The error reported is the earliest shard's, whatever order the workers finish in
            # (so that the message, naming the file's first bad record, is the same for every
            # --jobs value): after a failure, the shards before it are awaited, none is started.
            failed: tuple[int, BaseException] | None = None
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: pending[f]):
                    idx = pending.pop(fut)
                    error = fut.exception()
                    if error is not None:
                        if failed is None or idx < failed[0]:
                            failed = (idx, error)
                        continue
                    if failed is not None:
                        continue
                    yield idx, fut.result()
                    nxt = next(it, None)
                    if nxt is not None:
                        pending[pool.submit(_call, fn, nxt[1])] = nxt[0]
                if failed is not None:
                    for fut in [f for f, i in pending.items() if i > failed[0]]:
                        fut.cancel()
                        del pending[fut]
            if failed is not None:
                raise failed[1]
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True, cancel_futures=True)
            else:
                _stop(pool)
            _SHARED = None
            if started is not None and not all_started:
                started()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread for the duration (where the platform allows it); a Ctrl-C
    meanwhile is delivered when it ends. Forked children inherit the mask, and unblock SIGINT
    in their initializer."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not (
            threading.main_thread()):
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool whose map did not finish (an error, or Ctrl-C) without waiting for it.

    A worker that Ctrl-C ends while it sends a result leaves half a message in the pool's
    result pipe, and the pool's manager thread then waits for the rest forever: shutting down
    with ``wait=True`` hung the scan (about one interrupt in 25), and so would the join of that
    thread at the interpreter's exit. So the workers are killed, and once they are gone this
    process closes its own copy of the pipe's write end: the manager thread's read then ends
    (end of file), it takes the pool for broken and stops. (Reached into CPython's pool: it has
    no way to stop with a worker dead mid-message.)"""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        try:
            process.kill()
        except (OSError, ValueError):
            pass
    for process in processes:
        try:
            process.join(timeout=5)
        except (OSError, ValueError, AssertionError):
            pass
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    if writer is not None and not any(p.is_alive() for p in processes):
        try:
            writer.close()
        except OSError:
            pass
    pool.shutdown(wait=False, cancel_futures=True)


def one_numba_thread() -> None:
    """Keep numba's parallel kernels to one thread in a worker that is itself one of many.

    Each worker process is one of ``--jobs`` (or one Dask worker thread): numba's own threads
    inside it would oversubscribe the cores (and its thread pool is not safe to carry across fork).
    """
    import numba

    numba.set_num_threads(1)


# Sparse transport of shared state --------------------------------------------------------------

_SPARSE_MIN_BYTES = 2**20  # smaller arrays travel as they are


class SparsePickled:
    """A value whose pickle stores large, mostly-zero integer arrays sparsely.

    The plans of later passes hold corpus-wide count tables sized for the worst case, so on most
    corpora they are mostly zeros: hundreds of MB that shrink to a few MB as (index, value) pairs
    of the non-zero slots. Executors whose workers do not share the
    driver's memory send plans wrapped in this; ``value`` is the plan, dense again.
    Everything else pickles as usual, and the pickle is exact (integer arrays only).

    An unpickled copy keeps its pickled form and sends that on (Dask's broadcast copies from worker
    to worker) without encoding again. It costs little: the sparse form is small, and an array
    that travelled dense is itself a view of the pickle's buffer. It also unpacks only when
    ``value`` is first read, not on arrival: a Dask broadcast hands the pickle from worker to
    worker, and unpacking hundreds of MB of tables at every hop would make each worker wait for
    the one before it; read by a task, every worker unpacks its copy at the same time.
    """

    __slots__ = ("_value", "_wire", "_lock")

    def __init__(self, value: Any, wire: tuple[bytes, list[Any]] | None = None) -> None:
        self._value = value
        self._wire = wire
        self._lock: threading.Lock | None = None

    @classmethod
    def _packed(cls, head: bytes, buffers: list[Any]) -> SparsePickled:
        out = cls(None, (head, buffers))
        out._lock = threading.Lock()  # a worker may run several task threads
        return out

    @property
    def value(self) -> Any:
        """The value, unpacked on first use."""
        lock = self._lock
        if lock is not None:
            with lock:
                if self._lock is not None:  # not unpacked by another thread meanwhile
                    head, buffers = self._wire  # type: ignore[misc]
                    self._value = pickle.loads(head, buffers=buffers)
                    self._lock = None
        return self._value

    def __reduce__(self) -> tuple[Any, ...]:
        if self._wire is not None:
            head, received = self._wire
            return (_unpickle_sparse, (head, [pickle.PickleBuffer(b) for b in received]))
        buffers: list[pickle.PickleBuffer] = []
        head = _SparsePickler(buffers.append).dumps(self._value)
        # The buffers (the arrays' bytes) go out of band when the outer pickle allows it
        # (protocol 5 with a buffer callback, as Dask uses), so nothing is copied to build them.
        return (_unpickle_sparse, (head, buffers))


def _unpickle_sparse(head: bytes, buffers: list[Any]) -> SparsePickled:
    return SparsePickled._packed(head, buffers)


class _SparsePickler(pickle.Pickler):
    def __init__(self, buffer_callback: Callable[[pickle.PickleBuffer], Any]) -> None:
        import io

        self._out = io.BytesIO()
        super().__init__(self._out, protocol=5, buffer_callback=buffer_callback)

    def dumps(self, value: Any) -> bytes:
        self.dump(value)
        return self._out.getvalue()

    def reducer_override(self, obj: Any) -> Any:
        if (type(obj) is np.ndarray and obj.nbytes >= _SPARSE_MIN_BYTES
                and obj.dtype.kind in "biu" and obj.flags.c_contiguous):
            return _sparse_reduce(obj)
        return NotImplemented


def _sparse_reduce(a: np.ndarray) -> Any:
    """``a`` as (index, value) pairs of its non-zero slots, or the default pickle when the pairs
    would not take under half of the dense size."""
    flat = a.reshape(-1)
    index_type = np.uint32 if flat.size <= 2**32 else np.uint64
    pair_bytes = np.dtype(index_type).itemsize + a.itemsize
    n_nonzero = int(np.count_nonzero(flat))
    if n_nonzero * pair_bytes > a.nbytes // 2:
        return NotImplemented
    index, values = nonzero_pairs(flat, n_nonzero, index_type)
    return (_from_index, (a.shape, a.dtype.str, index, values))


def _from_index(shape: tuple[int, ...], dtype: str, index: np.ndarray,
                values: np.ndarray) -> np.ndarray:
    out = np.zeros(int(np.prod(shape)), dtype)
    scatter(out, index, values)
    return out.reshape(shape)


def make_executor(config: ScanConfig) -> Any:
    """The executor ``config.executor`` names: ``local`` (default) or ``dask``."""
    if config.executor == "dask":
        from poisonscan.engine.dask import DaskExecutor

        return DaskExecutor(config.jobs, config.scheduler)
    return LocalExecutor(config.jobs)
