"""The store keeps LLM calls compact: requests and responses as zlib-compressed JSON BLOBs
(schema 9), read back exactly; calls stored as JSON text by older versions still answer from the
cache, and an older autointerp refuses a store written this way instead of misreading it."""

from __future__ import annotations

import asyncio
import json
import random
import re
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

from autointerp import store as store_mod
from autointerp.corpus import iter_texts
from autointerp.errors import StoreError
from autointerp.llm import LLMClient, Message, SamplingParams, Scheduler
from autointerp.plugins import PluginManager
from autointerp.store import (
    STORE_FILENAME,
    LLMBatch,
    Store,
    _migrate,
    pack_json,
    unpack_json,
)
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.types import LLMCall

#: the schema version before calls were stored compressed
PREVIOUS = 8

SYSTEM = (
    "You explain what a neuron in a language model responds to.\nYou see text excerpts. In "
    "each, the tokens where the neuron fires are marked <<like this>>.\nFind what the marked "
    'tokens have in common.\nReply with exactly one line: "Explanation: " followed by a short '
    "noun phrase of at most 8 words."
)

FEW_SHOT = [
    {
        "role": "user",
        "content": "Example 1: We flew to <<Paris>> last spring.\nExample 2: The "
        "office in <<Berlin>> closed early.\nExample 3: She grew up near <<Tokyo>>.\nMarked "
        "tokens: Paris, Berlin, Tokyo",
    },
    {"role": "assistant", "content": "Explanation: city names"},
    {
        "role": "user",
        "content": "Example 1: I did <<not>> see it.\nExample 2: That is <<n't>> "
        "true.\nExample 3: They <<never>> came back.\nMarked tokens: not, n't, never",
    },
    {"role": "assistant", "content": "Explanation: negation words"},
]


def explainer_request(seed: int = 0, n: int = 40) -> dict[str, Any]:
    """An explainer's request as a run stores it: the instructions and few-shot examples, then
    ``n`` excerpts of real text (Python's documentation) around a word that the latent fires
    on, marked."""
    rng = random.Random(seed)
    text = " ".join(iter_texts("builtin:python-docs"))
    word = rng.choice(["function", "object", "method", "value", "class"])
    hits = [m.start() for m in re.finditer(word, text) if m.start() > 20]
    lines = []
    for i, at in enumerate(sorted(rng.sample(hits, n))):
        before, after = text[at - rng.randrange(5, 20) : at], text[at + len(word) : at + 30]
        lines.append(f"Example {i + 1}: {before}<<{word}>>{after}")
    messages = [
        {"role": "system", "content": SYSTEM},
        *FEW_SHOT,
        {"role": "user", "content": "\n".join(lines) + "\nMarked tokens: a, o, i"},
    ]
    return {
        "client": "openai-compatible",
        "messages": messages,
        "model": "gpt-4o-mini",
        "params": {"max_tokens": 64, "temperature": 0.0},
    }


def scorer_response(n: int = 40) -> dict[str, Any]:
    """A scorer's answer with logprobs (five alternatives a token), as a run stores it."""
    logprobs = [
        [t, -0.01 * i, [[t, -0.01 * i]] + [[f"alt{j}", -1.5 - j] for j in range(4)]]
        for i, t in enumerate(["[", *("1, " for _ in range(n)), "]"])
    ]
    return {
        "text": "Answer: [" + "1, " * (n - 1) + "1]",
        "logprobs": logprobs,
        "prompt_tokens": 900,
        "completion_tokens": 2 * n,
        "cost_usd": 0.0,
    }


def call(h: str, request: dict[str, Any], response: dict[str, Any]) -> LLMCall:
    return LLMCall(
        request_hash=h,
        client="c",
        model="m",
        request=request,
        response=response,
        prompt_tokens=900,
        completion_tokens=80,
        cost_usd=0.001,
        latency_s=0.5,
    )


