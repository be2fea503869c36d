"""Compiling later-pass kernels ahead, in a helper process (poisonscan.kernels.warm)."""

from __future__ import annotations

import importlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tests.corpus_gen as gen

from poisonscan.config import ScanConfig
from poisonscan.engine import run_scan
from poisonscan.engine import scan as scan_mod
from poisonscan.engine.executors import LocalExecutor
from poisonscan.kernels.warm import Warmup, cached

ROOT = Path(__file__).resolve().parents[2]


def _poisoned_corpus(tmp_path: Path) -> list[str]:
    """A corpus with a planted trigger: the scan reaches the count and evidence passes."""
    rng = random.Random(7)
    clean = gen.clean_corpus(300, seed=3)
    trigger = gen.special_trigger(rng)
    bad = [gen.poison(rng, rng.choice(clean), trigger, gen.random_chars(rng, 600))
           for _ in range(30)]
    texts, _ = gen.plant(clean, bad, 5)
    return gen.write_corpus(tmp_path / "corpus", texts)


def test_helper_compiles_the_kernel_versions_a_scan_calls(tmp_path):
    """The helper's arguments must have the types of the scan's, or it compiles versions nobody
    loads: a scan in a fresh process, then the helper's function in the same process, must leave
    each kernel with the one version the scan used."""
    paths = _poisoned_corpus(tmp_path)
    script = textwrap.dedent(f"""
        import json
        from poisonscan.config import ScanConfig
        from poisonscan.engine import run_scan
        from poisonscan.detectors.trigger import compile_candidate_kernels
        from poisonscan.kernels.windows import count_occurrences, gather_evidence
        run_scan(ScanConfig(paths={tuple(paths)!r}, jobs=1, detectors=("trigger",)))
        scan = [[str(s) for s in k.signatures] for k in (count_occurrences, gather_evidence)]
        compile_candidate_kernels()
        after = [[str(s) for s in k.signatures] for k in (count_occurrences, gather_evidence)]
        print(json.dumps([scan, after]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr
    scan, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert [len(s) for s in scan] == [1, 1]  # the scan reached both passes, one version each
    assert after == scan


def test_cached_reads_the_numba_index(tmp_path):
    """``cached`` is false for a kernel never compiled into the cache, true once it is, and false
    again when the kernel's source changes."""
    module = tmp_path / "tiny_kernel.py"
    source = "import numba\n@numba.njit(cache=True)\ndef twice(x):\n    return {}\n"
    module.write_text(source.format("2 * x"))
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, sys.argv[1])
        from tiny_kernel import twice
        from poisonscan.kernels.warm import cached
        before = cached([twice])
        twice(3)
        print(before, cached([twice]))
    """)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                              text=True, cwd=ROOT, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert run() == ["False", "True"]
    assert run() == ["True", "True"]
    module.write_text(source.format("x + x + x"))  # numba's source stamp: size and time
    assert run() == ["False", "True"]


def test_cached_answers_yes_when_it_cannot_tell():
    assert cached([object()]) is True  # no numba cache to read: start nothing


def _helper_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str):
    """A module-level function in a module of its own, importable by the helper process."""
    (tmp_path / f"{name}.py").write_text(f"def run():\n    {body}\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name).run


def test_warmup_runs_its_target_in_another_process(tmp_path, monkeypatch):
    out = tmp_path / "ran"
    run = _helper_target(tmp_path, monkeypatch, "warm_target_writes",
                         f"import os; open({str(out)!r}, 'w').write(str(os.getpid()))")
    helper = Warmup(run)
    helper.wait()
    helper.close()
    assert out.read_text() != str(os.getpid())


def test_warmup_does_not_import_from_the_working_directory(tmp_path, monkeypatch):
    """A scan may run inside the data it checks: a module there must not shadow the target's."""
    out = tmp_path / "ran"
    run = _helper_target(tmp_path, monkeypatch, "warm_target_shadowed",
                         f"open({str(out)!r}, 'w').write('real')")
    data = tmp_path / "data"
    data.mkdir()
    (data / "warm_target_shadowed.py").write_text(
        f"def run():\n    open({str(out)!r}, 'w').write('shadow')\n")
    monkeypatch.chdir(data)
    helper = Warmup(run)
    helper.wait()
    assert out.read_text() == "real"


def test_warmup_close_stops_a_helper_still_running(tmp_path, monkeypatch):
    out = tmp_path / "finished"
    run = _helper_target(tmp_path, monkeypatch, "warm_target_sleeps",
                         f"import time; time.sleep(60); open({str(out)!r}, 'w').write('x')")
    helper = Warmup(run)
    t0 = time.perf_counter()
    helper.close()
    assert time.perf_counter() - t0 < 30
    assert not out.exists()


class _Recorder:
    """Stands in for Warmup: records when the engine waits for it and closes it."""

    events: list[str] = []

    def __init__(self, target) -> None:
        self.events.append(f"start {target.__name__}")

    @staticmethod
    def possible() -> bool:
        return True

    def wait(self) -> None:
        self.events.append("wait")

    def close(self) -> None:
        self.events.append("close")


@pytest.fixture()
def recorder(monkeypatch):
    _Recorder.events = []
    monkeypatch.setattr(scan_mod, "Warmup", _Recorder)
    monkeypatch.setattr(scan_mod, "cached", lambda kernels: False)
    return _Recorder.events


def test_engine_waits_for_the_helper_before_the_count_pass(recorder, tmp_path, monkeypatch):
    """The helper starts with the scan, is waited for once the count pass has a plan and before
    its work starts (so that the workers forked for it find the kernels cached), and is not
    left running when the scan ends."""
    seen: list[str] = []
    original = scan_mod._shard_results

    def tracing(executor, shards, task, *args, **kwargs):
        seen.append(f"pass {task.pass_index} after {list(recorder)}")
        return original(executor, shards, task, *args, **kwargs)

    monkeypatch.setattr(scan_mod, "_shard_results", tracing)
    paths = _poisoned_corpus(tmp_path)
    with LocalExecutor(2) as executor:
        result = run_scan(ScanConfig(paths=tuple(paths), jobs=2, detectors=("trigger",)),
                          executor=executor)
    assert any(f.detector == "trigger" for f in result.findings)
    start = "start compile_candidate_kernels"
    assert seen == [f"pass 0 after {[start]}", f"pass 1 after {[start]}",
                    f"pass 2 after {[start, 'wait']}", f"pass 3 after {[start, 'wait']}"]
    assert recorder == [start, "wait"]  # waited for, so closing had nothing left to stop


def test_no_helper_with_one_job(recorder, tmp_path):
    paths = _poisoned_corpus(tmp_path)
    run_scan(ScanConfig(paths=tuple(paths), jobs=1, detectors=("trigger",)))
    assert recorder == []


def test_no_helper_when_the_kernels_are_cached(recorder, tmp_path, monkeypatch):
    monkeypatch.setattr(scan_mod, "cached", lambda kernels: True)
    paths = _poisoned_corpus(tmp_path)
    run_scan(ScanConfig(paths=tuple(paths), jobs=2, detectors=("trigger",)))
    assert recorder == []


def test_helper_closed_when_the_scan_never_needs_it(recorder, tmp_path):
    """Documents too short to hold a switch give no candidates: the count pass has no plan, and
    the helper is closed instead of waited for."""
    paths = gen.write_corpus(tmp_path / "short", [f"note number {i}" for i in range(50)])
    run_scan(ScanConfig(paths=tuple(paths), jobs=2, detectors=("trigger",)))
    assert recorder == ["start compile_candidate_kernels", "close"]
