"""Run the per-shard work on a Dask cluster (``--executor dask``), a thin layer over distributed.

The same shard work runs on the workers as in a local process pool. Per pass, the shared task
(the detectors' plans, which can be hundreds of MB of count tables) is scattered to every worker
once (``broadcast=True``) and tasks refer to it by future, so it never travels per task. Its large
arrays are scattered on their own, as :class:`~poisonscan.engine.executors.SparsePickled` (count
tables sized for the worst case are mostly zeros and shrink to their non-zero slots), and stay on
the workers while the next pass's plans still hold them: the trigger detector's count tables serve
two passes, and are encoded, sent and unpacked once. The driver keeps at most ``2 x worker threads``
tasks in flight; each result is fetched as soon as its task ends (``as_completed`` with results)
and handed to the engine, where it is merged and dropped, so the driver's memory does not grow
with the number of shards. A task runs numba's parallel kernels on one thread: a worker thread is
one core's worth of work, as a process of the local pool is.

Without a scheduler address a ``LocalCluster`` of ``jobs`` single-threaded worker processes is
started (and stopped at the end). Dask is optional: ``pip install 'poisonscan[dask]'``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonscan.engine.executors import SparsePickled, one_numba_thread
from poisonscan.engine.memory import has_jemalloc
from poisonscan.errors import ConfigError, PoisonscanError

INSTALL_HINT = "pip install 'poisonscan[dask]'"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            f"--executor dask: the Dask extra is not installed; run: {INSTALL_HINT}"
        ) from None
    return distributed


# Dask's own periodic work, made lighter in the LocalCluster poisonscan starts. By default every
# worker samples its task thread's stack every 10 ms for the dashboard's profile, each nanny
# polls its worker's memory every 100 ms, and every process wakes every 20 ms to check its event
# loop and every 500 ms to record CPU and memory: an idle scheduler with two workers took 2.1
# CPU seconds in 20 s on a 2-core machine (a tenth of a core), 0.4 with these settings.
# poisonscan's tasks are numba kernels that the profile cannot see into, and the memory checks
# still run every second.
LIGHT_MONITORING = {
    "distributed.worker.profile.enabled": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "200ms",
}

# glibc malloc settings for the worker processes. Dask's nannies start workers with
# MALLOC_TRIM_THRESHOLD_=65536 so that freed memory goes back to the system at once; that also
# fixes glibc's mmap threshold at 128 KiB, so every array a task allocates and frees is mapped
# and faulted in anew by the next task. A shard's work allocates hundreds of MB of token arrays:
# on the 160 MB scale corpus that setting took 3.6 s of system time against 1.2 s with glibc's
# defaults, for 11 s of user time. These keep arrays under 32 MiB on the heap and the heap's
# free top up to 256 MiB, in the worker processes only.
WORKER_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
}


def worker_pages() -> dict[str, str]:
    """The variables that keep the workers' numpy arrays and Arrow buffers on 4 KB pages, as the
    command line keeps its own (see :func:`poisonscan.engine.memory.prefer_small_pages`): a
    worker is a new interpreter, so the variables numpy and pyarrow read when they load do it
    (jemalloc only where this pyarrow has it). The 256 MB speed corpus, ``--executor dask
    --jobs 2``, on 2026-12-06: 17.1 and 18.0 s with numpy's and mimalloc's huge pages (1,498 and
    2,124 faulted in, 8.3 and 9.3 s of system time) against 14.0 and 14.8 s without (none; 3.1
    and 3.5 s)."""
    env = {"NUMPY_MADVISE_HUGEPAGE": "0"}
    if has_jemalloc():
        env["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
    return env


def cluster_config() -> dict[str, Any]:
    """The Dask configuration of the LocalCluster poisonscan starts and of its client:
    :data:`LIGHT_MONITORING`; :data:`WORKER_MALLOC` and :func:`worker_pages` added to the
    environment the nannies give their workers (a variable already set in the environment of the
    process that starts them wins, as Dask has it); and results fetched from the workers
    directly. By default a client outside the cluster fetches them through the scheduler, which
    then copies every result (some hundreds of MB per GB of text) on the cores the workers use;
    a driver that can reach the workers should not. Set the same on a cluster of your own
    (docs/distributed.md)."""
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", None) or {})
    environ.update(WORKER_MALLOC)
    environ.update(worker_pages())
    return {**LIGHT_MONITORING, "distributed.nanny.pre-spawn-environ": environ,
            "distributed.client.direct-to-workers": True}


# Arrays of the shared state at least this large travel (and are kept) on their own.
_OWN_ARRAY_BYTES = 2**20


class _ArraySplitter(pickle.Pickler):
    """Pickles a value with its large arrays left out, as persistent ids (their order of
    appearance); ``arrays`` lists them. An array referenced twice is listed once."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        super().__init__(self._out, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays: list[np.ndarray] = []
        self._seen: dict[int, int] = {}

    def persistent_id(self, obj: Any) -> int | None:
        if type(obj) is np.ndarray and obj.nbytes >= _OWN_ARRAY_BYTES:
            found = self._seen.get(id(obj))
            if found is None:
                found = self._seen[id(obj)] = len(self.arrays)
                self.arrays.append(obj)
            return found
        return None

    def split(self, value: Any) -> bytes:
        self.dump(value)
        return self._out.getvalue()