def raw(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_calls_are_stored_compressed_and_read_back_exactly(tmp_path: Path) -> None:
    request, response = explainer_request(), scorer_response()
    request["messages"][1]["content"] += " é ✓ \U0001f600"  # not ASCII: UTF-8 both ways
    with Store.open(tmp_path) as store:
        run = store.start_run("r", {})
        store.put_llm_calls([(call("h1", request, response), run, False)])
        store.put_llm_call(call("h1", request, response), run, cached=True)
        got = store.get_llm_call("h1")
        assert got is not None and got.request == request and got.response == response
        assert store.usage(run).calls == 1 and store.usage(run).cache_hits == 1
    ((kind_q, kind_a, blob_q, blob_a),) = raw(
        tmp_path / STORE_FILENAME,
        "SELECT typeof(request), typeof(response), request, response FROM llm_calls",
    )
    assert (kind_q, kind_a) == ("blob", "blob")
    # the documented one-liner for a plain sqlite3 connection
    assert json.loads(zlib.decompress(blob_q)) == request
    assert json.loads(zlib.decompress(blob_a)) == response
    assert unpack_json(blob_q) == request and unpack_json(blob_a) == response


def test_a_realistic_call_is_several_times_smaller_than_its_json() -> None:
    request, response = explainer_request(seed=3), scorer_response()
    q, a = json.dumps(request).encode(), json.dumps(response).encode()
    assert len(q) > 2000  # a prompt of a run's size, not a toy
    assert 2 * len(pack_json(request)) <= len(q)
    assert 5 * len(pack_json(response)) <= len(a)  # logprobs repeat: far smaller


def test_the_sqlite3_shell_reads_a_call_with_sqlar_uncompress(tmp_path: Path) -> None:
    """What the docs tell sqlite3 users: the shell's ``sqlar_uncompress`` (zlib) reads a BLOB."""
    import shutil
    import subprocess

    shell = shutil.which("sqlite3")
    if shell is None:
        pytest.skip("no sqlite3 shell installed")
    with Store.open(tmp_path) as store:
        run = store.start_run("r", {})
        store.put_llm_call(call("h1", explainer_request(), {"text": "Explanation: x"}), run)
    sql = (
        "SELECT json_extract(CAST(sqlar_uncompress(request, 1e8) AS TEXT), '$.messages[0].role'), "
        "json_extract(CAST(sqlar_uncompress(response, 1e8) AS TEXT), '$.text') FROM llm_calls"
    )
    out = subprocess.run(
        [shell, str(tmp_path / STORE_FILENAME), sql], capture_output=True, text=True, timeout=60
    )
    if "no such function" in out.stderr:
        pytest.skip("this sqlite3 shell was built without zlib")
    assert out.stdout.strip() == "system|Explanation: x", out.stderr


def test_an_old_store_with_json_text_answers_from_its_cache_with_no_call_paid(
    autointerp_llm_server: ScriptedLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    prompts = [[Message("user", f"explain latent {i}: " + "tokens " * 50)] for i in range(6)]
    params = SamplingParams(logprobs=True, top_logprobs=3)

    def ask(store: Store) -> list[Any]:
        backend = PluginManager().build(
            "llm_client", "openai-compatible", {"base_url": autointerp_llm_server.openai_base_url}
        )
        client = LLMClient(backend, store=store.bind(1), scheduler=Scheduler())

        async def go() -> list[Any]:
            try:
                return list(await asyncio.gather(*(client.chat(p, params) for p in prompts)))
            finally:
                await client.aclose()

        return asyncio.run(go())

    run_dir = tmp_path / "run"
    with Store.open(run_dir) as store:
        store.start_run("r", {})
        first = ask(store)
    assert len(autointerp_llm_server.requests) == len(prompts)
    # rewrite the store as the version before wrote it: request and response as JSON text
    path = run_dir / STORE_FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    rows = conn.execute("SELECT request_hash, request, response FROM llm_calls").fetchall()
    for h, q, a in rows:
        text_q = json.dumps(json.loads(zlib.decompress(q)), sort_keys=True)
        text_a = json.dumps(json.loads(zlib.decompress(a)), sort_keys=True)
        conn.execute(
            "UPDATE llm_calls SET request = ?, response = ? WHERE request_hash = ?",
            (text_q, text_a, h),
        )
    conn.execute(f"PRAGMA user_version = {PREVIOUS}")
    conn.close()
    assert {r[0] for r in raw(path, "SELECT DISTINCT typeof(request) FROM llm_calls")} == {"text"}

    autointerp_llm_server.reset()
    with Store(path, readonly=True) as old:  # read as it is, not migrated
        assert old.schema_version == PREVIOUS
        assert all(old.get_llm_call(h) is not None for h, *_ in rows)
    with Store.open(run_dir) as store:  # a resumed run migrates it and asks nothing again
        assert store.schema_version == store_mod.SCHEMA_VERSION == 10
        again = ask(store)
        assert store.usage(1).cache_hits == len(prompts)
    assert autointerp_llm_server.requests == []
    assert [(r.text, r.logprobs) for r in again] == [(r.text, r.logprobs) for r in first]
    assert first[0].logprobs  # the logprobs made the round trip through both forms
    kinds = raw(path, "SELECT DISTINCT typeof(request) FROM llm_calls")
    assert kinds == [("text",)]  # old rows are left as they are


def test_batch_requests_are_stored_compressed_and_old_text_still_reads(tmp_path: Path) -> None:
    payloads = {f"h{i}": explainer_request(seed=i, n=10) for i in range(3)}
    batch = LLMBatch(
        id="b1",
        client="c",
        endpoint="/v1/chat/completions",
        status="in_progress",
        n_requests=3,
        created_at=0.0,
        updated_at=0.0,
    )
    with Store.open(tmp_path) as store:
        store.put_llm_batch(batch, payloads)
        assert store.llm_batch_requests("b1") == payloads
    path = tmp_path / STORE_FILENAME
    assert raw(path, "SELECT DISTINCT typeof(request) FROM llm_batch_requests") == [("blob",)]
    conn = sqlite3.connect(path, isolation_level=None)  # one row as the version before wrote it
    conn.execute(
        "UPDATE llm_batch_requests SET request = ? WHERE request_hash = 'h0'",
        (json.dumps(payloads["h0"], sort_keys=True),),
    )
    conn.close()
    with Store.open(tmp_path) as store:
        assert store.llm_batch_requests("b1") == payloads
        store.end_llm_batch("b1", "completed", dict.fromkeys(payloads, "answered"))
        assert store.llm_batch_requests("b1") == dict.fromkeys(payloads)


def test_an_older_autointerp_refuses_a_compact_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 9 exists so that the code before it says so in one line instead of failing on a
    BLOB at its first cache hit."""
    with Store.open(tmp_path) as store:
        store.put_llm_call(call("h1", {"q": 1}, {"a": 2}), store.start_run("r", {}))
    current = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", PREVIOUS)
    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS[:PREVIOUS])
    for readonly in (False, True):
        with pytest.raises(
            StoreError,
            match=f"schema version {current} but this autointerp "
            f"knows only up to {PREVIOUS}; upgrade autointerp",
        ) as info:
            Store(tmp_path / STORE_FILENAME, readonly=readonly)
        assert "\n" not in str(info.value)


def test_a_store_of_the_version_before_migrates_with_its_text_calls_intact(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    _migrate(conn, path, target=PREVIOUS)
    conn.execute(
        "INSERT INTO llm_calls VALUES ('h', 'c', 'm', ?, ?, 1, 0, 1, 0.5, 0, 0)",
        (json.dumps({"q": "é"}), json.dumps({"text": "x"})),
    )
    conn.close()
    with Store(path) as store:
        got = store.get_llm_call("h")
        assert got is not None and got.request == {"q": "é"} and got.response == {"text": "x"}
        store.put_llm_call(call("h2", {"q": 2}, {"text": "y"}), store.start_run("r", {}))
        assert store.get_llm_call("h2").response == {"text": "y"}  # type: ignore[union-attr]
    kinds = raw(path, "SELECT request_hash, typeof(request) FROM llm_calls ORDER BY 1")
    assert kinds == [("h", "text"), ("h2", "blob")]


def test_a_damaged_compressed_call_fails_in_one_line(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.put_llm_call(call("abc123", {"q": 1}, {"a": 2}), store.start_run("r", {}))
    conn = sqlite3.connect(tmp_path / STORE_FILENAME, isolation_level=None)
    conn.execute("UPDATE llm_calls SET response = x'00ff00ff'")
    conn.close()
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match="LLM call abc123") as info:
        store.get_llm_call("abc123")
    assert "not zlib-compressed JSON" in str(info.value) and "\n" not in str(info.value)


def test_score_predictions_are_stored_compressed_and_old_text_still_reads(tmp_path: Path) -> None:
    """Schema 10: a score's predictions are a zlib-compressed BLOB (the bulk of a score row);
    rows written before as JSON text read the same, and the report's analyses read both."""
    from autointerp.types import LatentRef, Prediction, Score

    ref = LatentRef("sae/resid_post.0", 3)
    preds = tuple(
        Prediction(i, float(i % 2) if i != 4 else None, float(i < 10), 0.25 * (i % 4), i % 10)
        for i in range(40)
    )
    score = Score(ref, "detection", "default", 0.5, {"accuracy": 0.5}, preds, 1)
    with Store.open(tmp_path) as store:
        run = store.start_run("r", {})
        store.put_score(run, score)
        old = Score(LatentRef(ref.source, 4), "detection", "default", 0.7, {}, preds[:3], 0)
        store.put_score(run, old)
    path = tmp_path / STORE_FILENAME
    [(kind, size)] = raw(path, "SELECT typeof(predictions), length(predictions) FROM scores "
                               "WHERE idx = 3")  # fmt: skip
    text = json.dumps([{k: v for k, v in vars(p).items() if v is not None or k != "quantile"}
                       for p in preds])  # fmt: skip
    assert kind == "blob" and 5 * size < len(text)
    conn = sqlite3.connect(path, isolation_level=None)  # latent 4 as the version before wrote it
    conn.execute(
        "UPDATE scores SET predictions = ? WHERE idx = 4",
        (json.dumps([{"example_id": p.example_id, "predicted": p.predicted, "actual": p.actual,
                      "probability": p.probability, "quantile": p.quantile}
                     for p in preds[:3]]),),
    )  # fmt: skip
    conn.close()
    assert {r[0] for r in raw(path, "SELECT typeof(predictions) FROM scores")} == {"blob", "text"}
    with Store.open(tmp_path) as store:
        got = {s.latent.index: s for s in store.iter_scores(run)}
        assert got[3].predictions == preds and got[4].predictions == preds[:3]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE scores SET predictions = x'00ff' WHERE idx = 4")
    conn.close()
    with Store.open(tmp_path) as store, pytest.raises(StoreError, match="corrupt score's pred"):
        list(store.iter_scores(run))
