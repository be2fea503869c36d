"""Spill directories: made with an owner, removed on cleanup, on collection, and after a kill."""

from __future__ import annotations

import errno
import gc
import json
import os
import random
import socket
import string
import subprocess
import sys

import pytest

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


def test_a_failed_spill_write_names_the_file_and_what_to_do(spill_root):
    spill = SpillDir("switches")
    target = spill.file("0001.bin")
    with pytest.raises(OSError) as err, spill.writing(target):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert err.value.errno == errno.ENOSPC
    assert err.value.filename == target
    assert "No space left on device" in err.value.strerror
    assert "TMPDIR" in err.value.strerror
    spill.cleanup()


def test_a_full_disk_while_spilling_is_one_line_and_exit_2(tmp_path, spill_root, monkeypatch):
    """Through the command line: the scan stops with one line naming the spill file, exit 2,
    and leaves no spill directory behind."""
    from click.testing import CliRunner

    from poisonscan.cli import cli
    from poisonscan.detectors import trigger

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(f'{{"text": "document number {i} says hello"}}\n'
                              for i in range(50)))

    def full(self):
        with self._dir.writing(self._path(0)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(trigger._SwitchSpill, "_flush", full)
    result = CliRunner().invoke(cli, ["scan", str(corpus), "--jobs", "1", "-q"])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "TMPDIR" in lines[0]
    assert "Traceback" not in result.output
    gc.collect()
    assert os.listdir(spill_root) == []


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_full_disk_while_a_worker_spills_is_one_line_and_exit_2(tmp_path, spill_root,
                                                                  monkeypatch, jobs):
    """The switch rows a task appends to the driver's spill (a local pool, no --state): a
    failed write in the worker process reaches the command line as the same one line."""
    from click.testing import CliRunner

    from poisonscan.cli import cli
    from poisonscan.detectors import trigger

    rng = random.Random(3)
    prose = "the cat sat on the mat while the dog slept by the door of the house. " * 4
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"text": prose + " ".join(
        "".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(60))}) + "\n"
        for _ in range(50)))  # every document switches to random letters
    real_open = open

    def full_disk(path, mode="r", *args, **kwargs):
        if "a" in mode and "-" in os.path.basename(str(path)):  # a worker's partition file
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(trigger, "open", full_disk, raising=False)
    result = CliRunner().invoke(cli, ["scan", str(corpus), "--jobs", jobs, "-q",
                                      "--detectors", "trigger"])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "No space left on device" in lines[0] and "TMPDIR" in lines[0]
    assert "-" in lines[0].rsplit("/", 1)[-1]  # names the worker's file
    assert "Traceback" not in result.output
    gc.collect()
    assert os.listdir(spill_root) == []