class _Joiner(pickle.Unpickler):
    def __init__(self, head: bytes, arrays: list[SparsePickled]) -> None:
        super().__init__(io.BytesIO(head))
        self._arrays = arrays

    def persistent_load(self, pid: Any) -> Any:
        return self._arrays[pid].value


class _Head:
    """The shared state without its large arrays. A worker unpickles it once per pass, with the
    arrays the task brings, and every task of the pass on that worker shares the result."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self._value: Any = None
        self._lock = threading.Lock()  # a worker may run several task threads

    def __getstate__(self) -> bytes:
        return self.data

    def __setstate__(self, data: bytes) -> None:
        self.__init__(data)  # type: ignore[misc]

    def resolve(self, arrays: list[SparsePickled]) -> Any:
        with self._lock:
            if self._value is None:
                self._value = _Joiner(self.data, arrays).load()
            return self._value


@dataclass(frozen=True)
class _Failed:
    """A task's user-facing error (bad input, bad option), returned rather than raised: a raised
    exception makes the worker log a multi-line 'Compute Failed' report on stderr, where the
    scan promises one line. The driver raises it as it arrives."""

    error: PoisonscanError


def _run(fn: Callable[[Any, Any], Any], item: Any, head: _Head,
         arrays: list[SparsePickled]) -> Any:
    """One task on a worker: ``fn`` on one item, with the pass's shared state."""
    one_numba_thread()
    try:
        return fn(item, head.resolve(arrays))
    except PoisonscanError as exc:
        return _Failed(exc)


