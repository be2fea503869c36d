"""Ctrl-C stops a scan's process pool promptly, whatever the workers are doing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask") or sys.platform == "win32",
                                reason="POSIX signals")

# A worker dies half-way through sending its result, as one that Ctrl-C ends while it sends a
# large result does: it writes the length of a message and part of it into the pool's result
# pipe (inherited through fork), then exits. The pool's manager thread then waits for the rest.
SCRIPT = textwrap.dedent("""
    import os, signal, struct, sys
    from poisonscan.engine import executors

    # Ctrl-C as a terminal gives it, whatever the test runner's own disposition of SIGINT (an
    # ignored signal stays ignored across exec).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    POOL = []
    real = executors.ProcessPoolExecutor

    def keep(*args, **kwargs):
        pool = real(*args, **kwargs)
        POOL.append(pool)
        return pool

    executors.ProcessPoolExecutor = keep

    def work(item, shared):
        if item == 0:
            writer = POOL[0]._result_queue._writer
            os.write(writer.fileno(), struct.pack("!i", 1 << 20) + b"x" * 1000)
            open(sys.argv[1], "w").close()  # the half message is in the pipe
            os._exit(130)
        import time
        time.sleep(60)

    try:
        for _ in executors.LocalExecutor(2).map(work, [0, 1, 2], None):
            pass
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""")


def test_ctrl_c_with_a_result_half_sent_stops_at_once(tmp_path: Path) -> None:
    script = tmp_path / "half_sent.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "half-sent"
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), proc.communicate()
    time.sleep(0.5)  # the worker has died; the driver waits for its other tasks
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the driver hung after Ctrl-C")
    assert out.strip() == "interrupted", err
    assert proc.returncode == 0, err


def _blocked_in_worker(item: int, shared: object) -> bool:
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_ctrl_c_while_the_pool_forks_is_raised_after_and_workers_take_it() -> None:
    # Python's fork hooks swallowed a KeyboardInterrupt raised during a fork, and the scan ran
    # on. SIGINT is held while the pool forks: delivered after, in the driver...
    from poisonscan.engine import executors

    # (Python's own Ctrl-C handler, whatever an earlier test's event loop left installed.)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with executors._sigint_held():
                signal.raise_signal(signal.SIGINT)
                assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.signal(signal.SIGINT, before)
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    # ... and the workers, forked with it held, take it again.
    assert not any(r for _, r in executors.LocalExecutor(2).map(_blocked_in_worker, [0, 1], None))


def _corpus(tmp_path: Path, n: int = 40000) -> Path:
    import json
    import random

    rng = random.Random(3)
    words = [f"w{i}" for i in range(5000)]
    data = tmp_path / "data.jsonl"
    with data.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": i, "text": " ".join(rng.choices(words, k=120))}) + "\n")
    return data


def _start_scan(tmp_path: Path, data: Path, *args: str) -> subprocess.Popen:
    """The CLI in a process group of its own, with Ctrl-C as a terminal gives it."""
    return subprocess.Popen([sys.executable, "-m", "poisonscan", str(data), "-j", "2", "-q",
                             "--no-config", "--no-hash", "-o", str(tmp_path / "report.txt"),
                             *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _interrupt_and_check(proc: subprocess.Popen, tmp_path: Path) -> None:
    """Ctrl-C the scan's process group: one line on stderr, exit code 2, and no report."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the scan hung after Ctrl-C")
    assert proc.returncode == 2, err
    assert err == "poisonscan: error: interrupted\n"
    assert not (tmp_path / "report.txt").exists()


@pytest.mark.parametrize("delay", [0.1, 2.5])
def test_ctrl_c_during_a_scan_is_one_line_and_exit_code_2(tmp_path: Path, delay: float) -> None:
    # Ctrl-C reaches the whole process group, at any moment: while the CLI loads (a traceback
    # before), or while the pool's workers scan (exit handlers then waited on what it cut).
    proc = _start_scan(tmp_path, _corpus(tmp_path))
    time.sleep(delay)
    _interrupt_and_check(proc, tmp_path)


def _group_processes(pgid: int) -> int:
    """Processes of the process group ``pgid`` (from /proc)."""
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    n += 1
            except OSError:
                pass
    return n


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts processes in /proc")
def test_ctrl_c_during_a_dask_scan_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    # The local cluster's worker processes are in the same process group and got the Ctrl-C
    # too: each printed a KeyboardInterrupt traceback, dozens of lines under poisonscan's one.
    pytest.importorskip("distributed")
    proc = _start_scan(tmp_path, _corpus(tmp_path, 80000), "--executor", "dask")
    deadline = time.monotonic() + 60
    # The CLI and its two workers (at least): the cluster is up and the scan under way.
    while _group_processes(proc.pid) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    assert proc.poll() is None, "the scan ended before the Ctrl-C"
    _interrupt_and_check(proc, tmp_path)
    deadline = time.monotonic() + 30
    while _group_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_processes(proc.pid), "worker processes were left running"
