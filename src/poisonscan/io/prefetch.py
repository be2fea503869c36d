"""Run iterator work ahead of its consumer in background threads, in order and with bounded memory.

Arrow parses, validates and decompresses without holding the GIL, so threads give real overlap:

* :func:`prefetch` runs an iterator one step ahead, so reading block ``k + 1`` overlaps with
  converting block ``k``;
* :func:`ordered_map` applies a function to the items of an iterator on a few worker threads (a
  block is parsed while the next ones are), and hands the results back in the items' order.

Both bound how many items are ahead of the consumer, so memory stays bounded, and both raise an
error only after every result that comes before it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
_DONE = object()
_POLL_SECONDS = 0.1  # how often a blocked producer checks whether its consumer has gone


def prefetch(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` in order while a thread produces up to ``depth`` items ahead."""
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                slots.put(value, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)
        finally:
            _close(items)  # stop a generator (and the threads it runs) in this thread, now

    thread = threading.Thread(target=produce, name="poisonscan-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def ordered_map(fn: Callable[[T], R], items: Iterator[T], workers: int,
                ahead: int) -> Generator[R, None, None]:
    """Yield ``fn(item)`` for each of ``items``, in order, computing several at once.

    A feeder thread draws the items (so producing them, e.g. reading a file, also overlaps) and
    submits them to ``workers`` threads. At most ``ahead`` items are drawn but not yet handed to
    the consumer, which bounds memory. An exception raised by ``fn`` or by ``items`` reaches the
    consumer after the results before it. Closing the returned generator stops the threads.
    """
    pending: queue.Queue[object] = queue.Queue()  # futures in item order; bounded by ``room``
    room = threading.Semaphore(max(1, ahead))
    stop = threading.Event()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="poisonscan-parse")

    def feed() -> None:
        try:
            while True:
                while not room.acquire(timeout=_POLL_SECONDS):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    item = next(items)
                except StopIteration:
                    pending.put(_DONE)
                    return
                pending.put(pool.submit(fn, item))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            pending.put(exc)

    feeder = threading.Thread(target=feed, name="poisonscan-feed", daemon=True)
    feeder.start()
    try:
        while True:
            got = pending.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            assert isinstance(got, Future)
            result: R = got.result()
            del got
            yield result
            del result
            room.release()
    finally:
        stop.set()
        room.release()  # a feeder waiting for room wakes now, not after its next poll
        feeder.join()
        pool.shutdown(wait=True, cancel_futures=True)
        _close(items)


def _close(items: Iterator[object]) -> None:
    close = getattr(items, "close", None)
    if close is not None:
        close()
