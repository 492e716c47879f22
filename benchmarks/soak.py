"""Soak test: `autointerp run` as a real process, interrupted at random, against a faulty endpoint.

Run it for as long as you like (offline, 127.0.0.1 only, about one core)::

    python benchmarks/soak.py --minutes 30            # --seed N to replay, --keep to keep files

It runs a tiny offline run (the tiny random GPT-2 of ``autointerp.testing.adapters``, its MLP
neurons, the built-in corpus, 6 latents, concurrency 4, explained and scored with detection and
fuzzing) against the scripted LLM server of ``autointerp.testing.llm_server``, which it starts
itself. The server answers about 30 % of requests with a fault: 429 with ``Retry-After``, 500,
a hang past the client's timeout, a dropped connection, a truncated JSON body, or a 200 whose text
is junk (empty, a refusal, broken JSON: no explanation, no answer list). Each cycle starts
``python -m autointerp run CONFIG`` and, at a random moment, does one of:

- ``kill9``: SIGKILL;
- ``sigterm``: SIGTERM (expected: exit 143, one line, the run marked ``interrupted``);
- ``second``: a second ``autointerp run`` on the same run directory, which the run-directory
  lock must refuse (exit 1, one line naming the holder);
- ``outage``: the endpoint is stopped (connection refused) for 1-10 s, then back on the same port;
- ``nothing``: the run ends by itself (exit 0, or 1 with one line: too many failures, or the
  circuit breaker gave up on the endpoint).

A run directory (a *generation*) is reused by the next cycles until a run of it finishes; then a
final clean rerun (no faults, no interruption) must exit 0, and the generation's invariants are
checked. Between cycles one case of a catalogue of bad inputs runs against a fresh run directory
(the whole catalogue runs once at the start); each must exit non-zero with one line on stderr and
no traceback (the damaged-shard cases may instead repair the cache: exit 0 after a warning):
a truncated cache shard, garbage in a shard (header, and data), a binary ``.jsonl`` corpus, an
empty corpus, a read-only run directory, a corrupt ``results.sqlite``, ``latents.indices`` beyond
the source's width, an API key in ``--set`` (which must not be echoed).

Invariants, printed after every cycle and at the end; all must be 0:

- ``lost``: latents of a run with no explanation and no recorded explain failure (or explained,
  with no score and no recorded failure for a scorer) after the final clean rerun;
- ``duplicated``: more than one explanation (or score) for one latent and explainer (scorer);
- ``junk_scored``: explanations that are not the server's text, scores of latents without such an
  explanation, predictions the server never gave (it only answers 1);
- ``resent``: requests sent again after the server answered them (200 with a completion) in the
  same process, or after an earlier process saved the answer in the store; retries of failed
  attempts are fine, and so is an answer lost with the process that was killed while receiving
  it (counted as ``answer_lost_in_kill``, for information);
- ``paid_twice``: request hashes with more than one paid (``cached = 0``) ledger row;
- ``tracebacks``: "Traceback" in any subprocess's stderr;
- ``unexpected``: an exit code or message other than the action's (listed with the reason);
- ``bad_inputs``: catalogue cases that did not end as expected (listed with the reason).

Exit status: 0 when every invariant is 0, else 1. Files (configs, each process's stdout and
stderr) are kept under ``--workdir`` (default: a temporary directory, removed on success unless
``--keep``). Every wait on a subprocess has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autointerp.store import unpack_json
from autointerp.testing.llm_server import (
    Action,
    RecordedRequest,
    ScriptedLLMServer,
    drop,
    hang,
    malformed,
    rate_limit,
    reply,
    server_error,
)

EXPLANATION = "soak words"
N_LATENTS = 6
SCORERS = ("detection", "fuzzing")
RUN_TIMEOUT_S = 300.0  # one `autointerp run` of the tiny config, faults included
BAD_INPUT_TIMEOUT_S = 120.0
LLM_OPTIONS = """timeout_s = 4
backoff_max_s = 1
breaker_threshold = 5
breaker_cooldown_s = 0.5
breaker_max_cooldown_s = 2
breaker_give_up_s = 8
"""
#: 200 answers that are neither an explanation nor a list of 0/1 answers
JUNK = (
    "",
    "I am not sure what you mean.",
    "Sorry, I can't help with that.",
    '{"explanation": ',
    "Answer: maybe",
)
ACTIONS = ("kill9", "sigterm", "second", "outage", "nothing")
LOCK_REFUSAL = "is in use by another autointerp process"
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "NO_COLOR": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "PYTHONUNBUFFERED": "1",
}


def log(line: str) -> None:
    print(line, flush=True)


# -- the endpoint ---------------------------------------------------------------------------------


def messages_key(messages: Any) -> str:
    """A request's identity as both the server and the store see it: its messages."""

    def text(content: Any) -> str:
        if isinstance(content, str):
            return content
        return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))

    return json.dumps([[m.get("role"), text(m.get("content"))] for m in messages or []])


