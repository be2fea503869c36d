"""Progress goes to a terminal only, and never when quiet."""

from __future__ import annotations

import io

from poisonscan.report.progress import NullProgress, RichProgress, make_progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_off_a_terminal_or_when_quiet() -> None:
    assert isinstance(make_progress(stream=io.StringIO()), NullProgress)
    assert isinstance(make_progress(quiet=True, stream=_Tty()), NullProgress)
    with make_progress(stream=io.StringIO()) as progress:
        progress("pass 1/2", 10, 100)


def test_rich_progress_counts_per_phase() -> None:
    stream = _Tty()
    progress = make_progress(stream=stream)
    assert isinstance(progress, RichProgress)
    with progress:
        progress("pass 1/2", 100, 2_000_000)
        progress("pass 1/2", 50, 1_000_000)
        progress("pass 2/2", 150, 3_000_000)
        tasks = progress._progress.tasks
        assert [t.description for t in tasks] == ["pass 1/2", "pass 2/2"]
        assert [t.fields["records"] for t in tasks] == [150, 150]
        assert [t.completed for t in tasks] == [3_000_000, 3_000_000]
