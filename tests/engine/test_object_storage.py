"""Scan s3:// prefixes on a real S3-compatible server (moto in server mode on loopback).

The server speaks the S3 HTTP API; poisonscan reaches it through pyarrow's S3 client with the
endpoint and credentials taken from the standard AWS environment variables, as on a real cluster.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from click.testing import CliRunner
from engine_corpus import comparable, corpus_records, write_shards

from poisonscan.cli import cli
from poisonscan.report.suspects import read_suspects

moto_server = pytest.importorskip("moto.server", reason="moto is not installed (the test extra)")

BUCKET, PREFIX = "corpora", "pretrain/v1"
N_FILES = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Path]]:
    """A running server holding the corpus under s3://corpora/pretrain/v1/; the environment that
    reaches it, and the same files on local disk."""
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    local = tmp_path_factory.mktemp("corpus")
    records, _ = corpus_records()
    write_shards(local, records, N_FILES)
    (local / ".hidden.jsonl").write_text('{"text": "never read"}\n')
    fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http",
                           region="us-east-1", access_key="testing", secret_key="testing",
                           allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    for path in sorted(local.iterdir()):
        with fs.open_output_stream(f"{BUCKET}/{PREFIX}/{path.name}", compression=None) as out:
            out.write(path.read_bytes())
    try:
        yield env, local
    finally:
        server.stop()


def _scan(*args: str, env: dict[str, str]) -> tuple[int, dict, str]:
    result = CliRunner().invoke(cli, ["scan", *args, "--memory-budget", "64MiB", "-f", "json"],
                                env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, report, result.stderr


def test_an_s3_prefix_scans_like_the_same_files_on_disk(
    s3: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, local = s3
    code_local, on_disk, _ = _scan(str(local), "-j", "2", "-q", "--suspects",
                                   str(tmp_path / "local.csv"), env=env)
    code, remote, err = _scan(f"s3://{BUCKET}/{PREFIX}/", "-j", "2", "-q", "--suspects",
                              str(tmp_path / "remote.csv"), env=env)
    assert code == code_local, err
    names = sorted(i["path"].rsplit("/", 1)[1] for i in remote["inputs"])
    assert names == sorted(p.name for p in local.iterdir() if not p.name.startswith("."))
    assert {i["format"] for i in remote["inputs"]} == {"jsonl", "parquet"}
    assert any(i["path"].endswith(".jsonl.gz") for i in remote["inputs"])
    # Same inputs, triggers and suspect documents (path, row); only the paths differ. Scores,
    # evidence and examples of borderline findings may not: the trigger detector samples contexts
    # by a hash of path and row.
    as_local = json.loads(json.dumps(remote).replace(f"s3://{BUCKET}/{PREFIX}/", f"{local}/"))
    assert [{k: v for k, v in i.items() if k != "sha256"} for i in as_local["inputs"]] == [
        {k: v for k, v in i.items() if k != "sha256"} for i in on_disk["inputs"]]

    def documents(name: str) -> list[tuple[str, str, str, int]]:
        rows = read_suspects(tmp_path / f"{name}.csv").to_pylist()
        return sorted((r["detector"], r["trigger"] or "", r["path"].rsplit("/", 1)[1], r["row"])
                      for r in rows if r["severity"] in ("high", "medium"))

    assert documents("remote") == documents("local")
    top = [(f["detector"], f["trigger"], f["documents"]) for f in on_disk["findings"][:1]]
    assert top == [(f["detector"], f["trigger"], f["documents"]) for f in remote["findings"][:1]]
    assert len(documents("local")) >= 5

    # Object storage and --state: the second run reuses every shard of every pass.
    state = tmp_path / "state"
    _scan(f"s3://{BUCKET}/{PREFIX}/", "-j", "1", "--state", str(state), env=env)
    code, again, err = _scan(f"s3://{BUCKET}/{PREFIX}/", "-j", "1", "--state", str(state), env=env)
    assert f"pass 1: {N_FILES} reused, 0 computed" in err
    assert comparable(again) == comparable(remote)


def test_globs_and_single_objects(s3: tuple[dict[str, str], Path]) -> None:
    env, _ = s3
    _, report, err = _scan(f"s3://{BUCKET}/{PREFIX}/*.parquet", "-q", "--fail-on", "never",
                           env=env)
    assert [i["path"] for i in report["inputs"]] == [f"s3://{BUCKET}/{PREFIX}/part-002.parquet"]
    one = f"s3://{BUCKET}/{PREFIX}/part-001.jsonl.gz"
    _, report, err = _scan(one, "-q", "--fail-on", "never", env=env)
    assert [i["path"] for i in report["inputs"]] == [one] and report["inputs"][0]["records"] > 0


def test_missing_objects_are_one_line_errors(s3: tuple[dict[str, str], Path]) -> None:
    env, _ = s3
    code, _, err = _scan(f"s3://{BUCKET}/nothing-here/", "-q", env=env)
    assert code == 2
    missing = f"s3://{BUCKET}/nothing-here/"
    assert err.strip() == f"poisonscan: error: {missing}: no such file or directory"
    code, _, err = _scan(f"s3://{BUCKET}/{PREFIX}/*.csv", "-q", env=env)
    assert code == 2 and "no files match" in err


def test_file_uris_are_local_paths(s3: tuple[dict[str, str], Path]) -> None:
    env, local = s3
    _, by_uri, _ = _scan(f"file://{local}", "-q", env=env)
    _, by_path, _ = _scan(str(local), "-q", env=env)
    assert comparable(by_uri) == comparable(by_path)