@dataclass
class Sent:
    at: float
    key: str
    kind: str  # reply, junk, rate_limit, server_error, hang, drop, malformed


class FaultyResponder:
    """Parseable answers, with a fault instead for about ``fault_rate`` of the requests."""

    FAULTS = (
        ("rate_limit", 0.25),
        ("server_error", 0.2),
        ("drop", 0.15),
        ("malformed", 0.15),
        ("junk", 0.15),
        ("hang", 0.1),
    )

    def __init__(self, fault_rate: float, seed: int) -> None:
        self.fault_rate = fault_rate
        self.faults = True
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.sent: list[Sent] = []

    def __call__(self, request: RecordedRequest) -> str | Action:
        with self.lock:
            kind = "reply"
            if self.faults and self.rng.random() < self.fault_rate:
                names, weights = zip(*self.FAULTS, strict=True)
                kind = self.rng.choices(names, weights)[0]
            self.sent.append(Sent(request.at, messages_key(request.messages), kind))
        if kind == "rate_limit":
            return rate_limit(retry_after=0.2)
        if kind == "server_error":
            return server_error(500)
        if kind == "drop":
            return drop()
        if kind == "malformed":
            return malformed()
        if kind == "hang":
            return hang(8)
        if kind == "junk":
            return reply(self.rng.choice(JUNK))
        return reply(answer(request))


def answer(request: RecordedRequest) -> str:
    """The explanation, and 1 for every example of the latest message that lists examples."""
    n = 0
    for message in reversed(request.messages):
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        n = sum(1 for line in text.splitlines() if line.startswith("Example "))
        if n or message.get("role") != "user":
            break
    return f"Explanation: {EXPLANATION}\nAnswer: [" + ", ".join(["1"] * n) + "]"


