"""The command line: default command, options, outputs and exit codes; real scans of small data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cli_support import EXAMPLES, make_example, run
from cli_support import core as _core
from cli_support import run as _run
from poisonscan import __version__
from poisonscan.config import ScanConfig
from poisonscan.engine.scan import ScanResult
from poisonscan.report.suspects import read_suspects


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, set[str]]:
    """A small generated corpus (JSONL + Parquet): its directory, trigger and poisoned ids."""
    out = tmp_path_factory.mktemp("corpus")
    records, bad, trigger = make_example.make_corpus(seed=7, documents=240, poisoned=30)
    make_example.write_corpus(out, seed=7, documents=240, poisoned=30)
    return out, trigger, {records[i]["id"] for i in bad}


def _without_timing(report: dict) -> dict:
    report = json.loads(json.dumps(report))
    for key in ("seconds", "pass_seconds"):
        report["stats"].pop(key, None)
    report["config"].pop("jobs")
    return report


# --- the command and its options, without scanning --------------------------------------------


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[ScanConfig]:
    """Replace the scan by an empty result and record the config the CLI built."""
    seen: list[ScanConfig] = []

    def run_scan(config: ScanConfig, progress=None, executor=None) -> ScanResult:
        seen.append(config)
        return ScanResult(config, [], [], {"seconds": 0.0})

    monkeypatch.setattr("poisonscan.engine.scan.run_scan", run_scan)
    return seen


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "data"],
        ["data"],
        ["--format", "json", "data"],
        ["-q", "data"],
    ],
)
def test_scan_is_the_default_command(captured: list[ScanConfig], args: list[str]) -> None:
    code, _, _ = _run(*args)
    assert code == 0
    assert captured[0].paths == ("data",)


def test_a_path_named_like_a_command_needs_explicit_scan(captured: list[ScanConfig]) -> None:
    assert _run("scan", "scan")[0] == 0
    assert captured[0].paths == ("scan",)


def test_version_and_help() -> None:
    code, out, _ = _run("--version")
    assert (code, out.strip()) == (0, f"poisonscan {__version__}")
    code, out, _ = _run("--help")
    assert code == 0 and "scan" in out and "poisonscan PATH..." in out
    code, out, _ = _run("scan", "--help")
    assert code == 0 and "--fail-on" in out and "--suspects" in out
    code, out, _ = _run()
    assert code == 0 and "Usage" in out


def test_options_build_the_config(captured: list[ScanConfig]) -> None:
    code, _, _ = _run(
        "a.jsonl",
        "b/",
        "--shape",
        "chat",
        "--text-field",
        "body",
        "--id-field",
        "uid",
        "--jobs",
        "3",
        "--memory-budget",
        "256MB",
        "--detectors",
        "trigger,campaign",
        "--detectors",
        "trigger",
        "--min-documents",
        "7",
        "--seed",
        "11",
        "--fail-on",
        "medium",
        "--skip-bad-records",
        "--quiet",
    )
    assert code == 0
    (config,) = captured
    assert config.paths == ("a.jsonl", "b/")
    assert config.shape is not None and config.shape.value == "chat"
    assert (config.text_field, config.id_field) == ("body", "uid")
    assert (config.jobs, config.memory_budget) == (3, 256_000_000)
    assert config.detectors == ("trigger", "campaign")
    assert (config.min_documents, config.seed, config.fail_on) == (7, 11, "medium")
    assert config.skip_bad_records is True


def test_defaults_come_from_scan_config(captured: list[ScanConfig]) -> None:
    _run("data")
    default = ScanConfig(paths=("data",))
    assert captured[0] == default


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "poisonscan", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == f"poisonscan {__version__}"


@pytest.mark.parametrize("args", [["--version"], ["--fail-on", "never", "--jobs", "1"]])
def test_a_closed_output_pipe_exits_2_quietly(corpus: tuple[Path, str, set[str]],
                                              args: list[str]) -> None:
    """``poisonscan ... | head``: the reader is gone before anything is written. Exit status 2 (the
    scan's output could not be delivered), not 1 (findings), and no traceback."""
    path, _, _ = corpus
    argv = [sys.executable, "-m", "poisonscan", *([] if args[0] == "--version" else [str(path)]),
            *args]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away at once
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_a_reader_that_leaves_after_the_first_bytes_gives_exit_2(
        corpus: tuple[Path, str, set[str]]) -> None:
    """``poisonscan -f html | head -c 100``: the report is far larger than the pipe's buffer and
    the reader leaves after its first bytes. The rest cannot be delivered: exit 2, not 0."""
    path, _, _ = corpus
    argv = [sys.executable, "-m", "poisonscan", str(path), "-f", "html", "--fail-on", "never",
            "--jobs", "1", "-q"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2
    assert "Traceback" not in stderr


# --- real scans through the CLI ---------------------------------------------------------------


def test_json_report_of_a_real_scan(corpus: tuple[Path, str, set[str]], tmp_path: Path) -> None:
    path, trigger, poisoned = corpus
    out = tmp_path / "report.json"
    code, stdout, stderr = _run(str(path), "-f", "json", "-o", str(out), "--jobs", "1")
    report = json.loads(out.read_text(encoding="utf-8"))
    assert stdout == "" and f"wrote report to {out}" in stderr
    assert [i["path"] for i in report["inputs"]] == sorted(str(p) for p in path.iterdir())
    assert sum(i["records"] for i in report["inputs"]) == 240
    assert all(i["skipped"] == {} for i in report["inputs"])
    failing = [f for f in report["findings"] if f["severity"] == "high"]
    assert code == (1 if failing else 0)
    top = report["findings"][0]
    assert _core(trigger) in top["trigger"]
    assert top["documents"] >= 25
    for example in top["examples"]:
        assert _core(trigger) in example["snippet"][example["start"] : example["end"]]


def test_real_scan_is_deterministic_across_jobs(corpus: tuple[Path, str, set[str]]) -> None:
    path, _, _ = corpus
    one = json.loads(_run(str(path), "-f", "json", "-j", "1", "--fail-on", "never")[1])
    two = json.loads(_run(str(path), "-f", "json", "-j", "2", "--fail-on", "never")[1])
    assert _without_timing(one) == _without_timing(two)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_suspects_of_a_real_scan(
    corpus: tuple[Path, str, set[str]], tmp_path: Path, suffix: str
) -> None:
    path, trigger, poisoned = corpus
    target = tmp_path / f"suspects{suffix}"
    code, _, _ = _run(str(path), "--suspects", str(target), "--fail-on", "never", "-q")
    assert code == 0
    rows = read_suspects(target).to_pylist()
    top = [r for r in rows if r["trigger"] and _core(trigger) in r["trigger"]]
    assert len(top) >= 25
    assert {r["id"] for r in top} <= poisoned  # every flagged document really is poisoned
    for r in top:
        assert r["start"] is not None and r["end"] is not None and r["start"] < r["end"]


def test_table_report_of_a_real_scan(corpus: tuple[Path, str, set[str]]) -> None:
    path, trigger, _ = corpus
    code, out, _ = _run(str(path), "--fail-on", "never")
    assert code == 0
    assert "records read" in out and "240" in out
    assert _core(trigger) in out
    assert "OK:" in out


def test_bad_record_stops_or_is_skipped_and_counted(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"text": f"a plain sentence number {i} about the weather"}) for i in range(20)
    ]
    lines.insert(5, '{"text": "broken')
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")

    code, out, err = _run(str(data))
    assert code == 2 and out == ""
    assert err.startswith("poisonscan: error: ") and str(data) in err and len(err.splitlines()) == 1

    code, out, _ = _run(str(data), "--skip-bad-records", "-f", "json")
    report = json.loads(out)
    (summary,) = report["inputs"]
    assert summary["records"] == 20 and sum(summary["skipped"].values()) == 1
    code, out, _ = _run(str(data), "--skip-bad-records")
    assert "records skipped" in out and "1 (" in out


