"""Baselines through the CLI: create, scan --baseline (fail only on new findings), update; and
fingerprints that survive re-ordering and re-sharding of the same data."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from cli_support import core, make_records, run, write_jsonl, write_parquet
from poisonscan.findings import Finding, Severity, normalise_trigger

SCAN = ("-j", "1", "--no-config", "--detectors", "trigger", "-q")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    records, trigger, _ = make_records(seed=7)
    root = tmp_path_factory.mktemp("baseline")
    write_jsonl(root / "data" / "a.jsonl", records[:120])
    write_jsonl(root / "data" / "b.jsonl", records[120:])
    return root, trigger


def _findings(path: Path, *extra: str) -> tuple[int, dict]:
    code, out, _ = run("scan", str(path), "-f", "json", *SCAN, *extra)
    return code, json.loads(out)


def test_baseline_create_then_scan_suppresses_accepted_findings(
    corpus: tuple[Path, str], tmp_path: Path
) -> None:
    root, trigger = corpus
    base = tmp_path / "baseline.json"
    code, _, err = run("baseline", "create", str(root / "data"), "-o", str(base), *SCAN[:-1])
    assert code == 0 and "wrote baseline of" in err
    doc = json.loads(base.read_text(encoding="utf-8"))
    assert doc["poisonscan_baseline"] == 1 and doc["poisonscan_version"]
    assert doc["config"]["detectors"] == ["trigger"]
    entry = doc["findings"][0]
    assert set(entry) == {"id", "detector", "trigger", "severity", "score", "documents"}
    assert core(trigger) in entry["trigger"]

    code, plain = _findings(root / "data", "--fail-on", "low")
    assert code == 1 and plain["findings"]
    code, report = _findings(root / "data", "--fail-on", "low", "--baseline", str(base))
    assert code == 0 and report["findings"] == []
    assert report["baseline"] == {
        "path": str(base),
        "entries": len(doc["findings"]),
        "suppressed": len(plain["findings"]),
        "suppressed_ids": sorted(f["id"] for f in plain["findings"]),
    }
    code, table, err = run("scan", str(root / "data"), "--baseline", str(base), *SCAN[:-1])
    assert code == 0 and "suppressed by" in table and "OK:" in table
    assert f"{len(plain['findings'])} finding" in err
    # Not "no suspected poisoning": the baseline accepted some.
    assert "no suspected poisoning" not in table
    assert "OK: no finding beyond the baseline's accepted ones." in table


def test_a_new_trigger_fails_despite_the_baseline(corpus: tuple[Path, str], tmp_path: Path) -> None:
    root, trigger = corpus
    base = tmp_path / "baseline.json"
    assert run("baseline", "create", str(root / "data"), "-o", str(base), *SCAN)[0] == 0
    new_records, new_trigger, _ = make_records(seed=11, documents=240, poisoned=30)
    assert core(new_trigger) != core(trigger)
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    # A made-up word as the new trigger ("BadMagic" style), planted like the old one.
    write_jsonl(data / "new.jsonl", [
        dict(r, id="n" + r["id"], text=r["text"].replace(new_trigger, "BadMagicVorpal"))
        for r in new_records
    ])
    code, report = _findings(data, "--baseline", str(base))
    assert code == 1
    assert report["findings"] and all(core(trigger) not in (f["trigger"] or "")
                                      for f in report["findings"])
    assert any(f["severity"] == "high" and f["trigger"] == "BadMagicVorpal"
               for f in report["findings"])
    assert report["baseline"]["suppressed"] >= 1

    # update: the new trigger is added, the kept entry keeps the reviewer's note.
    doc = json.loads(base.read_text(encoding="utf-8"))
    doc["findings"][0]["note"] = "reviewed: planted in the demo"
    kept_id = doc["findings"][0]["id"]
    doc["findings"].append({"id": "0" * 16, "detector": "trigger", "trigger": "gone"})
    base.write_text(json.dumps(doc), encoding="utf-8")
    # Removed: the made-up entry, and any earlier finding the grown data no longer has (a low
    # fragment may become part of the new trigger's payload).
    now = {f["id"] for f in _findings(data)[1]["findings"]}
    removed = sum(1 for e in doc["findings"] if e["id"] not in now)
    assert removed >= 1 and kept_id in now
    code, _, err = run("baseline", "update", str(data), "-o", str(base), *SCAN[:-1])
    assert code == 0 and "added" in err and f"{removed} removed" in err
    updated = {e["id"]: e for e in json.loads(base.read_text(encoding="utf-8"))["findings"]}
    assert updated[kept_id]["note"] == "reviewed: planted in the demo"
    assert "0" * 16 not in updated
    assert _findings(data, "--baseline", str(base))[0] == 0


def test_baseline_errors_exit_2(corpus: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = corpus
    code, _, err = run("scan", str(root / "data"), "--baseline", str(tmp_path / "none.json"), *SCAN)
    assert code == 2 and "baseline create" in err
    bad = tmp_path / "bad.json"
    bad.write_text('{"findings": []}', encoding="utf-8")
    code, _, err = run("scan", str(root / "data"), "--baseline", str(bad), *SCAN)
    assert code == 2 and "not a poisonscan baseline" in err


def test_fingerprints_survive_reordering_and_resharding(tmp_path: Path) -> None:
    records, trigger, _ = make_records(seed=7)
    one = tmp_path / "one"
    write_jsonl(one / "all.jsonl", records)
    shuffled = list(records)
    random.Random(3).shuffle(shuffled)
    many = tmp_path / "many"
    write_jsonl(many / "x" / "p0.jsonl.gz", shuffled[:70])
    write_parquet(many / "p1.parquet", shuffled[70:150])
    write_jsonl(many / "p2.jsonl", shuffled[150:])
    _, a = _findings(one, "--fail-on", "never")
    _, b = _findings(many, "--fail-on", "never")
    top = [f for f in a["findings"] if core(trigger) in (f["trigger"] or "")]
    assert top
    assert {f["id"] for f in top} <= {f["id"] for f in b["findings"]}
    # A baseline made from one layout suppresses the same findings in the other.
    base = tmp_path / "b.json"
    assert run("baseline", "create", str(one), "-o", str(base), *SCAN)[0] == 0
    code, c = _findings(many, "--fail-on", "low", "--baseline", str(base))
    assert not any(core(trigger) in (f["trigger"] or "") for f in c["findings"])


def test_an_accepted_finding_that_comes_back_more_severe_fails(corpus: tuple[Path, str],
                                                               tmp_path: Path) -> None:
    # The reviewer accepted the trigger as a medium finding; it now comes back high.
    root, _ = corpus
    code, report = _findings(root / "data", "--fail-on", "never")
    high = [f for f in report["findings"] if f["severity"] == "high"]
    assert high
    base = tmp_path / "baseline.json"
    base.write_text(json.dumps({"poisonscan_baseline": 1, "poisonscan_version": "0.1.0",
                                "config": {}, "findings": [
                                    {"id": f["id"], "detector": f["detector"],
                                     "trigger": f["trigger"], "severity": "medium",
                                     "score": 1.0, "documents": 4} for f in high]}),
                    encoding="utf-8")
    code, report = _findings(root / "data", "--fail-on", "high", "--baseline", str(base))
    assert code == 1 and {f["id"] for f in report["findings"]} >= {f["id"] for f in high}
    assert report["baseline"]["suppressed"] == 0


def test_baseline_update_of_a_missing_file_names_its_option(corpus: tuple[Path, str],
                                                             tmp_path: Path) -> None:
    root, _ = corpus
    code, _, err = run("baseline", "update", str(root / "data"), "-o", str(tmp_path / "no.json"),
                       "-q")
    assert code == 2 and f"--output: {str(tmp_path / 'no.json')!r} does not exist" in err


def test_normalised_triggers_fold_case_and_separators_but_keep_unicode_spaces() -> None:
    # Runs of separating whitespace and letter case do not make a new finding id; a Unicode
    # space does, since the tokeniser takes it for a mark: "cold\u2003front" planted as a
    # trigger is not the ordinary "cold front", and a trigger of em spaces is not empty.
    assert normalise_trigger(" Cold \n\t front ") == "cold front"
    assert normalise_trigger("ﬁle") == "file"  # NFKC still folds compatibility forms
    assert normalise_trigger("cold\u2003front") == "cold\u2003front"
    assert normalise_trigger("cold\u2003front") != normalise_trigger("cold\xa0front")
    assert normalise_trigger("\u2003\u2003") == "\u2003\u2003"
    assert normalise_trigger(None) == normalise_trigger(" \n ") == ""
    assert Finding("trigger", Severity.HIGH, 1.0, "\u2003", ()).id != Finding(
        "trigger", Severity.HIGH, 1.0, "\xa0", ()).id
