"""Run the per-shard work on a Dask cluster (``--executor dask``), a thin layer over distributed.

The same ``scan_shard`` runs on the workers as in a local process pool. Per pass, the shared task
(the detectors' plans, which can be hundreds of MB of count tables) is scattered to every worker
once (``broadcast=True``) and tasks refer to it by future, so it never travels per shard. The driver
keeps at most ``2 x worker threads`` tasks in flight and hands each result to the engine as it
arrives (``as_completed``), where it is merged and dropped, so the driver's memory does not grow
with the number of shards.

Without a scheduler address a ``LocalCluster`` of ``jobs`` single-threaded worker processes is
started (and stopped at the end). Dask is optional: ``pip install 'poisonscan[dask]'``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

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

    def in_flight(self) -> int:
        """How many tasks to keep submitted: two per worker thread (at least four)."""
        threads = sum(self.client.nthreads().values())
        return max(4, 2 * threads)

    def map(
        self, fn: Callable[[Any, Any], Any], items: Sequence[Any], shared: Any
    ) -> Iterator[tuple[int, Any]]:
        """Run ``fn(item, shared)`` for every item; ``shared`` is sent once to each worker."""
        if not items:
            return
        client = self.client
        d = self._distributed
        [shared_future] = client.scatter([shared], broadcast=True, hash=False)
        prefix = f"{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex[:12]}"
        pending: dict[str, tuple[int, Any]] = {}  # task key -> (item index, future)
        queue = iter(enumerate(items))
        results = d.as_completed(loop=client.loop)

        def submit() -> None:
            nxt = next(queue, None)
            if nxt is not None:
                fut = client.submit(fn, nxt[1], shared_future, key=f"{prefix}-{nxt[0]}", pure=False)
                pending[fut.key] = (nxt[0], fut)
                results.add(fut)

        try:
            for _ in range(self.in_flight()):
                submit()
            for fut in results:
                index, _ = pending.pop(fut.key)
                result = fut.result()  # re-raises a worker's exception here
                fut.release()
                submit()
                yield index, result
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