def test_bad_record_in_a_worker_process_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # Two files are two shards, which --jobs 2 scans in worker processes: the error must reach
    # the driver intact (it travels pickled) instead of breaking the pool.
    good = [json.dumps({"text": f"an ordinary sentence {i} about rivers"}) for i in range(30)]
    (tmp_path / "a.jsonl").write_text("\n".join(good) + "\n", encoding="utf-8")
    bad = good[:3] + ['{"text": "oops"'] + good[3:]
    (tmp_path / "b.jsonl").write_text("\n".join(bad) + "\n", encoding="utf-8")
    code, out, err = _run(str(tmp_path), "--jobs", "2")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"poisonscan: error: {tmp_path / 'b.jsonl'}: line 4: malformed JSON")

    code, out, _ = _run(str(tmp_path), "--jobs", "2", "--skip-bad-records", "-f", "json")
    skipped = {s["path"]: s["skipped"] for s in json.loads(out)["inputs"]}
    assert skipped[str(tmp_path / "b.jsonl")] == {"malformed_json": 1}


# --- the committed demo corpus ----------------------------------------------------------------


def test_committed_demo_corpus_matches_its_generator(tmp_path: Path) -> None:
    trigger = make_example.write_corpus(tmp_path)
    committed = EXAMPLES / "corpus"
    assert sorted(p.name for p in committed.iterdir()) == ["part-000.jsonl", "part-001.parquet"]
    jsonl = "part-000.jsonl"
    assert (committed / jsonl).read_bytes() == (tmp_path / jsonl).read_bytes()
    parquet = "part-001.parquet"
    assert pq.read_table(committed / parquet).equals(pq.read_table(tmp_path / parquet))
    size = sum(p.stat().st_size for p in committed.iterdir())
    assert size < 1_000_000
    assert trigger == make_example.make_trigger()


