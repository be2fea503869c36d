"""Config files through the CLI: discovery from the working directory upwards, flags override,
`poisonscan config` prints the effective settings, and the scanned data cannot configure itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import run
from poisonscan.config import ScanConfig


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with a data directory, as the working directory's parent."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.jsonl").write_text('{"text": "hello there"}\n', encoding="utf-8")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    return tmp_path


def _effective(*args: str) -> dict:
    code, out, err = run("config", "-f", "json", *args)
    assert code == 0, err
    return json.loads(out)


def test_pyproject_tool_section_found_from_a_subdirectory(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.poisonscan]\nmin-documents = 9\nfail_on = "medium"\n'
        'detectors = ["trigger"]\nmemory-budget = "256MB"\nbaseline = "ci/baseline.json"\n',
        encoding="utf-8",
    )
    doc = _effective("../data")
    assert doc["source"] == str(project / "pyproject.toml")
    config = doc["config"]
    assert (config["min_documents"], config["fail_on"], config["detectors"]) == (
        9, "medium", ["trigger"])
    assert config["memory_budget"] == 256_000_000
    assert config["baseline"] == str(project / "ci" / "baseline.json")  # relative to the file
    # Flags override the file.
    assert _effective("../data", "--min-documents", "4")["config"]["min_documents"] == 4


def test_poisonscan_toml_wins_and_toml_output(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.poisonscan]\nseed = 1\n", encoding="utf-8")
    (project / "sub" / "poisonscan.toml").write_text("seed = 5\nskip-bad-records = true\n",
                                                     encoding="utf-8")
    code, out, _ = run("config")
    assert code == 0
    assert "seed = 5" in out and "skip-bad-records = true" in out
    assert f"# source: {project / 'sub' / 'poisonscan.toml'}" in out
    assert _effective("--no-config")["config"]["seed"] == ScanConfig().seed
    assert _effective("--config", str(project / "pyproject.toml"))["config"]["seed"] == 1


def test_config_reaches_the_scan(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "poisonscan.toml").write_text('shape = "chat"\n', encoding="utf-8")
    seen: list[ScanConfig] = []

    def fake_run_scan(config, progress=None, executor=None):
        from poisonscan.engine.scan import ScanResult

        seen.append(config)
        return ScanResult(config, [], [], {"seconds": 0.0})

    monkeypatch.setattr("poisonscan.engine.scan.run_scan", fake_run_scan)
    assert run("scan", "../data/a.jsonl", "-q")[0] == 0
    assert seen[-1].shape is not None and seen[-1].shape.value == "chat"
    assert run("scan", "../data/a.jsonl", "-q", "--shape", "text")[0] == 0
    assert seen[-1].shape is not None and seen[-1].shape.value == "text"


def test_a_config_inside_the_scanned_data_is_ignored(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dataset must not silence the scanner: its own poisonscan.toml has no effect."""
    silencer = 'fail-on = "never"\ndetectors = ["campaign"]\nmin-documents = 1000\n'
    (project / "data" / "poisonscan.toml").write_text(silencer, encoding="utf-8")
    (project / "data" / "pyproject.toml").write_text(
        "[tool.poisonscan]\n" + silencer, encoding="utf-8"
    )
    # Scanning the data from outside: discovery never looks into the data.
    doc = _effective("../data")
    assert doc["source"] is None and doc["config"]["fail_on"] == "high"
    # Scanning from inside the data directory: the files are found but ignored, with a note.
    monkeypatch.chdir(project / "data")
    code, out, err = run("config", "-f", "json", ".")
    assert code == 0
    doc = json.loads(out)
    assert doc["source"] is None
    assert doc["config"]["fail_on"] == "high" and doc["config"]["min_documents"] == 5
    assert "ignoring" in err and "inside the scanned data" in err
    # ... also for a real scan, which fails on the data's own planted settings being ignored.
    code, _, err = run("scan", ".", "-f", "json", "-j", "1", "--detectors", "trigger")
    assert code == 0 and "ignoring" in err
    # The operator can still opt in explicitly.
    opted = _effective(".", "--config", "poisonscan.toml")
    assert opted["config"]["fail_on"] == "never"
    # Naming the files instead: the file beside them is used (it may be the project's own), but
    # never unseen: the note names it and what it sets.
    code, out, err = run("config", "-f", "json", "a.jsonl")
    assert json.loads(out)["config"]["fail_on"] == "never"
    assert "which lies beside the scanned files" in err and 'fail-on = "never"' in err
    assert "--no-config" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("min-documents = 'many'\n", "min-documents: give an integer"),
        ("colour = 'red'\n", "colour: unknown setting"),
        ("fail-on = 'sometimes'\n", "fail-on: unknown severity"),
        ("this is not toml\n", "is not valid TOML"),
        # An empty list ran no detector, and reported a poisoned corpus clean.
        ("detectors = []\n", "detectors: the list is empty"),
        ("state-dir = 5\n", "state-dir: give a string"),
        ("executor = 7\n", "executor: give a string"),
    ],
)
def test_bad_config_is_a_one_line_error(project: Path, text: str, message: str) -> None:
    (project / "poisonscan.toml").write_text(text, encoding="utf-8")
    code, out, err = run("scan", "../data", "-q")
    assert code == 2 and out == ""
    assert err.startswith("poisonscan: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_a_bad_flag_value_names_the_flag(tmp_path: Path) -> None:
    data = tmp_path / "a.jsonl"
    data.write_text('{"text": "x"}\n', encoding="utf-8")
    code, _, err = run("scan", str(data), "--memory-budget", "1KB", "--no-config")
    assert code == 2 and err.startswith("poisonscan: error: --memory-budget: ")
    code, _, err = run("scan", str(data), "--min-documents", "1", "--no-config")
    assert code == 2 and err.startswith("poisonscan: error: --min-documents: ")


def test_state_and_executor_settings_of_a_config_file(project: Path) -> None:
    # A relative state directory is the config file's neighbour, as a baseline is; and
    # --executor local leaves out the file's Dask scheduler instead of failing on it.
    (project / "poisonscan.toml").write_text(
        'state-dir = "cache"\nexecutor = "dask"\nscheduler = "tcp://127.0.0.1:1"\n',
        encoding="utf-8")
    code, _, err = run("scan", "../data", "-q", "--executor", "local", "--no-hash",
                       "--detectors", "trigger", "--fail-on", "never")
    assert code == 0, err
    assert (project / "cache" / "CACHEDIR.TAG").exists()
    assert not (project / "sub" / "cache").exists()


def test_a_state_directory_that_holds_the_data_is_refused(project: Path) -> None:
    # Its CACHEDIR.TAG would make later walks pass the data by, and its files would be read as
    # data. Inside the data directory is fine: walks leave it out.
    for state in ("../data", ".."):
        code, _, err = run("scan", "../data", "-q", "--state", state, "--no-config")
        assert code == 2 and "holds the input '../data'" in err, err
    assert not (project / "data" / "CACHEDIR.TAG").exists()
    code, _, err = run("scan", "../data", "-q", "--state", "../data/.state", "--no-config",
                       "--fail-on", "never", "--detectors", "trigger")
    assert code == 0, err
