"""Progress on stderr: records, MB and MB/s per scan phase.

The engine calls ``progress(phase, records, bytes)`` with *increments*. :func:`make_progress`
gives a live rich display when stderr is a terminal and the user did not ask for quiet, and
otherwise a :class:`NullProgress` that does nothing, so logs and pipes never fill with redraws.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class NullProgress:
    """A progress sink that ignores everything (quiet mode, or stderr is not a terminal)."""

    def __call__(self, phase: str, records: int, nbytes: int) -> None:
        """Ignore one progress increment."""

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class _ThroughputColumn(ProgressColumn):
    """``12.3 MB  45.6 MB/s`` from the task's completed bytes and elapsed time."""

    def render(self, task: Task) -> Text:
        mb = task.completed / 1e6
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = f"{mb / elapsed:,.1f} MB/s" if elapsed else "– MB/s"
        return Text(f"{mb:,.1f} MB  {rate}", style="progress.data.speed")


class RichProgress:
    """A live display with one line per phase (e.g. ``pass 1/2``)."""

    def __init__(self, stream: TextIO) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[records]:>12,} records"),
            _ThroughputColumn(),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._records: dict[str, int] = {}
        self._current: TaskID | None = None

    def __call__(self, phase: str, records: int, nbytes: int) -> None:
        """Add ``records`` and ``nbytes`` to ``phase``, starting a new line for a new phase."""
        task = self._tasks.get(phase)
        if task is None:
            if self._current is not None:
                self._progress.stop_task(self._current)
            task = self._progress.add_task(phase, total=None, records=0)
            self._tasks[phase] = task
            self._current = task
        self._records[phase] = self._records.get(phase, 0) + records
        self._progress.update(task, advance=nbytes, records=self._records[phase])

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()


def make_progress(quiet: bool = False, stream: TextIO | None = None) -> NullProgress | RichProgress:
    """A live display on ``stream`` (default stderr), or a no-op where it would only be noise."""
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    if quiet or not (callable(isatty) and isatty()):
        return NullProgress()
    return RichProgress(stream)
