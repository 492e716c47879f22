"""The driver and the workers of a Ray run, on a real local Ray cluster (conftest.py).

The run's progress display shows the workers alive, read from the cluster as they die and come
back. ``autointerp run`` as a real driver process attached to the cluster, killed with SIGKILL in
the middle of the explain stage, then rerun: nothing finished is lost or redone, no answered LLM
request is sent again, and the export is the uninterrupted run's, byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from autointerp_ray.executor import RayExecutor
from autointerp_ray.plugin import RayConfig
from autointerp_ray.workers import Reading, WorkerWatch, describe

from autointerp.executors import InProcessExecutor
from autointerp.pipeline import stage_progress
from autointerp.store import Store
from autointerp.testing.llm_server import RecordedRequest, ScriptedLLMServer, hang, reply
from autointerp.testing.runs import scripted_answers, write_run_config

pytestmark = pytest.mark.ray  # a real local cluster (conftest.py)

N_LATENTS = 6


def wait_for(read: Callable[[], str], wanted: Callable[[str], bool], seconds: float = 30) -> str:
    """``read()`` once it satisfies ``wanted`` (polled); fails with the last value otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if wanted(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"never seen; last: {value!r}")
        time.sleep(0.05)


def meter(display: object) -> list[str]:
    """What each column of a progress display shows for its first row."""
    from rich.progress import Progress, ProgressColumn

    assert isinstance(display, Progress)
    task = display.tasks[0]
    return [str(c.render(task)) for c in display.columns if isinstance(c, ProgressColumn)]


class Held:
    """A caching actor's life (held for the stage, restarted when its process dies) with a
    restart that takes a while, as loading a model does."""

    def __init__(self, restarted: str) -> None:
        if Path(restarted).exists():
            time.sleep(1.5)

    def pid(self) -> int:
        return os.getpid()


def test_the_display_shows_the_workers_alive_as_they_die_and_come_back(
    ray_cluster: str, tmp_path: Path
) -> None:
    import ray

    executor = RayExecutor(RayConfig(address="auto", retries=2))
    executor.status_interval_s = 0.1
    assert executor.status() == ""  # nothing handed over yet: no cluster contacted
    executor.ensure_connected()
    status = executor.status
    try:
        wait_for(status, lambda s: s == "ray: 1 node · 2 CPUs, 0 busy")
        restarted = tmp_path / "restarted"
        held = ray.remote(Held).options(max_restarts=2, num_cpus=1)
        actors = executor.actors({"run": 1}, lambda: [held.remote(str(restarted)) for _ in "ab"])
        pids = ray.get([a.pid.remote() for a in actors])
        line = wait_for(status, lambda s: "2/2 actors alive" in s)
        assert line == "ray: 2/2 actors alive · 1 node · 2 CPUs, 2 busy"

        display = stage_progress(None, executor=executor, progress=False)
        display.add_task("explaining (default)", total=N_LATENTS)
        assert "ray: 2/2 actors alive · 1 node · 2 CPUs, 2 busy" in meter(display)

        restarted.touch()
        os.kill(pids[0], signal.SIGKILL)  # a worker dies: Ray restarts it
        wait_for(status, lambda s: "1/2 actors alive (1 restarting)" in s)
        wait_for(status, lambda s: "2/2 actors alive" in s)
        assert ray.get(actors[0].pid.remote()) != pids[0]  # a new process

        executor.release_actors()  # caching done: the actors let go of their CPUs
        wait_for(status, lambda s: s == "ray: 1 node · 2 CPUs, 0 busy")
    finally:
        executor.close()
    assert executor.status() == ""

    in_process = stage_progress(None, executor=InProcessExecutor(), progress=False)
    in_process.add_task("explaining (default)", total=1)
    plain = stage_progress(None, progress=False)
    plain.add_task("explaining (default)", total=1)
    assert meter(in_process) == meter(plain)  # an executor without status() shows nothing more


def test_the_workers_line_says_lost_nodes_gpus_and_a_silent_cluster() -> None:
    line = describe(Reading(nodes=7, lost=1, cpus=56, gpus=8, busy_cpus=8, actors=("ALIVE",) * 8))
    assert line == "ray: 8/8 actors alive · 7 nodes · 56 CPUs, 8 GPUs, 8 busy · 1 node lost"
    starting = describe(Reading(1, 0, 1, 0, 0, ("PENDING_CREATION", "DEAD")))
    assert starting == "ray: 0/2 actors alive (1 starting, 1 dead) · 1 node · 1 CPU, 0 busy"
    assert describe(Reading(1, 0, 4, 0, 1, ("", ""))).startswith("ray: 2 actors · 1 node")

    def gone() -> list[object]:
        raise ConnectionError("GCS unreachable")

    watch = WorkerWatch(gone)  # a cluster that stopped answering (or none connected at all)
    assert watch.read() == watch.line
    assert watch.line.startswith("ray: cluster not answering (") and "\n" not in watch.line


# -- the driver killed -----------------------------------------------------------------------------


def request_key(request: RecordedRequest) -> str:
    return json.dumps(request.body, sort_keys=True)


