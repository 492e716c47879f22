"""Cost per component: every LLM call in the ledger names the stage and component that paid for it
(the explainer, or ``scorer/explainer``), live or through a batch API, and ``autointerp status``,
the report and the Python API show calls, tokens and dollars per component. Reading a run (status,
export, report, ``open_run``) never changes its store: an older one is read as it is, and only a
rerun migrates it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from autointerp_openai.batch import OpenAIBatchClient, OpenAIBatchConfig
from autointerp_openai.client import OpenAIClient
from autointerp_openai.plugin import OpenAICompatibleConfig

import autointerp
from autointerp.errors import ConfigError, StoreError
from autointerp.llm import LLMClient, Message, Scheduler, paying
from autointerp.store import MIGRATIONS, SCHEMA_VERSION, STORE_FILENAME, Store, Usage, _migrate
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.batch_server import BatchServer, completes
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config
from autointerp.types import LatentRef

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIXTURE = Path(__file__).parent / "fixtures" / "run-before-contracts"
PRICES = ("llm.price_prompt_per_mtok=1000.0", "llm.price_completion_per_mtok=4000.0")
COMPONENTS = {("explain", "default"), ("score", "detection/default"), ("score", "fuzzing/default")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def meta_of(index: Path) -> dict[str, Any]:
    line = next(x for x in index.read_text().splitlines() if "AUTOINTERP_META =" in x)
    return json.JSONDecoder().raw_decode(line.split("=", 1)[1].strip())[0]


# -- a run, end to end -----------------------------------------------------------------------------


def test_a_run_files_every_call_under_the_component_that_paid_for_it(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli: Callable[..., Any], tmp_path: Path
) -> None:
    server = autointerp_llm_server
    server.responder = scripted_answers()
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    path = write_run_config(
        tmp_path / "run.toml",
        base_url=server.openai_base_url,
        model=model,
        n_latents=2,
        scorers=("detection", "fuzzing"),
    )
    prices = [a for p in PRICES for a in ("--set", p)]
    made = autointerp_cli("run", str(path), *prices)
    assert made.exit_code == 0, made.stderr
    run_dir = tmp_path / "run"
    paid = len(server.requests)

    with Store.open(run_dir) as store:
        (run,) = store.runs()
        total = store.usage(run.id)
        by_component = store.usage_by_component(run.id)
        ledger = store.ledger(run.id)
        named = {  # the calls each result says it made (its meta's llm_calls)
            ("explain", e.explainer): set(e.meta["llm_calls"]) for e in store.explanations(run.id)
        }
        for s in store.scores(run.id):
            named.setdefault(("score", f"{s.scorer}/{s.explainer}"), set()).update(
                s.meta["llm_calls"]
            )
    assert set(by_component) == COMPONENTS  # nothing unattributed
    assert total.calls == paid == sum(u.calls for u in by_component.values())
    assert total.cost_usd > 0
    assert sum(u.cost_usd for u in by_component.values()) == pytest.approx(total.cost_usd)
    assert all(u.calls > 0 and u.cost_usd > 0 for u in by_component.values())
    for key, hashes in named.items():
        filed = {x.request_hash for x in ledger if (x.stage, x.component) == key}
        assert hashes <= filed, key

    # status: JSON rows and the table carry calls, tokens and dollars per component
    status = autointerp_cli("status", str(run_dir), "--json")
    assert status.exit_code == 0, status.stderr
    rows = {(r["stage"], r["component"]): r for r in json.loads(status.stdout)}
    assert set(rows) == COMPONENTS
    for key, usage in by_component.items():
        row = rows[key]
        assert (row["calls"], row["cache_hits"]) == (usage.calls, 0)
        assert row["prompt_tokens"] == usage.prompt_tokens > 0
        assert row["cost_usd"] == pytest.approx(usage.cost_usd, abs=1e-6)
    table = autointerp_cli("status", str(run_dir))
    assert table.exit_code == 0, table.stderr
    fuzzing = next(line for line in table.stdout.splitlines() if "fuzzing/default" in line)
    assert str(by_component[("score", "fuzzing/default")].calls) in fuzzing and "$" in fuzzing

    # the report (written by the run) has a cost-per-component table
    meta = meta_of(run_dir / "report" / "index.html")
    costs = {(c["stage"], c["component"]): c for c in meta["costs"]}
    assert set(costs) == COMPONENTS
    assert costs[("explain", "default")]["calls"] == by_component[("explain", "default")].calls
    assert 'id="costs"' in (run_dir / "report" / "index.html").read_text()

    # the Python API: the ledger's columns, and usage per component
    opened = autointerp.open_run(run_dir)
    frame = opened.ledger()
    assert {"stage", "component"} <= set(frame.columns) and len(frame) == len(ledger)
    per = opened.usage(by=("stage", "component"))
    got = {(r.stage, r.component): (r.calls, r.cost_usd) for r in per.itertuples()}
    assert got == {k: (u.calls, pytest.approx(u.cost_usd)) for k, u in by_component.items()}
    with pytest.raises(ConfigError, match="usage"):
        opened.usage(by=("cost_usd",))

    # a rerun pays nothing and files nothing new
    again = autointerp_cli("run", str(path), *prices, "--no-report")
    assert again.exit_code == 0, again.stderr
    assert len(server.requests) == paid
    with Store.open(run_dir) as store:
        assert store.usage_by_component(run.id) == by_component


# -- the client ------------------------------------------------------------------------------------


def test_concurrent_components_are_told_apart_and_cache_hits_cost_nothing(
    autointerp_llm_server: ScriptedLLMServer, tmp_path: Path
) -> None:
    server = autointerp_llm_server
    config = OpenAICompatibleConfig(
        base_url=server.openai_base_url, price_prompt_per_mtok=1000.0, backoff_base_s=0.01
    )

    def ask(i: int) -> list[Message]:
        return [Message("user", f"question {i}")]

    async def go(client: LLMClient) -> None:
        async def as_(stage: str, component: str, questions: range) -> None:
            with paying(stage, component):
                await asyncio.gather(*(client.chat(ask(i)) for i in questions))

        await asyncio.gather(  # interleaved on one loop: each task keeps its own name
            as_("explain", "default", range(0, 6)),
            as_("score", "detection/default", range(6, 10)),
        )
        await as_("score", "fuzzing/default", range(0, 3))  # asked before: cache hits
        await client.chat(ask(99))  # outside any component
        await client.aclose()

    with Store.open(tmp_path) as store:
        run = store.start_run("r", {})
        client = LLMClient(OpenAIClient(config), store=store, run_id=run, scheduler=Scheduler())
        asyncio.run(go(client))
        usage = store.usage_by_component(run)
        ledger = store.ledger(run)
    assert len(server.requests) == 11
    assert {k: (u.calls, u.cache_hits) for k, u in usage.items()} == {
        ("", ""): (1, 0),
        ("explain", "default"): (6, 0),
        ("score", "detection/default"): (4, 0),
        ("score", "fuzzing/default"): (0, 3),
    }
    assert usage[("score", "fuzzing/default")] == Usage(cache_hits=3)  # no tokens, no dollars
    assert usage[("explain", "default")].cost_usd > 0
    by_hash = {x.request_hash: x.component for x in ledger if not x.cached}
    hits = [x for x in ledger if x.cached]
    assert all(by_hash[x.request_hash] == "default" for x in hits)  # paid once, by the explainer


# -- the batch API ---------------------------------------------------------------------------------


@pytest.fixture
def batch_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-batch-test-key-0123456789")
    with BatchServer() as s:
        yield s


def batch_backend(server: BatchServer) -> OpenAIBatchClient:
    config = OpenAIBatchConfig(
        base_url=server.openai_base_url, poll_interval_s=0.02, flush_after_s=0.05,
        backoff_base_s=0.01, timeout_s=5.0, price_prompt_per_mtok=1.0,
    )  # fmt: skip
    return OpenAIBatchClient(config)


def test_batch_answers_are_filed_per_request_also_when_a_restart_collects_them(
    batch_server: BatchServer, tmp_path: Path
) -> None:
    server = batch_server
    questions = [[Message("user", f"question {i}")] for i in range(8)]

    async def one_batch(store: Any) -> None:  # two components' requests share one batch
        client = LLMClient(batch_backend(server), store=store)

        async def as_(component: str, asks: list[list[Message]]) -> None:
            with paying("score", component):
                await asyncio.gather(*(client.chat(q) for q in asks))

        try:
            await asyncio.gather(as_("detection/default", questions[:2]),
                                 as_("fuzzing/default", questions[2:4]))  # fmt: skip
        finally:
            await client.aclose()

    with Store.open(tmp_path) as store:
        rs = store.bind(store.start_run("r", {}))
        asyncio.run(one_batch(rs))
        assert len(server.created) == 1
        assert {k: u.calls for k, u in store.usage_by_component(rs.run_id).items()} == {
            ("score", "detection/default"): 2,
            ("score", "fuzzing/default"): 2,
        }

    server.plan(completes(polls=10**6))  # the next batch is still running when its process stops

    async def stopped(store: Any) -> None:
        client = LLMClient(batch_backend(server), store=store)
        with paying("explain", "default"):
            tasks = [asyncio.ensure_future(client.chat(q)) for q in questions[4:]]
        while not store.llm_batches(live=True):  # submitted and recorded
            await asyncio.sleep(0.01)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.aclose()

    with Store.open(tmp_path) as store:
        asyncio.run(stopped(store.bind(1)))
    batch = server.created[-1]
    batch.behaviour = completes(polls=batch.polls + 2)

    async def restarted(store: Any) -> None:  # asks one of them, under no component
        client = LLMClient(batch_backend(server), store=store)
        try:
            await client.chat(questions[4])
        finally:
            await client.aclose()

    with Store.open(tmp_path) as store:
        asyncio.run(restarted(store.bind(1)))
        usage = store.usage_by_component(1)
    assert len(server.created) == 2  # collected, not resubmitted
    assert {k: u.calls for k, u in usage.items()} == {
        ("explain", "default"): 4,  # as submitted: awaited or not, named or not
        ("score", "detection/default"): 2,
        ("score", "fuzzing/default"): 2,
    }


# -- reading without migrating ---------------------------------------------------------------------


def test_reading_an_older_run_changes_nothing_and_a_rerun_migrates_it(
    autointerp_llm_server: ScriptedLLMServer,
    autointerp_cli: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = tmp_path / "compat"
    shutil.copytree(FIXTURE, work)
    monkeypatch.chdir(work)
    db = work / "run" / STORE_FILENAME
    before, old = digest(db), user_version(db)
    assert old < SCHEMA_VERSION

    status = autointerp_cli("status", "run", "--json")
    assert status.exit_code == 0, status.stderr
    rows = {(r["stage"], r["component"]): r for r in json.loads(status.stdout)}
    # the ledger of that version did not say who paid: read from the results' llm_calls
    assert {k: r["calls"] for k, r in rows.items()} == {
        ("explain", "default"): 4,
        ("score", "detection/default"): 7,
        ("score", "fuzzing/default"): 7,
    }
    assert autointerp_cli("status", "run").exit_code == 0
    assert autointerp_cli("status", "run", "--failures").exit_code == 0
    exported = autointerp_cli("export", "run", "--out", str(tmp_path / "export"))
    assert exported.exit_code == 0, exported.stderr
    reported = autointerp_cli("report", "run", "--out", str(tmp_path / "report"))
    assert reported.exit_code == 0, reported.stderr
    index = tmp_path / "report" / "index.html"
    assert len(meta_of(index)["costs"]) == 3
    if CHROMIUM:  # the page draws the table (the DOM after its script ran)
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
             index.resolve().as_uri()],
            capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
        table = re.search(r'<table id="cost-table">(.*?)</table>', dom)
        assert table is not None, dom[-2000:]
        assert table.group(1).count("<tr>") == 4 and "<td>fuzzing/default</td><td>7</td>" in dom
    opened = autointerp.open_run("run")
    assert len(opened.ledger()) == 18 and set(opened.ledger()["component"]) == {
        "default", "detection/default", "fuzzing/default",
    }  # fmt: skip
    assert len(opened.scores()) and len(opened.examples()) and opened.status == "finished"
    assert (digest(db), user_version(db)) == (before, old)  # not one byte changed

    # a rerun writes: the store is migrated, every call is filed, nothing is asked again
    save_tiny(tiny_model("gpt2"), work / "model")
    base_url = f'llm.base_url="{autointerp_llm_server.openai_base_url}"'
    again = autointerp_cli("run", "run.toml", "--no-report", "--set", base_url)
    assert again.exit_code == 0, again.stderr
    assert autointerp_llm_server.requests == []
    assert user_version(db) == SCHEMA_VERSION
    with Store.open(work / "run") as store:
        usage = store.usage_by_component(1)
    assert {k: u.calls for k, u in usage.items()} == {k: r["calls"] for k, r in rows.items()}


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_store_of_every_older_version_reads_read_only_as_migrated(
    version: int, tmp_path: Path
) -> None:
    old = tmp_path / "old" / STORE_FILENAME
    old.parent.mkdir()
    conn = sqlite3.connect(old, isolation_level=None)
    _migrate(conn, old, target=version)
    meta = json.dumps({"llm_calls": ["h1"]})
    conn.execute("INSERT INTO runs VALUES (1, 'r', '{}', 'finished', 0, 1)")
    conn.execute("INSERT INTO latents VALUES (1, 'src', 3, 0.1, 2.0, '{}')")
    conn.execute("INSERT INTO explanations (run_id, source, idx, explainer, text, meta, "
                 "created_at) VALUES (1, 'src', 3, 'default', 'dogs', ?, 0)", (meta,))  # fmt: skip
    for h, tokens in (("h1", 10), ("h2", 5)):
        conn.execute("INSERT INTO llm_calls VALUES (?, 'c', 'm', '{}', '{}', ?, 0, 1, 0.5, 0, 0)",
                     (h, tokens))  # fmt: skip
        conn.execute("INSERT INTO llm_ledger (request_hash, run_id, cached, prompt_tokens, "
                     "cached_tokens, completion_tokens, cost_usd, latency_s, at) "
                     "VALUES (?, 1, 0, ?, 0, 1, 0.5, 0, 0)", (h, tokens))  # fmt: skip
    conn.close()
    new = tmp_path / "new" / STORE_FILENAME
    new.parent.mkdir()
    shutil.copy(old, new)
    before = digest(old)

    def read(store: Store) -> tuple[Any, ...]:
        ref = LatentRef("src", 3)
        return (
            store.runs(), store.latents(1), store.explanations(1), store.scores(1),
            store.examples(1, ref), store.latent_examples(1, [ref]), store.failures(1),
            store.usage(1), store.usage_by_component(1), store.ledger(1), store.llm_batches(),
            store.llm_batch_payers("b"),
            store.explainer_names(1), store.score_keys(1), store.pick_run(),
        )  # fmt: skip

    with Store(old, readonly=True) as store:
        assert store.schema_version == version
        seen = read(store)
        with pytest.raises(StoreError, match="read-only") as info:
            store.put_failure(1, LatentRef("src", 3), "explain", "default", "x")
        assert "\n" not in str(info.value)
    with Store(new) as store:  # the same store, migrated
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
        assert read(store) == seen
    if version < 7:  # who paid for h1 is inferred from the explanation that names it
        assert seen[8] == {
            ("", ""): Usage(calls=1, prompt_tokens=5, completion_tokens=1, cost_usd=0.5),
            ("explain", "default"): Usage(
                calls=1, prompt_tokens=10, completion_tokens=1, cost_usd=0.5
            ),
        }
    else:  # from version 7 the ledger names its payers as it is written: these rows name none
        assert seen[8] == {
            ("", ""): Usage(calls=2, prompt_tokens=15, completion_tokens=2, cost_usd=1.0),
        }
    assert digest(old) == before and user_version(old) == version