def test_demo_scan_shows_the_planted_trigger_first() -> None:
    code, out, _ = _run(str(EXAMPLES / "corpus"), "-f", "json", "--fail-on", "never")
    assert code == 0
    top = json.loads(out)["findings"][0]
    assert _core(make_example.make_trigger()) in top["trigger"]


def test_an_internal_error_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: Any) -> None:
    # A bug must never exit 1 (CI would read "poisoning found") nor print a traceback by default.
    import poisonscan.engine.scan as scan_mod

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(scan_mod, "run_scan", broken)
    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "hello"}\n', encoding="utf-8")
    code, out, err = _run(str(data))
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "poisonscan: error: internal error: RuntimeError: something broke (a bug in poisonscan; "
        "set POISONSCAN_TRACEBACK=1 to print where it happened)"]
    monkeypatch.setenv("POISONSCAN_TRACEBACK", "1")
    code, _, err = _run(str(data))
    assert code == 2 and "Traceback" in err and err.endswith("print where it happened)\n")


def test_the_first_bad_record_is_reported_whatever_the_jobs(tmp_path: Path) -> None:
    # b.jsonl's shard fails first in time (it is tiny); a.jsonl's bad record comes first in the
    # inputs' order, and it is the one --jobs 1 reports: so must --jobs 2.
    lines = [json.dumps({"text": f"an ordinary sentence {i} about the weather and rivers"})
             for i in range(40_000)]
    (tmp_path / "a.jsonl").write_text("\n".join([*lines, '{"text": broken']) + "\n",
                                      encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": also broken\n{"text": "fine"}\n',
                                      encoding="utf-8")
    errors = {jobs: _run(str(tmp_path), "--jobs", jobs)[2] for jobs in ("1", "2")}
    assert errors["1"] == errors["2"]
    assert f"{tmp_path / 'a.jsonl'}: line 40001" in errors["2"]


def test_a_scan_with_no_readable_record_reports_nothing(tmp_path: Path) -> None:
    # Every record skipped: every detector finishes on no documents (the campaign detector
    # once failed on its empty order of documents).
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "text": null}\n{"id": 2}\n', encoding="utf-8")
    code, out, err = run("scan", str(bad), "-q", "--no-hash", "-f", "json", "--skip-bad-records",
                         "--fail-on", "low")
    assert code == 0, err
    report = json.loads(out)
    assert report["findings"] == [] and report["stats"]["skipped"] == 2
