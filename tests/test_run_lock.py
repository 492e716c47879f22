"""The run-directory lock: a second autointerp process on a run directory stops at once with one
line and writes nothing, or with ``--wait`` waits for the first; a holder killed with SIGKILL
never blocks the next run. Holders are real processes; every wait has a deadline."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autointerp.runlock import LOCK_FILENAME, RunDirInUseError, hold_run_dir, read_holder
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer, hang, reply
from autointerp.testing.runs import scripted_answers, write_run_config

respond = scripted_answers()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1", "HF_HUB_OFFLINE": "1"}
HOLD = """
import sys, time
from autointerp.runlock import hold_run_dir
with hold_run_dir(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def config(tmp_path: Path, server: ScriptedLLMServer) -> Path:
    model = tmp_path / "model"
    if not model.exists():
        save_tiny(tiny_model("gpt2"), model)
    return write_run_config(tmp_path / "run.toml", base_url=server.openai_base_url, model=model)


@pytest.fixture
def finished(autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path) -> Path:
    """A finished run (tmp_path/run) of tmp_path/run.toml; returns the run directory."""
    autointerp_llm_server.responder = respond
    done = autointerp_cli("run", str(config(tmp_path, autointerp_llm_server)), "--no-report")
    assert done.exit_code == 0, done.stderr
    return tmp_path / "run"


def wait_for_line(stream, expected: str, timeout: float = 60.0) -> str:
    """The first line of ``stream`` holding ``expected`` (read in a thread: never blocks past
    ``timeout``)."""
    found: list[str] = []

    def read() -> None:
        for raw in stream:
            line = raw.decode() if isinstance(raw, bytes) else raw
            if expected in line:
                found.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"no line with {expected!r} within {timeout:g} s"
    return found[0]


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """``holder(run_dir)``: a separate process holding ``run_dir``'s lock until it is killed."""
    started: list[subprocess.Popen[bytes]] = []

    def start(run_dir: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, env=ENV
        )
        started.append(proc)
        wait_for_line(proc.stdout, "held")
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def snapshot(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file of the run directory with its size and modification time."""
    return {
        str(p.relative_to(run_dir)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


def test_a_second_process_is_refused_with_one_line_and_writes_nothing(
    finished: Path, autointerp_llm_server: ScriptedLLMServer, autointerp_cli, holder, tmp_path
) -> None:
    run_dir = finished
    requests = len(autointerp_llm_server.requests)
    first = holder(run_dir)
    before = snapshot(run_dir)
    # another config on the same directory: it would start a new run and rewrite config.toml
    other = autointerp_cli("run", str(tmp_path / "run.toml"), "--set", "seed=7")
    assert other.exit_code == 1
    line = other.stderr.strip()
    assert "\n" not in line and "Traceback" not in other.stderr
    pattern = (
        rf"error: {re.escape(str(run_dir))} is in use by another autointerp process "
        rf"\(pid {first.pid} on {re.escape(socket.gethostname())} since \d\d:\d\d:\d\d\); "
        r"wait for it or stop it"
    )
    assert re.fullmatch(pattern, line), line
    assert autointerp_cli("score", str(run_dir)).exit_code == 1  # by directory too
    cache = autointerp_cli("cache", "x.txt", "--out", str(run_dir))
    assert cache.exit_code == 1 and "is in use by another autointerp process" in cache.stderr
    assert snapshot(run_dir) == before  # no config.toml rewrite, no store write, no new file
    assert len(autointerp_llm_server.requests) == requests
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.status == "finished"


def test_wait_proceeds_once_the_holder_is_gone(
    finished: Path, autointerp_llm_server: ScriptedLLMServer, holder
) -> None:
    requests = len(autointerp_llm_server.requests)
    first = holder(finished)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "autointerp", "score", str(finished), "--wait"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        line = wait_for_line(waiting.stderr, "waiting for")
        assert line.startswith(f"waiting for {finished}: in use by another autointerp process")
        assert f"(pid {first.pid} on " in line
        time.sleep(0.5)
        assert waiting.poll() is None  # still waiting
        first.kill()
        assert waiting.wait(timeout=120) == 0, waiting.stderr.read().decode()
        assert "waiting for" not in waiting.stderr.read().decode()  # said once
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(timeout=30)
    assert len(autointerp_llm_server.requests) == requests  # resumed: every score was done
    assert not (finished / LOCK_FILENAME).exists()  # released


def test_ctrl_c_stops_a_wait(finished: Path, holder) -> None:
    holder(finished)
    waiting = subprocess.Popen(
        [sys.executable, "-m", "autointerp", "score", str(finished), "--wait"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        wait_for_line(waiting.stderr, "waiting for")
        waiting.send_signal(signal.SIGINT)
        assert waiting.wait(timeout=30) == 130
        assert "stopped waiting" in waiting.stderr.read().decode()
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(timeout=30)


def test_a_run_killed_with_sigkill_does_not_block_the_next(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    server = autointerp_llm_server
    server.responder = lambda request: hang(600)  # the first process waits on its LLM calls
    path = config(tmp_path, server)
    run_dir = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "autointerp", "run", str(path), "--no-report"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + 120
        while not server.requests:  # the run is in its LLM stage, holding the directory
            assert first.poll() is None, "the first run ended early"
            assert time.monotonic() < deadline, "the first run sent no request"
            time.sleep(0.1)
        assert read_holder(run_dir).pid == first.pid
        refused = autointerp_cli("run", str(path))
        assert refused.exit_code == 1
        assert f"in use by another autointerp process (pid {first.pid} on" in refused.stderr
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    assert (run_dir / LOCK_FILENAME).exists()  # left behind, but nobody holds it
    server.responder = lambda request: reply(respond(request))
    again = autointerp_cli("run", str(path), "--no-report")
    assert again.exit_code == 0, again.stderr
    with Store.open(run_dir) as store:
        (run,) = store.runs()  # the killed run, resumed
        assert run.status == "finished" and len(store.explanations(run.id)) == 4


# -- the lock itself ------------------------------------------------------------------------------


def test_the_lock_is_reentrant_in_its_thread_and_refuses_other_threads(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            with hold_run_dir(run_dir):
                pass
        except RunDirInUseError as exc:
            errors.append(exc)

    with hold_run_dir(run_dir):
        with hold_run_dir(run_dir / ".." / "r"):  # the same directory, spelled otherwise
            assert read_holder(run_dir).pid == os.getpid()
        assert (run_dir / LOCK_FILENAME).exists()  # still held by the outer block
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(30)
        assert len(errors) == 1 and "is in use by another autointerp process" in str(errors[0])
    assert not run_dir.exists()  # created for the lock, left empty: removed


def test_a_directory_that_existed_is_kept_and_the_lock_file_removed(tmp_path: Path) -> None:
    with hold_run_dir(tmp_path):
        holder = read_holder(tmp_path)
        assert holder is not None and holder.host == socket.gethostname()
        assert re.fullmatch(r"pid \d+ on .+ since \d\d:\d\d:\d\d", holder.describe())
    assert tmp_path.is_dir() and not (tmp_path / LOCK_FILENAME).exists()
    with hold_run_dir(tmp_path):  # free again
        pass