def _start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, if it is not running, with its stderr on
    the null device.

    The workers' queues start it otherwise, and to spawn it a thread blocks SIGINT and then
    *unblocks* it: inside _interrupts_ignored's window that let an ignored Ctrl-C through, and
    it was lost. And the tracker outlives this process: after a Ctrl-C, which ends the process
    before the cluster's queues are released, it printed a warning about each "leaked"
    semaphore under poisonscan's one line. It reports nothing else a user could act on."""
    from multiprocessing import resource_tracker

    if getattr(resource_tracker._resource_tracker, "_fd", None) is not None:
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no standard error to hide it from
        resource_tracker.ensure_running()
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def _interrupts_ignored() -> Iterator[None]:
    """Start the local cluster's worker processes with SIGINT ignored (a disposition a new
    process keeps through exec, and Python then installs no handler of its own). A Ctrl-C in a
    terminal reaches every process of the foreground group: the workers printed a
    KeyboardInterrupt traceback each, dozens of lines under poisonscan's one. The command's own
    process stops the scan and closes the cluster, which ends the workers.

    Meanwhile SIGINT is also blocked in this thread: Linux keeps a signal pending even while it
    is ignored when the thread it goes to blocks it, so a Ctrl-C sent now arrives once the
    handler and the mask are back. A thread that does not block it (Arrow's pool, started
    before) may still take it and drop it, so the caller keeps this window to the spawning of
    the workers, not their start: ignored for the whole start, on a loaded machine seconds
    long, a Ctrl-C was lost and the scan ran to its end and exited 0. A blocked mask alone does
    not do: a new process starts with none, and asyncio's runner in each worker then turns
    SIGINT into a KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    masks = hasattr(signal, "pthread_sigmask")  # not on Windows
    if masks:
        _start_resource_tracker()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if masks else None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)  # a handler first: SIG_IGN would drop it
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


WORKERS_TIMEOUT = 300.0  # seconds for the local cluster's workers to start


def _wait_spawned(cluster: Any, n: int, timeout: float = 60.0) -> None:
    """Wait until ``n`` of the local cluster's nannies have spawned their worker process (a
    process id), not until the workers are up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The cluster lists a nanny among its workers once its worker is up; while it starts,
        # only in the set of the nannies it created (private, hence getattr: without it this
        # waits until the workers are up, as LocalCluster did).
        nannies = {*list(getattr(cluster, "_created", ())), *list(cluster.workers.values())}
        if sum(1 for w in nannies if getattr(w, "pid", None)) >= n:
            return
        time.sleep(0.02)


