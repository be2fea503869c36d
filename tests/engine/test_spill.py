"""Spill directories: made with an owner, removed on cleanup, on collection, and after a kill."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys

from poisonscan.engine.spill import OWNER, SpillDir


def test_spill_dir_has_an_owner_and_goes_on_cleanup_or_collection(spill_root):
    spill = SpillDir("switches")
    assert os.path.dirname(spill.path) == str(spill_root)
    assert os.path.basename(spill.path).startswith("poisonscan-switches-")
    with open(os.path.join(spill.path, OWNER), encoding="utf-8") as fh:
        assert fh.read().split() == [socket.gethostname(), str(os.getpid())]
    spill.cleanup()
    spill.cleanup()  # twice is fine
    assert os.listdir(spill_root) == []
    spill = SpillDir("switches")
    del spill
    gc.collect()
    assert os.listdir(spill_root) == []


def test_a_new_spill_removes_those_of_dead_scans_only(spill_root):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, owner in (("poisonscan-switches-dead", f"{socket.gethostname()} {dead.pid}"),
                        ("poisonscan-switches-live", f"{socket.gethostname()} {os.getppid()}"),
                        ("poisonscan-switches-other", f"elsewhere-{socket.gethostname()} 1"),
                        ("poisonscan-switches-unowned", None)):
        (spill_root / name).mkdir()
        if owner is not None:
            (spill_root / name / OWNER).write_text(owner + "\n")
    spill = SpillDir("campaign")
    left = sorted(os.listdir(spill_root))
    spill.cleanup()
    assert left == sorted([os.path.basename(spill.path), "poisonscan-switches-live",
                           "poisonscan-switches-other", "poisonscan-switches-unowned"])
