"""`autointerp run` as a real process on the packaged SmolLM2-135M, against the scripted LLM
server: killed with SIGKILL (or stopped with Ctrl-C or SIGTERM) in the middle of a stage, then
rerun.

The server answers the first ``answer_first`` requests and leaves every later one hanging, so the
kill lands while requests are in flight but only after every answered request was committed (the
store's cache holds exactly the answered ones). The rerun must finish with every latent stored
once per stage and never send again a request that was answered before.
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
from pathlib import Path

import pytest

from autointerp.store import Store
from autointerp.testing.llm_server import RecordedRequest, ScriptedLLMServer, hang, reply
from autointerp.testing.runs import scripted_answers, write_run_config

N_LATENTS = 6


respond_text = scripted_answers()  # explanations and detection answers (all active) that parse


def request_key(request: RecordedRequest) -> str:
    return json.dumps(request.body, sort_keys=True)


class Gate:
    """A responder that answers the first ``answer_first`` requests (all when None) and hangs the
    rest; it records which request bodies were answered, in order."""

    def __init__(self, answer_first: int | None) -> None:
        self.answer_first = answer_first
        self.answered: list[str] = []
        self.hung = 0
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest):
        with self.lock:
            if self.answer_first is not None and len(self.answered) >= self.answer_first:
                self.hung += 1
                return hang(600)
            self.answered.append(request_key(request))
        return reply(respond_text(request))

    def at_kill_point(self, run_dir: Path) -> bool:
        """Every answered request is committed and at least one more is hanging."""
        with self.lock:
            answered, hung = len(self.answered), self.hung
        done = answered == self.answer_first and hung >= 1
        return done and committed_calls(run_dir) == answered


def write_config(tmp_path: Path, server: ScriptedLLMServer) -> Path:
    return write_run_config(
        tmp_path / "run.toml", base_url=server.openai_base_url, model="smollm2-135m",
        name="interrupt", concurrency=2, top="threads = 1", top_k=16, n_latents=N_LATENTS,
    )  # fmt: skip


def start(
    config: Path, tmp_path: Path, name: str, background: bool = False
) -> subprocess.Popen[bytes]:
    """``autointerp run config``; ``background``: started with SIGINT ignored, as a shell's
    ``cmd &`` or nohup starts it."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    out = (tmp_path / f"{name}.out").open("wb")
    err = (tmp_path / f"{name}.err").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "autointerp", "run", str(config)],
        stdout=out,
        stderr=err,
        env=env,
        cwd=tmp_path,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None,
    )


def committed_calls(run_dir: Path) -> int:
    """Paid LLM calls in the store's cache (read-only; 0 before the store exists)."""
    path = run_dir / "results.sqlite"
    if not path.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM llm_calls").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def wait_mid_stage(
    process: subprocess.Popen[bytes], gate: Gate | ReaskEveryExplanation, run_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Until ``gate`` is at its kill point; kills the run and fails if it never gets there."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = (tmp_path / "first.err").read_text(errors="replace")
            pytest.fail(f"the run ended before the interruption (rc {process.returncode}): {err}")
        if gate.at_kill_point(run_dir):
            return
        time.sleep(0.05)
    process.kill()
    pytest.fail("the run never reached the interruption point")


def check_resumed(
    run_dir: Path, server: ScriptedLLMServer, first: Gate, second: Gate, sent_before: int
) -> None:
    with Store.open(run_dir) as store:
        (run,) = store.runs()  # the same run, resumed
        assert run.status == "finished"
        latents = {s.latent for s in store.latents(run.id)}
        explanations = store.explanations(run.id)
        scores = store.scores(run.id, "detection")
        assert len(latents) == N_LATENTS
        # exactly once per stage: as many records as latents, one per latent
        assert len(explanations) == N_LATENTS and {e.latent for e in explanations} == latents
        assert len(scores) == N_LATENTS and {s.latent for s in scores} == latents
        assert not store.failures(run.id)
        usage = store.usage(run.id)
    answered = first.answered + second.answered
    # no request was answered twice: every paid call is a distinct request
    assert len(answered) == len(set(answered)) == usage.calls
    # the rerun never re-sent a request the first process had been answered
    assert not set(first.answered) & {request_key(r) for r in server.requests[sent_before:]}
    # what the rerun did send: only the unanswered remainder, each once
    assert len(second.answered) == len(set(second.answered))


