"""--state: resume after an interruption, rescan incrementally, survive damaged state files."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from engine_corpus import comparable, config, corpus_records, write_shards

import poisonscan.engine.scan as scan_module
from poisonscan.engine.scan import make_detectors, run_scan
from poisonscan.engine.state import FORMAT_VERSION, ScanState, stable_digest

N_FILES = 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    records, _ = corpus_records()
    write_shards(folder, records, N_FILES)
    return folder


@pytest.fixture(scope="module")
def full_scan(corpus: Path) -> str:
    """The report of a plain scan (no state), which every stateful scan must reproduce."""
    return comparable(run_scan(config(corpus)))


def _state_files(state: Path, pass_index: int | None = None) -> list[Path]:
    pattern = f"pass{'' if pass_index is None else pass_index}*/*.partial"
    return sorted((state / f"v{FORMAT_VERSION}").glob(pattern))


class _Interrupt(RuntimeError):
    pass


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, pass_index: int, shards: int) -> None:
    """Make ``scan_shard`` fail once ``shards`` shards of pass ``pass_index`` have finished."""
    real = scan_module.scan_shard
    done = {"n": 0}

    def flaky(shard, task):  # type: ignore[no-untyped-def]
        if task.pass_index == pass_index:
            if done["n"] == shards:
                raise _Interrupt(f"simulated crash in pass {pass_index}")
            done["n"] += 1
        return real(shard, task)

    monkeypatch.setattr(scan_module, "scan_shard", flaky)


def test_a_rerun_reuses_every_shard_of_every_pass(corpus: Path, full_scan: str,
                                                  tmp_path: Path) -> None:
    first = run_scan(config(corpus, state_dir=str(tmp_path)))
    again = run_scan(config(corpus, state_dir=str(tmp_path)))
    assert comparable(first) == comparable(again) == full_scan
    passes = max(d.n_passes for d in make_detectors(config(corpus)))
    assert [c for _, _, c in first.artifacts["state"].passes] == [N_FILES] * passes
    assert [(r, c) for _, r, c in again.artifacts["state"].passes] == [(N_FILES, 0)] * passes
    assert again.artifacts["state"].digested == 0  # the digest cache knew every file


@pytest.mark.parametrize("pass_index", [0, 1])
def test_an_interrupted_scan_resumes_where_it_stopped(
    corpus: Path, full_scan: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    pass_index: int,
) -> None:
    with monkeypatch.context() as m:
        _interrupt_after(m, pass_index, shards=4)
        with pytest.raises(_Interrupt):
            run_scan(config(corpus, state_dir=str(tmp_path)))
    assert len(_state_files(tmp_path, pass_index)) == 4
    assert not list(tmp_path.rglob(".tmp-*"))  # atomic writes leave no temporaries behind

    resumed = run_scan(config(corpus, state_dir=str(tmp_path)))
    assert comparable(resumed) == full_scan
    passes = resumed.artifacts["state"].passes
    assert passes[pass_index][1:] == (4, N_FILES - 4)  # reused, computed
    assert all(r == N_FILES for _, r, _ in passes[:pass_index])


def test_new_shards_are_the_only_pass0_work_and_findings_equal_a_full_rescan(
    tmp_path: Path,
) -> None:
    records, _ = corpus_records()
    folder, state = tmp_path / "corpus", tmp_path / "state"
    old, new = records[: len(records) * 2 // 3], records[len(records) * 2 // 3:]
    write_shards(folder, old, 4)
    before = run_scan(config(folder, state_dir=str(state)))
    passes = max(d.n_passes for d in make_detectors(config(folder)))
    assert [c for _, _, c in before.artifacts["state"].passes] == [4] * passes

    write_shards(folder, new, 2, first=4)
    incremental = run_scan(config(folder, state_dir=str(state)))
    assert comparable(incremental) == comparable(run_scan(config(folder)))
    summary = incremental.artifacts["state"]
    assert summary.passes[0] == (0, 4, 2)  # pass 0: old shards reused, new ones computed
    # Later passes depend on the corpus-wide pass-0 statistics, which changed: all recomputed.
    assert [(r, c) for _, r, c in summary.passes[1:]] == [(0, 6)] * (passes - 1)
    assert summary.digested == 2
    # Later-pass results of the old corpus can never be used again and were dropped.
    assert {p.parent.name.split("-")[0] for p in _state_files(state)} == {
        f"pass{i}" for i in range(passes)}
    assert all(len(_state_files(state, i)) == 6 for i in range(1, passes))


def test_a_changed_file_is_rescanned(tmp_path: Path) -> None:
    records, _ = corpus_records()
    folder, state = tmp_path / "corpus", tmp_path / "state"
    write_shards(folder, records, 3)
    run_scan(config(folder, state_dir=str(state)))
    path = folder / "part-000.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(reversed(lines)))  # same size, new content (and a new mtime)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed = run_scan(config(folder, state_dir=str(state)))
    assert changed.artifacts["state"].passes[0] == (0, 2, 1)
    assert comparable(changed) == comparable(run_scan(config(folder)))


def test_damaged_state_files_are_ignored_with_a_warning(
    corpus: Path, full_scan: str, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    run_scan(config(corpus, state_dir=str(tmp_path)))
    files = _state_files(tmp_path, 0)
    files[0].write_bytes(b"not a partial at all")
    files[1].write_bytes(files[1].read_bytes()[:-100])  # truncated
    data = bytearray(files[2].read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the body
    files[2].write_bytes(bytes(data))
    (tmp_path / f"v{FORMAT_VERSION}" / "digests.json").write_text("{broken")

    with caplog.at_level(logging.WARNING, logger="poisonscan.state"):
        result = run_scan(config(corpus, state_dir=str(tmp_path)))
    assert comparable(result) == full_scan
    assert result.artifacts["state"].ignored == 4
    assert result.artifacts["state"].passes[0][1:] == (N_FILES - 3, 3)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "bad header" in messages and "checksum mismatch" in messages
    assert "digest cache" in messages


def test_a_killed_scan_resumes(corpus: Path, full_scan: str, tmp_path: Path) -> None:
    """Kill the real command (SIGKILL) once it has stored some results, then run it again."""
    state, out = tmp_path / "state", tmp_path / "report.json"
    cmd = [sys.executable, "-m", "poisonscan", "scan", str(corpus), "--state", str(state),
           "-j", "1", "--memory-budget", "64MiB", "-f", "json", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and not _state_files(state, 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = len(_state_files(state, 0))
    assert stored >= 1

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode in (0, 1), rerun.stderr
    assert f"pass 1: {stored} reused, {N_FILES - stored} computed" in rerun.stderr
    assert comparable(json.loads(out.read_text())) == full_scan


@dataclass(frozen=True)
class _Plan:
    table: np.ndarray
    names: frozenset[str]


def test_stable_digest_depends_on_values_not_on_order() -> None:
    a = {"x": _Plan(np.arange(5, dtype=np.uint32), frozenset({"a", "b", "c"})), "y": [1, 2.5]}
    b = {"y": [1, 2.5], "x": _Plan(np.arange(5, dtype=np.uint32), frozenset({"c", "b", "a"}))}
    assert stable_digest(a) == stable_digest(b)
    assert stable_digest(a) != stable_digest({**a, "y": [1, 2.25]})
    changed = _Plan(np.array([0, 1, 2, 3, 5], dtype=np.uint32), frozenset({"a", "b", "c"}))
    assert stable_digest(a) != stable_digest({**a, "x": changed})
    assert stable_digest(np.zeros(3, np.uint32)) != stable_digest(np.zeros(3, np.int32))
    # The same value in another process (another hash seed for str sets) gives the same digest.
    here = str(Path(__file__).parent)
    code = f"import sys; sys.path.insert(0, {here!r}); import test_state as t; print(t._probe())"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           check=True).stdout.strip()
    assert other == _probe()


def _probe() -> str:
    return stable_digest({"s": {f"w{i}" for i in range(50)}, "t": ("x", None, True)})


def test_a_state_directory_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    from poisonscan.errors import ConfigError

    target = tmp_path / "state"
    target.write_text("")
    with pytest.raises(ConfigError, match="state_dir"):
        config(tmp_path, state_dir=str(target))


def test_unwritable_state_only_warns(corpus: Path, full_scan: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("poisonscan.engine.state._atomic_write", fail)
    state = ScanState(tmp_path)
    with caplog.at_level(logging.WARNING, logger="poisonscan.state"):
        state.save("pass0-x", "y", {"partial": 1})
    assert "cannot write state file" in caplog.text
    shutil.rmtree(tmp_path / f"v{FORMAT_VERSION}")


def test_an_unusable_state_directory_only_warns(corpus: Path, full_scan: str, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / f"v{FORMAT_VERSION}").write_text("a file where the directory goes")
    with caplog.at_level(logging.WARNING, logger="poisonscan.state"):
        result = run_scan(config(corpus, state_dir=str(state)))
    assert comparable(result) == full_scan and "state" not in result.artifacts
    assert "cannot use --state" in " ".join(r.getMessage() for r in caplog.records)


def test_a_state_directory_is_tagged_so_scans_pass_it_by(corpus: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    run_scan(config(data, state_dir=str(data / "state")))
    assert (data / "state" / "CACHEDIR.TAG").read_text().startswith(
        "Signature: 8a477f597d28d172789f06886806bc55")
    again = run_scan(config(data, state_dir=str(data / "state")))
    assert again.inputs and not any(
        Path(i.path).is_relative_to(data / "state") for i in again.inputs)


def test_a_file_rewritten_with_its_old_size_and_mtime_is_rescanned(tmp_path: Path) -> None:
    # rsync -t, cp -p and tar -x restore a rewritten file's mtime; its inode change time moves.
    data = tmp_path / "data"
    data.mkdir()
    path = data / "a.jsonl"
    path.write_text('{"text": "first version of the record"}\n', encoding="utf-8")
    st = os.stat(path)
    state = tmp_path / "state"
    first = run_scan(config(data, state_dir=str(state)))
    time.sleep(0.01)
    path.write_text('{"text": "other version of the record"}\n', encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    second = run_scan(config(data, state_dir=str(state)))
    assert first.artifacts["state"].digested == 1 and second.artifacts["state"].digested == 1