class DaskExecutor:
    """Map shard work over a Dask cluster; yields ``(index, result)`` in arrival order.

    Args:
        jobs: worker processes of the ``LocalCluster`` started when no address is given.
        address: a scheduler address (``tcp://host:8786``); None takes ``DASK_SCHEDULER_ADDRESS``
            from the environment, and without it starts a ``LocalCluster``.
        client: an existing ``distributed.Client`` to use instead (not closed by :meth:`close`).
    """

    name = "dask"
    # Workers may run on other hosts, and the scheduler may run a task twice (after a worker is
    # lost): a task's result must be all in what it returns.
    local_disk = False

    def __init__(self, jobs: int = 1, address: str | None = None, client: Any = None) -> None:
        self.jobs = jobs
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        self._distributed = _import_distributed()
        self._client = client
        self._owns_client = client is None
        self._cluster: Any = None
        # Large arrays already on the workers: id -> (array, future, was writeable). Kept from
        # one map call to the next while the next one's shared state still holds them.
        self._arrays: dict[int, tuple[np.ndarray, Any, bool]] = {}

    @property
    def client(self) -> Any:
        """The ``distributed.Client``, connecting (or starting a local cluster) on first use."""
        if self._client is None:
            d = self._distributed
            try:
                if self.address:
                    self._client = d.Client(self.address, set_as_default=False)
                else:
                    import dask

                    # The nannies hand this configuration on to the worker processes. SIGINT
                    # is ignored only while they spawn those: the workers then take seconds to
                    # start, and a Ctrl-C meanwhile must reach this process (see
                    # _interrupts_ignored).
                    with dask.config.set(cluster_config()):
                        with _interrupts_ignored():
                            self._cluster = d.LocalCluster(
                                n_workers=0, threads_per_worker=1, processes=True,
                                dashboard_address=":0", silence_logs=logging.ERROR,
                            )
                            self._cluster.scale(self.jobs)
                            _wait_spawned(self._cluster, self.jobs)
                        self._client = d.Client(self._cluster, set_as_default=False)
                        # (A worker that cannot start would otherwise be waited for forever.)
                        self._client.wait_for_workers(self.jobs, timeout=WORKERS_TIMEOUT)
            except OSError as exc:
                where = self.address or "a local cluster"
                raise ConfigError(f"--scheduler: cannot connect to {where}: {exc}") from None
        return self._client

    def slots(self) -> int:
        """Tasks the cluster runs at once: its worker threads."""
        return max(1, sum(self.client.nthreads().values()))

    def in_flight(self) -> int:
        """How many tasks to keep submitted: two per worker thread (at least four)."""
        return max(4, 2 * self.slots())

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any
    ) -> Iterator[tuple[int, Any]]:
        """Run ``fn(item, shared)`` for every item; ``shared`` is sent once to each worker, and
        its large arrays only if an earlier call did not send them already."""
        if not items:
            return
        client = self.client
        d = self._distributed
        head_future, array_futures = self._share(shared)
        prefix = f"{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex[:12]}"
        pending: dict[str, tuple[int, Any]] = {}  # task key -> (item index, future)
        queue = iter(enumerate(items))
        # with_results: each result is fetched from its worker as soon as it is ready, in the
        # background, rather than one round trip at a time when the engine asks for it.
        results = d.as_completed(loop=client.loop, with_results=True)

        def submit() -> None:
            nxt = next(queue, None)
            if nxt is not None:
                fut = client.submit(_run, fn, nxt[1], head_future, array_futures,
                                    key=f"{prefix}-{nxt[0]}", pure=False)
                pending[fut.key] = (nxt[0], fut)
                results.add(fut)

        try:
            for _ in range(self.in_flight()):
                submit()
            for fut, result in results:  # re-raises a worker's exception here
                if isinstance(result, _Failed):
                    raise result.error
                index, _ = pending.pop(fut.key)
                fut.release()
                del fut
                submit()
                yield index, result
                del result
        finally:
            # An error or an abandoned generator: stop the rest, and free the plans on the workers
            # (but the large arrays, which the next pass may use again).
            client.cancel([f for _, f in pending.values()] + [head_future])

    def _share(self, shared: Any) -> tuple[Any, list[Any]]:
        """Scatter ``shared`` to every worker: its large arrays one by one (reusing those an
        earlier call scattered, and releasing those no longer used), the rest as one head.

        A kept array is made read-only on the driver until it is released, so that changing it
        in place (which the copies on the workers would not see) fails loudly instead.
        """
        splitter = _ArraySplitter()
        head = splitter.split(shared)
        client = self.client
        used = {id(a) for a in splitter.arrays}
        self._release([k for k in self._arrays if k not in used])
        futures = []
        for array in splitter.arrays:
            kept = self._arrays.get(id(array))
            if kept is None or kept[0] is not array:
                [fut] = client.scatter([SparsePickled(array)], broadcast=True, hash=False)
                kept = self._arrays[id(array)] = (array, fut, bool(array.flags.writeable))
                array.flags.writeable = False
            futures.append(kept[1])
        [head_future] = client.scatter([_Head(head)], broadcast=True, hash=False)
        return head_future, futures

    def _release(self, ids: list[int]) -> None:
        futures = []
        for k in ids:
            array, fut, writeable = self._arrays.pop(k)
            if writeable:
                array.flags.writeable = True
            futures.append(fut)
        # A client the caller has closed already took its futures with it.
        if futures and self._client is not None and self._client.status == "running":
            self._client.cancel(futures)

    def close(self) -> None:
        """Close the client, and the local cluster when this executor started one."""
        self._release(list(self._arrays))
        # Closing cuts the client's and the cluster's connections, and asyncio logs each task
        # that a cut left with an exception nobody reads ("Task exception was never
        # retrieved", a traceback each) when it is collected: after a Ctrl-C, two dozen lines
        # before poisonscan's one. Nothing of this process reads those tasks. The level is put
        # back afterwards (a library caller's logging is theirs) but after a Ctrl-C, when the
        # process ends (see __exit__).
        log = logging.getLogger("asyncio")
        level = log.level
        log.setLevel(logging.CRITICAL)
        try:
            if self._client is not None and self._owns_client:
                self._client.close()
            if self._cluster is not None:
                self._cluster.close()
            self._client = self._cluster = None
        finally:
            log.setLevel(level)

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            # Closing a cluster whose start a Ctrl-C cut short can fail inside distributed
            # (its sync() then returned a result it never set: UnboundLocalError), which would
            # replace the interrupt with an internal error. The process is ending anyway, and
            # the tasks the close cut are collected after it: asyncio stays quiet.
            with contextlib.suppress(Exception):
                self.close()
            logging.getLogger("asyncio").setLevel(logging.CRITICAL)
            return
        self.close()
