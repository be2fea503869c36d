"""Run the per-shard work on a Dask cluster (``--executor dask``), a thin layer over distributed.

The same shard work runs on the workers as in a local process pool. Per pass, the shared task
(the detectors' plans, which can be hundreds of MB of count tables) is scattered to every worker
once (``broadcast=True``) and tasks refer to it by future, so it never travels per task. It travels
as :class:`~poisonscan.engine.executors.SparsePickled`: count tables sized for the worst case are
mostly zeros and shrink to their non-zero slots. The driver keeps at most ``2 x worker threads``
tasks in flight; each result is fetched as soon as its task ends (``as_completed`` with results)
and handed to the engine, where it is merged and dropped, so the driver's memory does not grow
with the number of shards. A task runs numba's parallel kernels on one thread: a worker thread is
one core's worth of work, as a process of the local pool is.

Without a scheduler address a ``LocalCluster`` of ``jobs`` single-threaded worker processes is
started (and stopped at the end). Dask is optional: ``pip install 'poisonscan[dask]'``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from poisonscan.engine.executors import SparsePickled, one_numba_thread
from poisonscan.errors import ConfigError

INSTALL_HINT = "pip install 'poisonscan[dask]'"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            f"--executor dask: the Dask extra is not installed; run: {INSTALL_HINT}"
        ) from None
    return distributed


def _run(fn: Callable[[Any, Any], Any], item: Any, shared: SparsePickled) -> Any:
    """One task on a worker: ``fn`` on one item, with the pass's shared state."""
    one_numba_thread()
    return fn(item, shared.value)


class DaskExecutor:
    """Map shard work over a Dask cluster; yields ``(index, result)`` in arrival order.

    Args:
        jobs: worker processes of the ``LocalCluster`` started when no address is given.
        address: a scheduler address (``tcp://host:8786``); None takes ``DASK_SCHEDULER_ADDRESS``
            from the environment, and without it starts a ``LocalCluster``.
        client: an existing ``distributed.Client`` to use instead (not closed by :meth:`close`).
    """

    name = "dask"

    def __init__(self, jobs: int = 1, address: str | None = None, client: Any = None) -> None:
        self.jobs = jobs
        self.address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
        self._distributed = _import_distributed()
        self._client = client
        self._owns_client = client is None
        self._cluster: Any = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client``, connecting (or starting a local cluster) on first use."""
        if self._client is None:
            d = self._distributed
            try:
                if self.address:
                    self._client = d.Client(self.address, set_as_default=False)
                else:
                    self._cluster = d.LocalCluster(
                        n_workers=self.jobs, threads_per_worker=1, processes=True,
                        dashboard_address=":0", silence_logs=logging.ERROR,
                    )
                    self._client = d.Client(self._cluster, set_as_default=False)
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
        """Run ``fn(item, shared)`` for every item; ``shared`` is sent once to each worker."""
        if not items:
            return
        client = self.client
        d = self._distributed
        [shared_future] = client.scatter([SparsePickled(shared)], broadcast=True, hash=False)
        prefix = f"{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex[:12]}"
        pending: dict[str, tuple[int, Any]] = {}  # task key -> (item index, future)
        queue = iter(enumerate(items))
        # with_results: each result is fetched from its worker as soon as it is ready, in the
        # background, rather than one round trip at a time when the engine asks for it.
        results = d.as_completed(loop=client.loop, with_results=True)

        def submit() -> None:
            nxt = next(queue, None)
            if nxt is not None:
                fut = client.submit(_run, fn, nxt[1], shared_future, key=f"{prefix}-{nxt[0]}",
                                    pure=False)
                pending[fut.key] = (nxt[0], fut)
                results.add(fut)

        try:
            for _ in range(self.in_flight()):
                submit()
            for fut, result in results:  # re-raises a worker's exception here
                index, _ = pending.pop(fut.key)
                fut.release()
                del fut
                submit()
                yield index, result
                del result
        finally:
            # An error or an abandoned generator: stop the rest, and free the plans on the workers.
            client.cancel([f for _, f in pending.values()] + [shared_future])

    def close(self) -> None:
        """Close the client, and the local cluster when this executor started one."""
        if self._client is not None and self._owns_client:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
        self._client = self._cluster = None

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