class Gate:
    """Answers the first ``answer_first`` requests (all when None) and leaves the rest hanging,
    so a kill lands with requests in flight; records the bodies it answered."""

    def __init__(self, answer_first: int | None) -> None:
        self.answer_first = answer_first
        self.answered: list[str] = []
        self.hung = 0
        self.lock = threading.Lock()
        self.respond = scripted_answers()

    def __call__(self, request: RecordedRequest) -> object:
        with self.lock:
            if self.answer_first is not None and len(self.answered) >= self.answer_first:
                self.hung += 1
                return hang(600)
            self.answered.append(request_key(request))
        return reply(self.respond(request))


def driver(config: Path, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    """``autointerp run`` in a process of its own, its display written as to a terminal."""
    env = {
        **os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "NO_COLOR": "1",
        "RAY_USAGE_STATS_ENABLED": "0", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1",
        "COLUMNS": "250",
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "autointerp", "run", str(config), "--no-report"],
        stdout=(tmp_path / f"{name}.out").open("wb"),
        stderr=(tmp_path / f"{name}.err").open("wb"),
        env=env,
        cwd=tmp_path,
    )


def rows(run_dir: Path, sql: str) -> list[tuple[object, ...]]:
    """Rows of the store (read-only; [] before the table exists)."""
    path = run_dir / "results.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return list(conn.execute(sql).fetchall())
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


def export(autointerp_cli: Callable[..., object], run_dir: Path, out: Path) -> dict[str, bytes]:
    result = autointerp_cli("export", str(run_dir), "--out", str(out))
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_the_driver_killed_mid_run_resumes_losing_nothing_and_paying_nothing_twice(
    ray_cluster: str,
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli: Callable[..., object],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    server = autointerp_llm_server

    def write(name: str, executor: str) -> Path:
        return write_run_config(
            tmp_path / f"{name}.toml", base_url=server.openai_base_url, model=model_dir,
            run_dir=tmp_path / name, top=executor, concurrency=1, n_latents=N_LATENTS,
            scorers=("detection", "myscorer"),
        )  # fmt: skip

    server.responder = scripted_answers()  # the uninterrupted run, in process
    result = autointerp_cli("run", str(write("whole", "")), "--no-report")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    whole = export(autointerp_cli, tmp_path / "whole", tmp_path / "whole-export")
    sent_before = len(server.requests)

    # the driver: caching on actors, examples and myscorer on tasks of the cluster
    ray_table = f'[executor]\nname = "ray"\naddress = "{ray_cluster}"\ncache_chunk_contexts = 8'
    config, run_dir = write("ray", ray_table), tmp_path / "ray"
    first = Gate(N_LATENTS // 2)
    server.responder = first
    process = driver(config, tmp_path, "first")
    deadline = time.monotonic() + 120
    while True:  # until every answered request is committed and another one hangs
        if process.poll() is not None:
            err = (tmp_path / "first.err").read_text(errors="replace")
            pytest.fail(f"the run ended before the kill (rc {process.returncode}): {err}")
        with first.lock:
            hung = first.hung
        paid = rows(run_dir, "SELECT COUNT(*) FROM llm_calls")
        if hung and paid and paid[0][0] == first.answer_first:
            break
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run never reached the kill point")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(30) == -signal.SIGKILL

    shown = (tmp_path / "first.out").read_text(errors="replace")
    assert "ray: 1 node · 2 CPUs" in shown  # the display showed the workers alive
    finished = {
        table: set(rows(run_dir, f"SELECT idx, created_at FROM {table}"))
        for table in ("explanations", "scores", "examples")
    }
    assert 0 < len(finished["explanations"]) < N_LATENTS
    manifest = (run_dir / "cache").glob("*/manifest.json")
    (manifest_path,) = manifest
    cached = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in manifest_path.parent.iterdir()
    }
    assert json.loads(manifest_path.read_text())["complete"]  # caching finished before the kill

    second = Gate(None)
    server.responder = second
    sent_killed = len(server.requests)
    rerun = driver(config, tmp_path, "second")
    assert rerun.wait(120) == 0, (tmp_path / "second.err").read_text(errors="replace")

    with Store.open(run_dir) as store:
        (run,) = store.runs()  # the same run, resumed and finished
        assert run.status == "finished"
        paid_calls = store.usage(run.id).calls
    for table, before in finished.items():  # nothing finished was lost, or redone
        assert before <= set(rows(run_dir, f"SELECT idx, created_at FROM {table}")), table
    now = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in manifest_path.parent.iterdir()}
    assert now.keys() == cached.keys() and all(now[f][0] == cached[f][0] for f in now)
    assert all(now[f] == cached[f] for f in now if f.startswith("shard-"))  # not cached again
    answered = first.answered + second.answered
    assert len(answered) == len(set(answered)) == paid_calls  # each request paid once
    rerun_sent = {request_key(r) for r in server.requests[sent_killed:]}
    assert not set(first.answered) & rerun_sent  # an answered request is never sent again
    # the whole killed-and-resumed run sent what the uninterrupted one did, plus the requests
    # hanging at the kill (sent again: never answered, never paid)
    whole_sent = {request_key(r) for r in server.requests[:sent_before]}
    assert set(answered) == whole_sent
    assert export(autointerp_cli, run_dir, tmp_path / "ray-export") == whole
