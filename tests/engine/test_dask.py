"""--executor dask on a real LocalCluster of two worker processes: same findings as a local scan.

Starting a cluster is slow, so one cluster serves the module (the CLI reaches it by address), and
two tests start poisonscan's own LocalCluster.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from engine_corpus import clusters, comparable, config, corpus_records, write_shards

from poisonscan.cli import cli
from poisonscan.engine.scan import run_scan
from poisonscan.report.suspects import write_suspects

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
from poisonscan.engine import dask as dask_executor  # noqa: E402 (needs distributed)

N_FILES = 8


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=":0") as lc:
        with distributed.Client(lc, set_as_default=False) as client:
            yield client


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    records, _ = corpus_records()
    write_shards(folder, records, N_FILES)
    return folder


class _SpyClient:
    """A Client that records what the executor sends: scatters, and tasks in flight."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.scatters: list[dict[str, Any]] = []
        self.task_args: list[tuple[Any, ...]] = []
        self.submitted = 0
        self.received = 0
        self.max_in_flight = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def scatter(self, data: Any, **kwargs: Any) -> Any:
        [obj] = data
        self.scatters.append({**kwargs, "kind": type(obj).__name__,
                              "array": getattr(obj, "value", None)})
        return self._client.scatter(data, **kwargs)

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.task_args.append(args)
        self.submitted += 1
        self.max_in_flight = max(self.max_in_flight, self.submitted - self.received)
        return self._client.submit(fn, *args, **kwargs)