class Endpoint:
    """The scripted server, stoppable and restartable on the same port (an outage)."""

    def __init__(self, responder: FaultyResponder) -> None:
        self.server = ScriptedLLMServer(responder=responder).start()
        self.port = self.server.port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def down(self) -> None:
        self.server.stop()

    def up(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.server.port = self.port
                self.server.start()
                return
            except OSError:  # the port is not free yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


# -- processes ----------------------------------------------------------------------------------


@dataclass
class Proc:
    """One `autointerp` subprocess: its command, exit code, output files and time span."""

    name: str
    argv: list[str]
    out: Path
    err: Path
    popen: subprocess.Popen[bytes]
    t0: float
    t1: float | None = None
    rc: int | None = None
    refused: bool = False
    saved_after: set[str] = field(default_factory=set)

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None (and the process killed) after ``timeout`` seconds."""
        try:
            self.rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(30)
            self.rc = None
        self.t1 = time.monotonic()
        return self.rc


class Launcher:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.count = 0
        self.live: list[Proc] = []

    def start(self, args: list[str], name: str, max_file_bytes: int | None = None) -> Proc:
        """``max_file_bytes``: a file-size limit (RLIMIT_FSIZE) for the process: a full disk
        where no small filesystem can be mounted."""
        self.count += 1
        stem = self.logs / f"{self.count:04d}-{name}"
        argv = [sys.executable, "-m", "autointerp", *args]

        def limit() -> None:
            import resource

            assert max_file_bytes is not None
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            t0 = time.monotonic()
            popen_ = subprocess.Popen(
                argv, stdout=out, stderr=err, env=ENV, preexec_fn=limit if max_file_bytes else None
            )
        proc = Proc(name, argv, Path(f"{stem}.out"), Path(f"{stem}.err"), popen_, t0)
        self.live.append(proc)
        return proc

    def reap(self) -> None:
        for proc in self.live:
            if proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(30)


NOISE = re.compile(r"(it/s\]|s/it\]|^\s*$|^Loading weights|^Writing model shards)")


def meaningful_lines(stderr: str) -> list[str]:
    """stderr without progress-bar noise (transformers' "Loading weights" bars, blank lines)."""
    return [line for line in re.split(r"[\r\n]+", stderr) if not NOISE.search(line)]


# -- the store ------------------------------------------------------------------------------------


def query(run_dir: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the run's store ([] when there is no store or table yet)."""
    path = run_dir / "results.sqlite"
    if not path.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise


def saved_keys(run_dir: Path) -> set[str]:
    return {
        messages_key(unpack_json(r)["messages"])
        for (r,) in query(run_dir, "SELECT request FROM llm_calls")
    }


def run_status(run_dir: Path) -> str | None:
    rows = query(run_dir, "SELECT status FROM runs ORDER BY id DESC LIMIT 1")
    return rows[0][0] if rows else None


# -- one generation: a run directory interrupted until it finishes --------------------------------


@dataclass
class Generation:
    number: int
    run_dir: Path
    config: Path
    procs: list[Proc] = field(default_factory=list)
    cycles: int = 0
    finished: bool = False
    closed: bool = False


@dataclass
class Tally:
    """The invariants over closed generations, and the reasons behind any non-zero one."""

    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, n: int = 1, note: str | None = None) -> None:
        self.counts[name] += n
        if note and n:
            self.notes.append(f"{name}: {note}")


INVARIANTS = (
    "lost", "duplicated", "junk_scored", "resent", "paid_twice", "tracebacks", "unexpected",
    "bad_inputs",
)  # fmt: skip


def store_invariants(gen: Generation, final: bool) -> Tally:
    """duplicated, junk_scored, paid_twice (and lost when ``final``) from the generation's store."""
    t = Tally()
    d = gen.run_dir
    dup_e = query(
        d,
        "SELECT source, idx, explainer, COUNT(*) FROM explanations "
        "GROUP BY source, idx, explainer HAVING COUNT(*) > 1",
    )
    dup_s = query(
        d,
        "SELECT source, idx, scorer, COUNT(*) FROM scores "
        "GROUP BY source, idx, scorer HAVING COUNT(*) > 1",
    )
    for row in dup_e + dup_s:
        t.add("duplicated", 1, f"g{gen.number} {row}")
    explained = {
        (run, src, idx): text
        for run, src, idx, text in query(d, "SELECT run_id, source, idx, text FROM explanations")
    }
    for (run, _src, idx), text in explained.items():
        if text != EXPLANATION:
            t.add("junk_scored", 1, f"g{gen.number} run {run} latent {idx}: explanation {text!r}")
    for run, src, idx, scorer, preds in query(
        d, "SELECT run_id, source, idx, scorer, predictions FROM scores"
    ):
        if explained.get((run, src, idx)) != EXPLANATION:
            t.add("junk_scored", 1, f"g{gen.number} {scorer} of latent {idx} without explanation")
        wrong = [p for p in unpack_json(preds) if p.get("predicted") not in (1, 1.0, None)]
        if wrong:
            t.add("junk_scored", 1, f"g{gen.number} {scorer} of latent {idx}: predicted {wrong}")
    for h, n in query(
        d,
        "SELECT request_hash, COUNT(*) FROM llm_ledger WHERE cached = 0 "
        "GROUP BY request_hash HAVING COUNT(*) > 1",
    ):
        t.add("paid_twice", 1, f"g{gen.number} {h[:12]} paid {n} times")
    if final:
        failed = {(r, s, i, st, c) for r, s, i, st, c in query(d, "SELECT * FROM failures")}
        failed_at = {(r, s, i, st) for r, s, i, st, _ in failed}
        for run, src, idx in query(d, "SELECT run_id, source, idx FROM latents"):
            if (run, src, idx) not in explained:
                if (run, src, idx, "explain") not in failed_at:
                    t.add("lost", 1, f"g{gen.number} run {run} latent {idx}: no explanation")
                continue
            scored = {
                s
                for (s,) in query(
                    d,
                    "SELECT scorer FROM scores WHERE run_id = ? AND source = ? AND idx = ?",
                    (run, src, idx),
                )
            }
            for scorer in SCORERS:
                if scorer not in scored and (run, src, idx, "score", scorer) not in failed:
                    t.add("lost", 1, f"g{gen.number} run {run} latent {idx}: no {scorer} score")
    return t


def resent_requests(gen: Generation, sent: list[Sent]) -> tuple[Tally, int, int]:
    """resent (see the module docstring), answers lost in a kill, and requests of the generation."""
    t = Tally()
    procs = sorted((p for p in gen.procs if not p.refused and p.t1 is not None), key=lambda p: p.t0)
    by_proc: dict[int, list[Sent]] = {id(p): [] for p in procs}
    for s in sent:
        for p in procs:  # the earliest process alive then: the lock lets one work at a time
            if p.t0 <= s.at <= (p.t1 or 0):
                by_proc[id(p)].append(s)
                break
    saved: set[str] = set()
    answered_before: dict[str, Any] = {}  # request -> the process that was answered
    lost_in_kill = total = 0
    for p in procs:
        answered: dict[str, str] = {}  # request -> what the server answered (reply, junk)
        for s in by_proc[id(p)]:
            total += 1
            if s.key in saved:
                t.add("resent", 1, f"g{gen.number} {p.name}: a request saved by an earlier process")
            elif s.key in answered:
                why = f"a request it was answered ({answered[s.key]})"
                t.add("resent", 1, f"g{gen.number} {p.name}: {why}")
            elif s.key in answered_before:
                if answered_before[s.key].rc == 0:  # it ended by itself, yet did not save it
                    earlier = answered_before[s.key].name
                    t.add("resent", 1, f"g{gen.number} {p.name}: a request {earlier} was answered")
                else:
                    lost_in_kill += 1
            if s.kind in ("reply", "junk"):
                answered[s.key] = s.kind
        saved |= p.saved_after
        answered_before.update(dict.fromkeys(answered, p))
    return t, lost_in_kill, total


# -- the soak -------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.work = workdir
        self.rng = random.Random(args.seed)
        self.responder = FaultyResponder(args.fault_rate, args.seed + 1)
        self.endpoint = Endpoint(self.responder)
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.launcher = Launcher(workdir / "logs")
        self.tally = Tally()
        self.lost_in_kill = 0
        self.requests = 0
        self.typical_s = 15.0
        self.generations: list[Generation] = []
        self.catalogue_results: list[tuple[str, str]] = []
        self.started = time.monotonic()
        self.model = workdir / "model"

    # -- set-up

    def write_config(self, path: Path, run_dir: Path, name: str) -> Path:
        from autointerp.testing.runs import write_run_config

        write_run_config(
            path, base_url=self.endpoint.base_url, model=self.model, name=name, run_dir=run_dir,
            n_latents=N_LATENTS, concurrency=4, scorers=SCORERS,
        )  # fmt: skip
        text = path.read_text(encoding="utf-8")
        text = text.replace("backoff_base_s = 0.01\n", "backoff_base_s = 0.05\n" + LLM_OPTIONS)
        path.write_text(text, encoding="utf-8")
        return path

    def prepare(self) -> None:
        from autointerp.testing.adapters import save_tiny, tiny_model

        save_tiny(tiny_model("gpt2"), self.model)
        template = self.work / "template"
        config = self.write_config(self.work / "template.toml", template, "soak-template")
        self.responder.faults = False
        t0 = time.monotonic()
        proc = self.launcher.start(["run", str(config), "--no-report"], "template")
        rc = proc.wait(RUN_TIMEOUT_S)
        self.typical_s = max(3.0, time.monotonic() - t0)
        self.responder.faults = True
        if rc != 0:
            raise SystemExit(f"the clean template run failed (exit {rc}):\n{proc.stderr}")
        # the store must know every request the server answered, by the same key
        answered = {s.key for s in self.responder.sent if proc.t0 <= s.at <= (proc.t1 or 0)}
        if not answered or answered - saved_keys(template):
            raise SystemExit("cannot match the server's requests to the store's: fix messages_key")
        log(f"template run: {self.typical_s:.1f} s, {len(answered)} requests; workdir {self.work}")

    def elapsed(self) -> str:
        return f"[{time.monotonic() - self.started:5.0f}s]"

    # -- cycles

    def new_generation(self) -> Generation:
        n = len(self.generations) + 1
        run_dir = self.work / f"gen{n}" / "run"
        run_dir.parent.mkdir(parents=True)
        config = self.write_config(run_dir.parent / "run.toml", run_dir, f"soak-g{n}")
        gen = Generation(n, run_dir, config)
        self.generations.append(gen)
        return gen

    def start_run(self, gen: Generation, name: str) -> Proc:
        proc = self.launcher.start(["run", str(gen.config), "--no-report"], f"g{gen.number}-{name}")
        gen.procs.append(proc)
        return proc

    def ended(self, gen: Generation, proc: Proc) -> None:
        """After ``proc`` exited: what it saved, tracebacks, whether the run finished."""
        proc.saved_after = saved_keys(gen.run_dir)
        if "Traceback" in proc.stderr:
            self.tally.add("tracebacks", 1, f"{proc.name}: see {proc.err}")
        if proc.rc == 0 and run_status(gen.run_dir) == "finished":
            gen.finished = True

    def unexpected(self, proc: Proc, why: str) -> None:
        self.tally.add("unexpected", 1, f"{proc.name}: {why} (stderr: {proc.err})")

    def natural_end(self, proc: Proc) -> str:
        """Check a run that ended by itself: 0, or 1 with error lines only."""
        if proc.rc is None:
            self.unexpected(proc, f"still running after {RUN_TIMEOUT_S:g} s")
            return "hung"
        if proc.rc == 1:
            lines = meaningful_lines(proc.stderr)
            if not any(line.startswith("error:") for line in lines):
                self.unexpected(proc, "exit 1 without an 'error:' line")
            return "exit 1: " + "; ".join(lines)[-160:]
        if proc.rc != 0:
            self.unexpected(proc, f"exit {proc.rc}")
        return f"exit {proc.rc}"

    def cycle(self, gen: Generation, action: str) -> str:
        gen.cycles += 1
        proc = self.start_run(gen, action)
        # a moment from start-up to past the end (the second run: while the first holds the lock)
        at = self.rng.uniform(0.2, (0.5 if action == "second" else 1.2) * self.typical_s)
        try:
            proc.popen.wait(at)
            already = True
        except subprocess.TimeoutExpired:
            already = False
        if already or action == "nothing":
            proc.wait(RUN_TIMEOUT_S)
            self.ended(gen, proc)
            return f"ran to the end ({self.natural_end(proc)})"
        if action == "kill9":
            proc.popen.kill()
            proc.wait(30)
            self.ended(gen, proc)
            if proc.rc not in (-signal.SIGKILL, 0, 1):
                self.unexpected(proc, f"exit {proc.rc} after SIGKILL")
            return f"SIGKILL at {at:.1f}s (status {run_status(gen.run_dir)})"
        if action == "sigterm":
            proc.popen.send_signal(signal.SIGTERM)
            proc.wait(60)
            self.ended(gen, proc)
            return f"SIGTERM at {at:.1f}s: " + self.check_sigterm(gen, proc)
        if action == "second":
            return f"second run at {at:.1f}s: " + self.check_second(gen, proc)
        # outage
        down_s = self.rng.uniform(1, 10)
        self.endpoint.down()
        time.sleep(down_s)
        self.endpoint.up()
        proc.wait(RUN_TIMEOUT_S)
        self.ended(gen, proc)
        return f"endpoint down {down_s:.1f}s from {at:.1f}s, run {self.natural_end(proc)}"

    def check_sigterm(self, gen: Generation, proc: Proc) -> str:
        lines = meaningful_lines(proc.stderr)
        if proc.rc == 143:
            said = [line for line in lines if line.startswith("interrupted by SIGTERM:")]
            if len(said) != 1:
                self.unexpected(
                    proc, f"exit 143 without one 'interrupted by SIGTERM' line: {lines}"
                )
            elif "nothing was started" not in said[0] and run_status(gen.run_dir) != "interrupted":
                self.unexpected(proc, f"exit 143 but the run is {run_status(gen.run_dir)!r}")
            return f"exit 143, {run_status(gen.run_dir)}"
        if proc.rc in (0, 1):  # it ended as the signal came
            return f"ended first ({self.natural_end(proc)})"
        if proc.rc == -signal.SIGTERM and "autointerp" not in proc.stdout:
            return "exit -15 before the command started (interpreter start-up)"
        ended = "results: " in proc.stdout and run_status(gen.run_dir) == "finished"
        if proc.rc == -signal.SIGTERM and ended:  # summary printed, status recorded: teardown
            return "exit -15 after the run had finished (interpreter teardown)"
        self.unexpected(proc, f"exit {proc.rc} after SIGTERM")
        return f"exit {proc.rc}"

    def check_second(self, gen: Generation, first: Proc) -> str:
        from autointerp.runlock import read_holder

        deadline = time.monotonic() + 60
        while first.popen.poll() is None and time.monotonic() < deadline:
            holder = read_holder(gen.run_dir)
            if holder is not None and holder.pid == first.popen.pid:
                break
            time.sleep(0.1)
        if first.popen.poll() is not None:
            first.wait(30)
            self.ended(gen, first)
            return f"the first ended before holding the lock ({self.natural_end(first)})"
        second = self.start_run(gen, "second")
        rc = second.wait(BAD_INPUT_TIMEOUT_S)
        lines = meaningful_lines(second.stderr)
        if rc == 1 and len(lines) == 1 and LOCK_REFUSAL in lines[0]:
            second.refused = True
            outcome = "refused (exit 1, one line)"
        elif rc in (0, 1) and first.popen.poll() is not None:
            outcome = f"ran after the first ended (exit {rc})"  # the lock was free by then
        else:
            second.refused = LOCK_REFUSAL in second.stderr
            self.unexpected(second, f"second run: exit {rc}, stderr {lines}")
            outcome = f"exit {rc}"
        if "Traceback" in second.stderr:
            self.tally.add("tracebacks", 1, f"{second.name}: see {second.err}")
        first.wait(RUN_TIMEOUT_S)
        self.ended(gen, first)
        if not second.refused:
            self.ended(gen, second)
        return f"{outcome}; first {self.natural_end(first)}"

    def close(self, gen: Generation) -> str:
        """The final clean rerun, then the generation's invariants."""
        self.responder.faults = False
        try:
            proc = self.start_run(gen, "final")
            proc.wait(RUN_TIMEOUT_S)
            self.ended(gen, proc)
        finally:
            self.responder.faults = True
        if proc.rc != 0:
            self.unexpected(proc, f"the final clean rerun exited {proc.rc}")
        gen.closed = True
        store = store_invariants(gen, final=True)
        resent, lost_in_kill, total = resent_requests(gen, self.responder.sent)
        for part in (store, resent):
            self.tally.counts.update(part.counts)
            self.tally.notes += part.notes
        self.lost_in_kill += lost_in_kill
        self.requests += total
        n_runs = len(query(gen.run_dir, "SELECT id FROM runs"))
        if n_runs != 1:
            self.unexpected(proc, f"{n_runs} runs in the store of one config")
        return (
            f"generation {gen.number} closed after {gen.cycles} cycles: final rerun exit "
            f"{proc.rc}, {total} requests"
        )

    def invariants_line(self, gen: Generation | None) -> str:
        counts = Counter(self.tally.counts)
        if gen is not None and not gen.closed:  # what can be said before the final rerun
            counts.update(store_invariants(gen, final=False).counts)
            counts.update(resent_requests(gen, self.responder.sent)[0].counts)
        return " ".join(f"{k}={counts[k]}" for k in INVARIANTS)

    # -- the bad-input catalogue

    def catalogue(self) -> list[str]:
        return [
            "truncated_shard", "garbage_shard_header", "garbage_shard_data", "binary_jsonl",
            "empty_corpus", "readonly_run_dir", "corrupt_store", "indices_beyond", "key_in_set",
            "disk_full",
        ]  # fmt: skip

    def bad_input(self, case: str) -> str:
        """Run one catalogue case on a fresh run directory; returns "ok", or "FAIL: reason"."""
        self.responder.faults = False
        try:
            verdict = self._bad_input(case)
        finally:
            self.responder.faults = True
        self.catalogue_results.append((case, verdict))
        if verdict.startswith("FAIL"):
            self.tally.add("bad_inputs", 1, f"{case}: {verdict[6:]}")
        return verdict

    def _bad_input(self, case: str) -> str:
        base = self.work / "bad" / f"{len(self.catalogue_results) + 1:03d}-{case}"
        base.mkdir(parents=True)
        run_dir = base / "run"
        config = self.write_config(base / "run.toml", run_dir, f"bad-{case}")
        template = self.work / "template"
        extra: list[str] = []
        undo: list[str] = []
        secret = ""
        expect = "error"
        shard = next((template / "cache").glob("*/shard-*.safetensors"))
        if case in ("truncated_shard", "garbage_shard_header", "garbage_shard_data"):
            shutil.copytree(template / "cache", run_dir / "cache")  # a cache, reused by this run
            damaged = run_dir / shard.relative_to(template)
            data = bytearray(damaged.read_bytes())
            header = 8 + int.from_bytes(data[:8], "little")
            if case == "truncated_shard":
                data = data[: len(data) // 2]
            elif case == "garbage_shard_header":
                data[8:header] = bytes(self.rng.randrange(256) for _ in range(header - 8))
            else:
                for i in range(header, len(data), 7):
                    data[i] = self.rng.randrange(256)
            damaged.write_bytes(bytes(data))
            expect = "error-or-repaired"
        elif case == "binary_jsonl":
            corpus = base / "corpus.jsonl"
            corpus.write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
            extra = ["--set", f'corpus.path="{corpus}"']
        elif case == "empty_corpus":
            corpus = base / "corpus.txt"
            corpus.write_text("")
            extra = ["--set", f'corpus.path="{corpus}"']
        elif case == "readonly_run_dir":
            shutil.copytree(template, run_dir)
            shutil.copy(template.parent / "template.toml", config)  # the template run, resumed
            config.write_text(
                config.read_text().replace(f'"{template.as_posix()}"', f'"{run_dir.as_posix()}"')
            )
            for path in [run_dir, *run_dir.rglob("*")]:
                path.chmod(0o555 if path.is_dir() else 0o444)
            if os.geteuid() == 0:  # root writes anywhere, unless the files are immutable
                undo = ["chattr", "-R", "-i", str(run_dir)]
                done = subprocess.run(["chattr", "-R", "+i", str(run_dir)], capture_output=True)
                if done.returncode != 0:
                    subprocess.run(undo, capture_output=True, timeout=60)
                    return "skipped: running as root, and chattr +i failed (run as a normal user)"
        elif case == "corrupt_store":
            shutil.copytree(template, run_dir)
            for suffix in ("-wal", "-shm"):
                (run_dir / f"results.sqlite{suffix}").unlink(missing_ok=True)
            store = run_dir / "results.sqlite"
            data = bytearray(store.read_bytes())
            data[:100] = b"garbage " * 12 + b"junk"
            store.write_bytes(bytes(data))
        elif case == "indices_beyond":
            extra = ["--set", "latents.indices=[0, 100000]"]
        elif case == "disk_full":
            return self._disk_full(config, run_dir)
        elif case == "key_in_set":
            secret = "sk-soak" + "".join(self.rng.choice("abcdef0123456789") for _ in range(24))
            extra = ["--set", f"llm.api_key={secret}"]
        else:
            raise ValueError(case)
        proc = self.launcher.start(["run", str(config), "--no-report", *extra], case)
        try:
            rc = proc.wait(BAD_INPUT_TIMEOUT_S)
        finally:
            if undo:
                subprocess.run(undo, capture_output=True, timeout=60)
        err = proc.stderr
        lines = meaningful_lines(err)
        first = lines[0][:200] if lines else "(no output)"
        if rc is None:
            return f"FAIL: still running after {BAD_INPUT_TIMEOUT_S:g} s"
        if "Traceback" in err:
            return f"FAIL: a traceback (exit {rc}); {proc.err}"
        if secret and (secret in err or secret in proc.stdout):
            return f"FAIL: the key is echoed: {first}"
        if rc == 0 and expect == "error-or-repaired":
            if any("damaged" in line for line in lines):
                return f"ok (repaired, exit 0): {first}"
            return "FAIL: exit 0 and nothing said (the damage went unnoticed)"
        if rc == 0:
            return "FAIL: exit 0" + (f": {first}" if lines else "")
        if rc < 0:
            return f"FAIL: killed by signal {-rc}"
        if len(lines) != 1:
            return f"FAIL: exit {rc} with {len(lines)} lines: " + " | ".join(lines)[:300]
        return f"ok (exit {rc}): {first}"

    def _disk_full(self, config: Path, run_dir: Path) -> str:
        """The run directory on a filesystem of a random small size (a tmpfs where mounting is
        allowed, else a file-size limit): the run must stop with one line; with space again,
        the same command must finish the run, nothing lost."""
        run_dir.mkdir()
        size = self.rng.randrange(96, 1024) * 1024
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(run_dir)],
            capture_output=True, timeout=60,
        ).returncode == 0  # fmt: skip
        how = f"tmpfs of {size // 1024} KiB" if mounted else f"file-size limit {size // 1024} KiB"
        try:
            proc = self.launcher.start(
                ["run", str(config), "--no-report"], "disk_full", None if mounted else size
            )
            rc = proc.wait(BAD_INPUT_TIMEOUT_S)
            lines = meaningful_lines(proc.stderr)
            first = lines[0][:200] if lines else "(no output)"
            if rc is None:
                return f"FAIL ({how}): still running after {BAD_INPUT_TIMEOUT_S:g} s"
            if "Traceback" in proc.stderr:
                return f"FAIL ({how}): a traceback (exit {rc}); {proc.err}"
            if rc != 0 and (len(lines) != 1 or "disk is full" not in first):
                return f"FAIL ({how}): exit {rc} with: " + " | ".join(lines)[:300]
            if mounted:  # space again: the same command resumes and finishes
                subprocess.run(["mount", "-o", "remount,size=64m", str(run_dir)], timeout=60)
            again = self.launcher.start(["run", str(config), "--no-report"], "disk_full_again")
            if again.wait(RUN_TIMEOUT_S) != 0:
                return f"FAIL ({how}): with space again the run did not finish: {again.err}"
            explained = query(run_dir, "SELECT COUNT(*) FROM explanations")[0][0]
            if explained != N_LATENTS:
                return f"FAIL ({how}): {explained} of {N_LATENTS} latents explained after resuming"
            verdict = f"exit {rc}: {first}" if rc else "exit 0: it fitted"
            return f"ok ({how}; {verdict}; then resumed and finished)"
        finally:
            if mounted:
                subprocess.run(["umount", "-l", str(run_dir)], capture_output=True, timeout=60)

    # -- the loop

    def run(self) -> int:
        self.prepare()
        for case in self.catalogue():
            verdict = self.bad_input(case)
            log(f"{self.elapsed()} bad input {case}: {verdict}")
        deadline = self.started + self.args.minutes * 60
        cases = self.catalogue()
        gen: Generation | None = None
        cycle = 0
        deck: list[str] = []
        while time.monotonic() < deadline:
            gen = gen if gen is not None and not gen.closed else self.new_generation()
            cycle += 1
            if not deck:  # every action once per round, in a random order
                deck = self.rng.sample(ACTIONS, len(ACTIONS))
            action = deck.pop()
            what = self.cycle(gen, action)
            log(f"{self.elapsed()} cycle {cycle} g{gen.number} {action}: {what}")
            if gen.finished or gen.cycles >= self.args.max_cycles:
                log(f"{self.elapsed()} {self.close(gen)}")
            case = cases[(cycle - 1) % len(cases)]
            verdict = self.bad_input(case)
            log(f"{self.elapsed()} bad input {case}: {verdict}")
            log(f"{self.elapsed()} invariants: {self.invariants_line(gen)}")
        if gen is not None and not gen.closed:
            log(f"{self.elapsed()} {self.close(gen)}")
        return self.report(cycle)

    def report(self, cycles: int) -> int:
        counts = self.tally.counts
        log("")
        log(
            f"soak: {cycles} cycles, {len(self.generations)} generations, {self.requests} requests "
            f"({sum(s.kind not in ('reply',) for s in self.responder.sent)} faults injected), "
            f"{self.lost_in_kill} answers lost with a killed process, "
            f"{time.monotonic() - self.started:.0f} s"
        )
        for name in INVARIANTS:
            log(f"  {name:<12} {counts[name]}")
        verdicts: dict[str, list[str]] = {}
        for case, verdict in self.catalogue_results:
            verdicts.setdefault(case, []).append(verdict)
        log("bad inputs:")
        for case, seen in verdicts.items():
            fails = [v for v in seen if v.startswith("FAIL")]
            log(f"  {case:<22} {(fails or seen)[-1]}  ({len(seen) - len(fails)}/{len(seen)} ok)")
        if self.tally.notes:
            log("details:")
            for note in dict.fromkeys(self.tally.notes):
                log(f"  {note}")
        failed = any(counts[name] for name in INVARIANTS)
        log("FAILED" if failed else "ok: every invariant is 0")
        return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to loop")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--fault-rate", type=float, default=0.3, help="share of faulty answers")
    parser.add_argument(
        "--max-cycles", type=int, default=4, help="cycles on one run directory before closing it"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where files go")
    parser.add_argument("--keep", action="store_true", help="keep the files after a success")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1_000_000)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="autointerp-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"soak: seed {args.seed}, {args.minutes:g} minutes, fault rate {args.fault_rate:g}")
    soak = Soak(args, workdir)
    rc = 1
    try:
        rc = soak.run()
    finally:
        soak.launcher.reap()
        soak.endpoint.down()
        if rc == 0 and not args.keep and args.workdir is None:
            for path in workdir.rglob("*"):  # the read-only case's files
                if path.is_dir():
                    path.chmod(0o755)
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"files: {workdir}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
