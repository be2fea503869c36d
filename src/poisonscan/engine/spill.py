"""Temporary directories for driver state that would otherwise grow with the corpus.

Detectors whose merged results grow with the number of documents (switch keys, MinHash bands)
write them here as they arrive and read them back a part at a time. A directory goes when its
owner cleans up, when the owning object is garbage-collected (a failed scan) or at exit; a scan
that was killed (SIGKILL, out of memory) runs none of that, so every new spill first removes the
spills of dead scans on this host.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

PREFIX = "poisonscan-"
OWNER = "owner"  # file in each spill: "<host> <pid>" of the scan that made it


def remove_stale_spills(root: str | None = None) -> None:
    """Remove the spill directories of killed scans under ``root`` (default: the temp dir).

    A directory is stale when its owner file names this host and a process that no longer
    exists; directories of live scans, of other hosts sharing the directory, of other users, or
    without an owner file are left alone.
    """
    root = root or tempfile.gettempdir()
    host = socket.gethostname()
    try:
        names = [n for n in os.listdir(root) if n.startswith(PREFIX)]
    except OSError:
        return
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            with open(os.path.join(path, OWNER), encoding="utf-8") as fh:
                owner_host, pid = fh.read().split()
            if owner_host != host or int(pid) == os.getpid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):
            continue


class SpillDir:
    """A fresh ``poisonscan-<kind>-*`` directory in the temp dir (``TMPDIR`` applies)."""

    def __init__(self, kind: str) -> None:
        remove_stale_spills()
        self.path = tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)
        with open(os.path.join(self.path, OWNER), "w", encoding="utf-8") as fh:
            fh.write(f"{socket.gethostname()} {os.getpid()}\n")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def cleanup(self) -> None:
        """Remove the directory (again: a no-op)."""
        self._finalizer()

    def writing(self, path: str | None = None) -> AbstractContextManager[None]:
        """See :func:`writing` (``path`` defaults to the directory)."""
        return writing(path or self.path)


@contextmanager
def writing(path: str) -> Iterator[None]:
    """Turn a failed write to a spill (a full disk, most likely) into an error that says what was
    being written and what to do; the command line prints it as one line. Workers that write to
    a driver's spill use it too: the error pickles, and reaches the driver as it is."""
    try:
        yield
    except OSError as e:
        raise OSError(e.errno, f"cannot write scan state to the temporary directory ("
                               f"{e.strerror or e}; set TMPDIR to a disk with more room)",
                      path) from e