def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_a_dask_scan_equals_a_local_scan(cluster: Any, corpus: Path, tmp_path: Path) -> None:
    from poisonscan.engine.dask import DaskExecutor

    spy = _SpyClient(cluster)
    executor = DaskExecutor(client=spy)
    original = executor.map

    def counting_map(fn: Any, items: Any, shared: Any) -> Iterator[tuple[int, Any]]:
        for pair in original(fn, items, shared):
            spy.received += 1
            yield pair

    executor.map = counting_map  # type: ignore[method-assign]
    on_dask = run_scan(config(corpus, executor="dask", jobs=2), executor=executor)
    local = run_scan(config(corpus, jobs=2))

    assert comparable(on_dask) == comparable(local)
    assert clusters(on_dask) == clusters(local)
    assert any(f.detector == "campaign" for f in local.findings)  # real clusters, not singletons
    write_suspects(on_dask.findings, str(tmp_path / "dask.jsonl"))
    write_suspects(local.findings, str(tmp_path / "local.jsonl"))
    assert (tmp_path / "dask.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()

    # The plans went to the workers once per pass, by broadcast, their large arrays at most once
    # per scan; tasks carry only references. 8 files on 2 worker threads: one task per file
    # (small files are grouped only beyond 4 tasks per thread).
    passes = len(on_dask.stats["pass_seconds"])
    assert [s["kind"] for s in spy.scatters].count("_Head") == passes
    assert all(s["broadcast"] for s in spy.scatters)
    arrays = [s["array"] for s in spy.scatters if s["kind"] == "SparsePickled"]
    assert all(a is not b for i, a in enumerate(arrays) for b in arrays[i + 1:])
    assert len(spy.task_args) == passes * N_FILES
    assert all(isinstance(args[2], distributed.Future) for args in spy.task_args)
    assert all(isinstance(f, distributed.Future) for args in spy.task_args for f in args[3])
    # The driver never had more than 2 x worker threads tasks outstanding (plus the one result it
    # is merging: the next task is submitted before that result is handed over).
    assert spy.max_in_flight <= executor.in_flight() + 1 == 5


def test_large_arrays_travel_once_while_later_passes_hold_them(cluster: Any) -> None:
    from poisonscan.engine.dask import DaskExecutor

    spy = _SpyClient(cluster)
    executor = DaskExecutor(client=spy)
    table = np.zeros(2**21, np.uint8)  # 2 MB, mostly zeros: travels sparse
    table[::1000] = 7
    dense = np.arange(2**18, dtype=np.int64)  # 2 MB of non-zeros: travels as it is
    small = np.arange(10)  # travels inside the head
    look = lambda item, shared: (int(shared["t"][item]) + int(shared["d"][item])  # noqa: E731
                                 + int(shared["s"][item % 10]) + shared["n"])

    first = dict(executor.map(look, [0, 1000, 5], {"t": table, "d": dense, "s": small, "n": 1}))
    assert first == {0: 7 + 0 + 0 + 1, 1: 7 + 1000 + 0 + 1, 2: 0 + 5 + 5 + 1}
    # The next pass holds the same table (twice) but not the dense array: only the head travels.
    second = dict(executor.map(look, [2000, 3], {"t": table, "d": table, "s": small, "n": 2}))
    assert second == {0: 7 + 7 + 0 + 2, 1: 0 + 0 + 3 + 2}
    kinds = [s["kind"] for s in spy.scatters]
    assert kinds.count("_Head") == 2 and kinds.count("SparsePickled") == 2
    assert [s["array"] is table for s in spy.scatters if s["kind"] == "SparsePickled"] == [
        True, False]
    # The workers' copy of the table would not see a change made in place: it fails instead.
    assert not table.flags.writeable and dense.flags.writeable  # dense was released
    with pytest.raises(ValueError, match="read-only"):
        table[0] = 1
    # A changed array (a new object) travels again.
    table2 = table.copy()
    third = dict(executor.map(look, [0], {"t": table2, "d": table2, "s": small, "n": 0}))
    assert third == {0: 7 + 7 + 0 + 0} and table.flags.writeable
    executor.close()  # the client is the caller's: only the kept arrays are released
    assert table2.flags.writeable
    assert cluster.submit(lambda: 1).result() == 1


def test_the_cli_reaches_a_scheduler_by_flag_or_environment(
    cluster: Any, corpus: Path, tmp_path: Path
) -> None:
    address = cluster.scheduler.address
    local_out, dask_out, env_out = (tmp_path / n for n in ("l.json", "d.json", "e.json"))
    state = tmp_path / "state"
    code, _, _ = _cli("scan", str(corpus), "-j", "2", "--memory-budget", "64MiB", "-q",
                      "-f", "json", "-o", str(local_out))
    assert code in (0, 1)
    code_d, _, err = _cli("scan", str(corpus), "--executor", "dask", "--scheduler", address,
                          "--memory-budget", "64MiB", "--state", str(state), "-f", "json",
                          "-o", str(dask_out))
    assert code_d == code, err
    code_e, _, err = _cli("scan", str(corpus), "--executor", "dask", "--memory-budget", "64MiB",
                          "-q", "-f", "json", "-o", str(env_out),
                          env={"DASK_SCHEDULER_ADDRESS": address})
    assert code_e == code, err
    reports = [json.loads(p.read_text()) for p in (local_out, dask_out, env_out)]
    assert reports[1]["config"]["executor"] == "dask"
    assert reports[1]["config"]["scheduler"] == address
    assert comparable(reports[0]) == comparable(reports[1]) == comparable(reports[2])

    # The state written through Dask serves a local run: every shard of every pass is reused.
    _, _, err = _cli("scan", str(corpus), "--memory-budget", "64MiB", "--state", str(state),
                     "-f", "json", "-o", str(tmp_path / "again.json"))
    assert f"pass 1: {N_FILES} reused, 0 computed" in err
    assert f"pass 3: {N_FILES} reused, 0 computed" in err


def _sft_files(folder: Path) -> Path:
    """A fine-tuning set (prompt/response pairs with a planted trigger) in two JSONL files."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "detectors" / "test_sft.py"
    spec = importlib.util.spec_from_file_location("sft_cases_for_dask", path)
    assert spec is not None and spec.loader is not None
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    pairs, _, _ = cases.make_dataset("fixed", seed=11)
    folder.mkdir()
    for part in range(2):
        with (folder / f"part{part}.jsonl").open("w") as fh:
            for p in pairs[part::2]:
                fh.write(json.dumps({"prompt": p[0], "response": p[1]}) + "\n")
    return folder


def test_every_plan_array_kept_on_the_workers_gives_the_same_findings(
        cluster: Any, corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every array of every plan sent on its own (and read-only on the driver while the
    workers hold it), as the large tables of big corpora are, each detector still runs and finds
    what a local scan finds: nothing on the driver writes into a plan it has sent."""
    monkeypatch.setattr(dask_executor, "_OWN_ARRAY_BYTES", 1)
    sft = _sft_files(tmp_path / "sft")
    for path in (corpus, sft):
        with dask_executor.DaskExecutor(client=cluster) as executor:
            on_dask = run_scan(config(path, executor="dask", jobs=2), executor=executor)
            kept = list(executor._arrays.values())
            assert kept and all(not a.flags.writeable for a, _, _ in kept)
        local = run_scan(config(path, jobs=2))
        assert on_dask.findings and comparable(on_dask) == comparable(local)
        assert all(a.flags.writeable or not was for a, _, was in kept)  # given back on close


def test_a_worker_error_is_a_one_line_error(cluster: Any, tmp_path: Path) -> None:
    records, _ = corpus_records(documents=60, poisoned=6)
    write_shards(tmp_path, records, 2)
    (tmp_path / "part-009.jsonl").write_text('{"text": "fine"}\n{"text": broken\n')
    code, _, err = _cli("scan", str(tmp_path), "--executor", "dask",
                        "--scheduler", cluster.scheduler.address, "-q", "--memory-budget", "64MiB")
    assert code == 2
    assert err.startswith("poisonscan: error: ") and "part-009.jsonl" in err
    assert len(err.strip().splitlines()) == 1


def test_the_command_starts_its_own_local_cluster(corpus: Path, tmp_path: Path) -> None:
    out_local, out_dask = tmp_path / "l.json", tmp_path / "d.json"
    base = ["scan", str(corpus), "-j", "2", "--memory-budget", "64MiB", "-q", "-f", "json"]
    code, _, _ = _cli(*base, "-o", str(out_local))
    code_d, _, err = _cli(*base, "--executor", "dask", "-o", str(out_dask),
                          env={"DASK_SCHEDULER_ADDRESS": ""})
    assert code_d == code, err
    assert comparable(json.loads(out_dask.read_text())) == comparable(
        json.loads(out_local.read_text()))


def _config_values(keys: list[str]) -> list[Any]:
    import os

    import dask

    return [dask.config.get(k) for k in keys] + [
        os.environ.get(k) for k in [*dask_executor.WORKER_MALLOC, *dask_executor.worker_pages()]]


def test_the_own_local_cluster_is_configured_for_the_scan(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A nanny copies its workers' environment into its own process, and the environment wins
    # over the configuration: an earlier LocalCluster in this process left Dask's values here.
    pages = dask_executor.worker_pages()
    assert pages["NUMPY_MADVISE_HUGEPAGE"] == "0"
    for name in [*dask_executor.WORKER_MALLOC, *pages]:
        monkeypatch.delenv(name, raising=False)
    keys = list(dask_executor.LIGHT_MONITORING)
    expected = [*dask_executor.LIGHT_MONITORING.values(), *dask_executor.WORKER_MALLOC.values(),
                *pages.values()]
    with dask_executor.DaskExecutor(jobs=1, address=None) as executor:
        on_workers = executor.client.run(_config_values, keys)
        direct = executor.client.direct_to_workers
    assert on_workers and all(values == expected for values in on_workers.values())
    assert direct is True  # results come from the workers, not through the scheduler


def test_without_the_dask_extra_the_error_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records, _ = corpus_records(documents=30, poisoned=3)
    write_shards(tmp_path, records, 1)
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    code, _, err = _cli("scan", str(tmp_path), "--executor", "dask", "-q")
    assert code == 2
    assert err.strip() == ("poisonscan: error: --executor dask: the Dask extra is not installed; "
                           "run: pip install 'poisonscan[dask]'")


def test_a_scheduler_without_the_dask_executor_is_a_config_error(tmp_path: Path) -> None:
    records, _ = corpus_records(documents=30, poisoned=3)
    write_shards(tmp_path, records, 1)
    code, _, err = _cli("scan", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1", "-q")
    assert code == 2 and "add --executor dask" in err