@pytest.mark.parametrize(
    "answer_first", [N_LATENTS // 2, N_LATENTS + 1], ids=["mid-explain", "mid-score"]
)
def test_kill_9_mid_stage_then_rerun_repeats_no_request(
    autointerp_llm_server: ScriptedLLMServer, tmp_path: Path, answer_first: int
) -> None:
    server = autointerp_llm_server
    config = write_config(tmp_path, server)
    run_dir = tmp_path / "run"
    first = Gate(answer_first)
    server.responder = first
    process = start(config, tmp_path, "first")
    wait_mid_stage(process, first, run_dir, tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.status == "running"  # killed: nobody could mark it
        # one call per explanation here; detection needs more than one per latent, and a latent
        # is scored as soon as it is explained: the answered calls went to either stage
        explained = len(store.explanations(run.id))
        assert 0 < explained <= min(answer_first, N_LATENTS)
        assert len(store.scores(run.id)) < N_LATENTS
    sent_before = len(server.requests)

    second = Gate(None)
    server.responder = second
    rerun = start(config, tmp_path, "second")
    assert rerun.wait(240) == 0, (tmp_path / "second.err").read_text(errors="replace")
    assert len(server.requests) - sent_before == len(second.answered)
    check_resumed(run_dir, server, first, second, sent_before)


def run_status(run_dir: Path) -> str | None:
    """The status of the store's only run (read-only), or None when it cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{run_dir / 'results.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return str(conn.execute("SELECT status FROM runs").fetchone()[0])
        finally:
            conn.close()
    except (sqlite3.Error, TypeError):
        return None


@pytest.mark.parametrize(
    ("signum", "exit_code", "said", "background"),
    [
        (signal.SIGINT, 130, "interrupted:", False),
        (signal.SIGTERM, 143, "interrupted by SIGTERM:", False),
        (signal.SIGTERM, 143, "interrupted by SIGTERM:", True),  # SIGINT ignored (nohup, &)
    ],
    ids=["ctrl-c", "sigterm", "sigterm-background-job"],
)
def test_ctrl_c_or_sigterm_marks_the_run_interrupted_and_a_rerun_resumes(
    autointerp_llm_server: ScriptedLLMServer,
    tmp_path: Path,
    signum: signal.Signals,
    exit_code: int,
    said: str,
    background: bool,
) -> None:
    server = autointerp_llm_server
    config = write_config(tmp_path, server)
    run_dir = tmp_path / "run"
    first = Gate(N_LATENTS // 2)
    server.responder = first
    process = start(config, tmp_path, "first", background)
    wait_mid_stage(process, first, run_dir, tmp_path)
    process.send_signal(signum)
    assert process.wait(60) == exit_code
    err = (tmp_path / "first.err").read_text(errors="replace")
    (line,) = [x for x in err.splitlines() if "rerun the same command to resume" in x]
    assert line.startswith(said) and f"finished work is saved in {run_dir}" in line
    assert "Traceback" not in err
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.status == "interrupted"
        assert len(store.explanations(run.id)) == N_LATENTS // 2
    sent_before = len(server.requests)

    second = Gate(None)
    seen_while_running: list[str | None] = []

    def resumed(request: RecordedRequest):
        if not seen_while_running:  # the rerun's first request: the run is running again
            seen_while_running.append(run_status(run_dir))
        return second(request)

    server.responder = resumed
    rerun = start(config, tmp_path, "second")
    assert rerun.wait(240) == 0, (tmp_path / "second.err").read_text(errors="replace")
    assert seen_while_running == ["running"]
    check_resumed(run_dir, server, first, second, sent_before)


UNPARSEABLE = "{}"  # "it looks like JSON": the explainer re-asks


class ReaskEveryExplanation:
    """Answers every first explanation request with :data:`UNPARSEABLE` and everything else
    properly; ``hang_reasks``: the re-asks hang, so a kill lands with first answers cached and
    their explanations not stored."""

    def __init__(self, hang_reasks: bool) -> None:
        self.hang_reasks = hang_reasks
        self.answered = self.hung = 0
        self.lock = threading.Lock()

    def __call__(self, request: RecordedRequest):
        reask = any(m.get("content") == UNPARSEABLE for m in request.messages)
        with self.lock:
            if reask and self.hang_reasks:
                self.hung += 1
                return hang(600)
            self.answered += 1
        if "You explain what a neuron" in request.prompt_text and not reask:
            return reply(UNPARSEABLE)
        return reply(respond_text(request))

    def at_kill_point(self, run_dir: Path) -> bool:
        """A re-ask hangs and every answered request is committed."""
        with self.lock:
            answered, hung = self.answered, self.hung
        return hung >= 1 and committed_calls(run_dir) == answered


def test_an_interrupted_run_exports_what_an_uninterrupted_run_exports(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    """Killed after a latent's first answer reached the cache but before its explanation was
    stored, the resumed run takes that answer from the cache: its export must not show it (no
    ``from_cache`` in the meta; ``cost_usd`` is what the answers cost, whoever paid)."""
    server = autointerp_llm_server
    priced = "backoff_base_s = 0.01\nprice_prompt_per_mtok = 1.0\nprice_completion_per_mtok = 2.0"
    exports = {}
    for name in ("whole", "killed"):
        run_dir = tmp_path / name
        config = write_run_config(
            tmp_path / f"{name}.toml", base_url=server.openai_base_url, model="smollm2-135m",
            name="interrupt", run_dir=run_dir, concurrency=2, top="threads = 1", top_k=16,
            n_latents=N_LATENTS,
        )  # fmt: skip
        config.write_text(config.read_text().replace("backoff_base_s = 0.01", priced))
        if name == "killed":
            first = ReaskEveryExplanation(hang_reasks=True)
            server.responder = first
            process = start(config, tmp_path, "first")
            wait_mid_stage(process, first, run_dir, tmp_path)
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            with Store.open(run_dir) as store:
                (run,) = store.runs()
                assert len(store.explanations(run.id)) < N_LATENTS
        server.responder = ReaskEveryExplanation(hang_reasks=False)
        rerun = start(config, tmp_path, name)
        assert rerun.wait(240) == 0, (tmp_path / f"{name}.err").read_text(errors="replace")
        out = tmp_path / f"{name}-export"
        exported = autointerp_cli("export", str(run_dir), "--out", str(out))
        assert exported.exit_code == 0, exported.stderr
        exports[name] = {p.name: p.read_text() for p in sorted(out.iterdir())}
    whole, killed = exports["whole"], exports["killed"]
    metas = [json.loads(line)["meta"] for line in whole["explanations.jsonl"].splitlines()]
    assert metas and all(m["reasks"] == 1 and m["cost_usd"] > 0 for m in metas)  # priced answers
    # the results are the same bytes; the cost file says what each run paid: the same calls and
    # dollars, the resumed one counting the cache hits that gave it the answers paid before the kill
    assert {k: v for k, v in killed.items() if k != "cost.jsonl"} == {
        k: v for k, v in whole.items() if k != "cost.jsonl"
    }
    hits = {}
    for name, files in exports.items():
        rows = [json.loads(line) for line in files["cost.jsonl"].splitlines()]
        hits[name] = {(r["stage"], r["component"]): r.pop("cache_hits") for r in rows}
        exports[name] = rows
    assert exports["killed"] == exports["whole"]
    assert hits["killed"][("explain", "default")] >= 1 and not any(hits["whole"].values())
