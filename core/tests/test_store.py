"""Results store: WAL, round-trips, upserts, resume, crash safety, migrations, LLM ledger."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from autointerp.errors import StoreError
from autointerp.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    STORE_FILENAME,
    LatentStats,
    Store,
    Usage,
    _migrate,
    request_hash,
)
from autointerp.types import Example, Explanation, LatentRef, LLMCall, Prediction, Score

SRC = "sae/resid_post.6"
L0 = LatentRef(SRC, 0)
L1 = LatentRef(SRC, 1)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "run") as s:
        yield s


@pytest.fixture
def run_id(store: Store) -> int:
    return store.start_run("test", {"model": "gpt2", "layers": [6]})


def make_score(latent: LatentRef = L0, value: float | None = 0.75, scorer: str = "detection"):
    return Score(
        latent=latent,
        scorer=scorer,
        explainer="default",
        value=value,
        metrics={"accuracy": 0.75, "f1": 0.5},
        predictions=(
            Prediction(example_id=0, predicted=1.0, actual=1.0, probability=0.9),
            Prediction(example_id=1, predicted=None, actual=0.0),
            Prediction(example_id=2, predicted=0.0, actual=1.0, probability=None),
        ),
        n_failures=1,
        meta={"prompt_version": 2},
    )


def make_call(payload: dict, cost: float = 0.01) -> LLMCall:
    return LLMCall(
        request_hash=request_hash(payload),
        client="openai",
        model="gpt-4o-mini",
        request=payload,
        response={"text": "hello"},
        prompt_tokens=100,
        cached_tokens=20,
        completion_tokens=10,
        cost_usd=cost,
        latency_s=0.5,
    )


def test_open_creates_file_in_wal_mode(tmp_path: Path) -> None:
    run_dir = tmp_path / "a" / "b"
    with Store.open(run_dir) as s:
        assert s.path == run_dir / STORE_FILENAME
        assert s.schema_version == SCHEMA_VERSION == 10
    assert (run_dir / STORE_FILENAME).is_file()
    conn = sqlite3.connect(run_dir / STORE_FILENAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_runs(store: Store) -> None:
    a = store.start_run("first", {"x": 1, "nested": {"y": [1, 2]}})
    b = store.start_run("second", {})
    assert a != b
    run = store.get_run(a)
    assert run is not None
    assert (run.name, run.config, run.status, run.finished_at) == (
        "first",
        {"x": 1, "nested": {"y": [1, 2]}},
        "running",
        None,
    )
    store.finish_run(a, status="failed")
    done = store.get_run(a)
    assert done is not None and done.status == "failed"
    assert done.finished_at is not None and done.finished_at >= done.started_at
    assert [r.name for r in store.runs()] == ["first", "second"]
    assert store.get_run(999) is None
    with pytest.raises(StoreError, match="no run 999"):
        store.finish_run(999)
    store.resume_run(a)  # a rerun resumes it: running again, no finish time, same start
    again = store.get_run(a)
    assert again is not None and (again.status, again.finished_at) == ("running", None)
    assert again.started_at == done.started_at
    with pytest.raises(StoreError, match="no run 999"):
        store.resume_run(999)


def test_unknown_run_id_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="start_run"):
        store.put_explanation(42, Explanation(L0, "x", "default"))
    assert store.explanations(42) == []


def test_latents_upsert_and_extra(store: Store, run_id: int) -> None:
    store.put_latents(
        run_id,
        SRC,
        [
            {"index": 1, "frequency": 0.01, "max_activation": 3.5, "dead": False},
            {"index": 0, "frequency": 0.2, "max_activation": 1.0},
        ],
    )
    store.put_latents(
        run_id, "transcoder/mlp.0", [{"index": 5, "frequency": 0, "max_activation": 0}]
    )
    store.put_latents(run_id, SRC, [{"index": 1, "frequency": 0.02, "max_activation": 4.0}])
    assert store.latents(run_id, SRC) == [
        LatentStats(L0, 0.2, 1.0),
        LatentStats(L1, 0.02, 4.0),
    ]
    assert store.latents(run_id, SRC)[1].extra == {}  # replaced, extra dropped
    assert store.latents(run_id, SRC)[0].extra == {}
    store.put_latents(run_id, SRC, [{"index": 0, "frequency": 0.2, "max_activation": 1, "k": [1]}])
    assert store.latents(run_id, SRC)[0].extra == {"k": [1]}
    assert len(store.latents(run_id)) == 3
    # a part of the latents at a time (the report's reader), and the compact id set
    every = {s.latent: s for s in store.latents(run_id)}
    other = LatentRef("transcoder/mlp.0", 5)
    asked = [L1, other, LatentRef(SRC, 7)]  # latent 7 has no stats: absent
    assert store.latent_stats(run_id, asked) == {L1: every[L1], other: every[other]}
    assert store.latent_sources(run_id) == [SRC, "transcoder/mlp.0"]
    assert store.latent_ids(run_id) == set(every) and store.latent_ids(run_id).sources == [
        SRC,
        "transcoder/mlp.0",
    ]


def test_examples_round_trip_in_order(store: Store, run_id: int) -> None:
    exs = [
        Example((5, 6), ("a", "b"), (0.0, 2.5), kind="top"),
        Example((7,), ("c",), (1.25,), kind="quantile:3"),
        Example((8, 9), ("d", "e"), (0.5, 0.0), kind="top"),
    ]
    store.put_examples(run_id, L0, exs)
    assert store.examples(run_id, L0) == exs
    assert store.examples(run_id, L0, kind="top") == [exs[0], exs[2]]
    store.put_examples(run_id, L0, exs[1:2])
    assert store.examples(run_id, L0) == exs[1:2]
    assert store.examples(run_id, L1) == []


def test_explanation_round_trip_and_upsert(store: Store, run_id: int) -> None:
    e = Explanation(L0, "the token 'the'", "default", meta={"model": "m", "n": 3})
    store.put_explanation(run_id, e)
    got = store.get_explanation(run_id, L0, "default")
    assert got == e and got is not None and got.meta == e.meta
    assert store.get_explanation(run_id, L0, "other") is None

    store.put_explanation(run_id, Explanation(L0, "articles", "default"))
    store.put_explanation(run_id, Explanation(L0, "other view", "contrastive"))
    assert [(x.explainer, x.text) for x in store.explanations(run_id)] == [
        ("contrastive", "other view"),
        ("default", "articles"),
    ]
    assert [x.text for x in store.explanations(run_id, explainer="default")] == ["articles"]


def test_resume_queries(store: Store, run_id: int) -> None:
    other_run = store.start_run("other", {})
    store.put_explanation(run_id, Explanation(L1, "x", "default"))
    store.put_score(run_id, make_score(L1))
    assert store.has_explanation(run_id, L1, "default")
    assert not store.has_explanation(run_id, L0, "default")
    assert not store.has_explanation(run_id, L1, "contrastive")
    assert not store.has_explanation(other_run, L1, "default")
    assert store.explained(run_id, "default") == {L1}
    assert store.explained(other_run, "default") == set()
    assert store.has_score(run_id, L1, "default", "detection")
    assert not store.has_score(run_id, L1, "default", "fuzzing")
    assert store.scored(run_id, "default", "detection") == {L1}
    assert store.scored(run_id, "default", "fuzzing") == set()


def test_score_round_trip(store: Store, run_id: int) -> None:
    s = make_score()
    store.put_score(run_id, s)
    got = store.get_score(run_id, L0, "default", "detection")
    assert got == s
    assert got is not None and got.meta == {"prompt_version": 2}
    assert got.predictions[1].predicted is None
    assert got.predictions[2].probability is None
    assert isinstance(got.predictions, tuple)


def test_score_none_value_and_upsert(store: Store, run_id: int) -> None:
    store.put_score(run_id, make_score(value=0.1))
    failed = Score(L0, "detection", "default", None, n_failures=3)
    store.put_score(run_id, failed)
    got = store.get_score(run_id, L0, "default", "detection")
    assert got == failed
    assert got is not None and got.value is None and got.predictions == ()
    assert len(store.scores(run_id)) == 1
    store.put_score(run_id, make_score(L1, scorer="fuzzing"))
    assert [s.scorer for s in store.scores(run_id)] == ["detection", "fuzzing"]
    assert [s.latent for s in store.scores(run_id, scorer="fuzzing")] == [L1]


def test_committed_results_survive_a_killed_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    script = f"""
import os
from dataclasses import replace
from autointerp.store import Store
from autointerp.types import Explanation, LatentRef, Score
s = Store.open({str(run_dir)!r})
rid = s.start_run("killed", {{}})
s.put_explanation(rid, Explanation(LatentRef("src", 3), "survives", "default"))
s.put_score(rid, Score(LatentRef("src", 3), "detection", "default", 0.5))
s._conn.execute("BEGIN IMMEDIATE")
s._conn.execute("UPDATE explanations SET text = 'in flight'")
os._exit(1)
"""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "core" / "src")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    with Store.open(run_dir) as s:
        (run,) = s.runs()
        assert run.status == "running"
        e = s.get_explanation(run.id, LatentRef("src", 3), "default")
        assert e is not None and e.text == "survives"
        sc = s.get_score(run.id, LatentRef("src", 3), "default", "detection")
        assert sc is not None and sc.value == 0.5


def test_second_connection_sees_commits_without_close(tmp_path: Path) -> None:
    writer = Store.open(tmp_path)
    rid = writer.start_run("r", {})
    writer.put_explanation(rid, Explanation(L0, "seen", "default"))
    reader = Store.open(tmp_path)
    try:
        assert reader.explained(rid, "default") == {L0}
    finally:
        reader.close()
        writer.close()


def test_threads_share_one_store(store: Store, run_id: int) -> None:
    def work(offset: int) -> None:
        for i in range(offset, offset + 25):
            store.put_score(run_id, make_score(LatentRef(SRC, i)))

    threads = [threading.Thread(target=work, args=(k * 25,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.scored(run_id, "default", "detection")) == 100


def test_future_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILENAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="upgrade autointerp") as info:
        Store(path)
    assert "\n" not in str(info.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILENAME
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="cannot open results store"):
        Store(path)


def test_migrates_version_1_forward(tmp_path: Path) -> None:
    path = tmp_path / STORE_FILENAME
    conn = sqlite3.connect(path, isolation_level=None)
    _migrate(conn, path, target=1)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "examples" not in tables
    conn.execute("INSERT INTO runs (name, config, status, started_at) VALUES ('old', '{}', 'x', 0)")
    conn.execute("INSERT INTO explanations VALUES (1, 'src', 4, 'default', 'from v1', '{}', 0)")
    conn.close()

    with Store(path) as s:
        assert s.schema_version == len(MIGRATIONS) == 10
        assert s.progress_counts(1).explained == {"default": 1}  # counted by the migration
        e = s.get_explanation(1, LatentRef("src", 4), "default")
        assert e is not None and e.text == "from v1"
        ex = Example((1,), ("a",), (2.0,))
        s.put_examples(1, LatentRef("src", 4), [ex])
        assert s.examples(1, LatentRef("src", 4)) == [ex]
        s.put_failure(1, LatentRef("src", 5), "explain", "default", "no answer")
    with Store(path) as s:  # reopening an up-to-date store changes nothing
        assert s.schema_version == 10
        assert s.progress_counts(1).failed["explain"] == {"default": 1}


def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autointerp.store as store_mod

    path = tmp_path / STORE_FILENAME
    broken = (*MIGRATIONS, ("CREATE TABLE ok (x)", "THIS IS NOT SQL"))
    monkeypatch.setattr(store_mod, "MIGRATIONS", broken)
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", len(broken))
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        store_mod._migrate(conn, path, target=len(broken))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
    conn.close()


def test_request_hash_is_canonical() -> None:
    a = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.0}
    b = {"temperature": 0.0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert request_hash(a) == request_hash(b)
    assert len(request_hash(a)) == 64
    assert request_hash(a) != request_hash({**a, "temperature": 1.0})
    assert request_hash({"t": (1, 2)}) == request_hash({"t": [1, 2]})


def test_llm_cache_and_usage(store: Store, run_id: int) -> None:
    other = store.start_run("other", {})
    c1 = make_call({"prompt": "one"}, cost=0.01)
    c2 = make_call({"prompt": "two"}, cost=0.02)
    assert store.get_llm_call(c1.request_hash) is None
    assert store.usage() == Usage()

    store.put_llm_call(c1, run_id)
    store.put_llm_call(c2, other)
    store.put_llm_call(c1, run_id, cached=True)
    store.put_llm_call(c1, other, cached=True)
    store.put_llm_call(c2)  # paid again, no run

    assert store.get_llm_call(c1.request_hash) == c1
    u = store.usage(run_id)
    assert (u.calls, u.cache_hits, u.prompt_tokens, u.cached_tokens, u.completion_tokens) == (
        1,
        1,
        100,
        20,
        10,
    )
    assert u.cost_usd == pytest.approx(0.01)
    assert u.latency_s == pytest.approx(0.5)
    total = store.usage()
    assert (total.calls, total.cache_hits, total.prompt_tokens) == (3, 2, 300)
    assert total.cost_usd == pytest.approx(0.05)
    assert store.usage(other).cost_usd == pytest.approx(0.02)


def test_cache_hit_for_unknown_request_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="not in the cache"):
        store.put_llm_call(make_call({"prompt": "never paid"}), cached=True)
    assert store.usage() == Usage()


def test_many_llm_calls_are_committed_together_or_not_at_all(store: Store, run_id: int) -> None:
    c1, c2 = make_call({"prompt": "one"}), make_call({"prompt": "two"})
    store.bind(run_id).put_llm_calls([(c1, None, False), (c2, None, False), (c1, None, True)])
    u = store.usage(run_id)  # the same ledger rows as three put_llm_call
    assert (u.calls, u.cache_hits, u.prompt_tokens) == (2, 1, 200)
    assert store.get_llm_call(c2.request_hash) == c2
    c3 = make_call({"prompt": "three"})
    with pytest.raises(StoreError, match="not in the cache"):
        store.put_llm_calls([(c3, run_id, False), (make_call({"p": "unpaid"}), run_id, True)])
    assert store.get_llm_call(c3.request_hash) is None  # rolled back with the bad entry
    assert store.usage(run_id) == u


def test_unserializable_meta_is_a_store_error(store: Store, run_id: int) -> None:
    with pytest.raises(StoreError, match="not JSON-serializable"):
        store.put_explanation(run_id, Explanation(L0, "x", "default", meta={"o": object()}))
    assert not store.has_explanation(run_id, L0, "default")


def test_failures_are_recorded_per_stage_and_cleared(tmp_path: Path) -> None:
    with Store.open(tmp_path) as s:
        run = s.start_run("r", {})
        a, b = LatentRef("sae", 1), LatentRef("sae", 2)
        s.put_failure(run, a, "explain", "default", "unparseable after 2 re-asks")
        s.put_failure(run, b, "score", "detection", "all predictions failed")
        s.put_failure(run, a, "explain", "default", "timed out")  # replaces the first reason
        assert s.failures(run, "explain") == {(a, "default"): "timed out"}
        assert len(s.failures(run)) == 2
        s.clear_failure(run, a, "explain", "default")
        assert s.failures(run, "explain") == {}
        assert s.failures(run, "score") == {(b, "detection"): "all predictions failed"}


def test_bulk_latent_reads_match_single_reads_with_provenance(tmp_path: Path) -> None:
    """latent_examples / latent_explanations / latent_scores: one range read for many latents,
    the same records (provenance included) as the per-latent getters, only the latents asked."""
    with Store.open(tmp_path / "run") as store:
        run = store.start_run("bulk", {})
        other = store.start_run("other", {})
        refs = [LatentRef(SRC, i) for i in range(6)] + [LatentRef("neurons/mlp.1", 0)]
        for k, ref in enumerate(refs):
            store.put_examples(
                run, ref, [Example((k,), (f"t{k}",), (0.5 * k,), "top"), Example((), (), (), "x")]
            )
            for name in ("default", "contrastive"):
                prov = {"explainer": name, "version": k % 2}
                store.put_explanation(run, Explanation(ref, f"{name} {k}", name, {"k": k}, prov))
                store.put_score(run, replace(make_score(ref), explainer=name, provenance=prov))
        store.put_explanation(other, Explanation(refs[1], "elsewhere", "default"))
        asked = [refs[1], refs[4], refs[6], LatentRef(SRC, 99)]  # 2, 3: in range, not asked
        found = [refs[6], refs[1], refs[4]]  # by source, then index

        exs = store.latent_examples(run, asked)
        assert list(exs) == found
        assert all(exs[r] == store.examples(run, r) for r in asked[:3])
        no_ids = store.latent_examples(run, asked, tokens=False)
        assert no_ids[refs[4]][0].tokens == () and no_ids[refs[4]][0].str_tokens == ("t4",)

        expl = store.latent_explanations(run, asked)
        assert list(expl) == found
        for r in asked[:3]:
            single = [store.get_explanation(run, r, n) for n in ("contrastive", "default")]
            assert expl[r] == single
            assert [e.provenance for e in expl[r]] == [e.provenance for e in single if e]
            assert expl[r][1].provenance == {"explainer": "default", "version": r.index % 2}
            assert expl[r][1].meta == {"k": refs.index(r)}

        scores = store.latent_scores(run, asked)
        assert list(scores) == found
        for r in asked[:3]:
            assert [(s.explainer, s.scorer) for s in scores[r]] == [
                ("contrastive", "detection"),
                ("default", "detection"),
            ]
            assert scores[r][0].provenance == {"explainer": "contrastive", "version": r.index % 2}
            assert scores[r] == [store.get_score(run, r, s.explainer, "detection")
                                 for s in scores[r]]  # fmt: skip
            assert scores[r][0].predictions == make_score().predictions
        assert store.latent_scores(run, []) == {}


def test_score_values_without_decoding(store: Store, run_id: int) -> None:
    store.put_score(run_id, make_score(L1, 0.25))
    store.put_score(run_id, make_score(L0, None))
    store.put_score(run_id, make_score(L0, 0.5, scorer="fuzzing"))
    store.put_score(run_id, replace(make_score(L0, 0.125), explainer="contrastive"))
    assert store.score_values(run_id) == [
        (L0, "detection", "contrastive", 0.125),
        (L0, "detection", "default", None),
        (L0, "fuzzing", "default", 0.5),
        (L1, "detection", "default", 0.25),
    ]
    assert store.score_values(run_id, "fuzzing") == [(L0, "fuzzing", "default", 0.5)]
    assert [v for *_, v in store.score_values(run_id, explainer="contrastive")] == [0.125]
    assert store.score_values(store.start_run("empty", {})) == []


def test_a_bound_store_files_everything_under_its_run(tmp_path: Path) -> None:
    from autointerp.types import LLMCall

    with Store.open(tmp_path) as store:
        first, second = store.start_run("a", {}), store.start_run("b", {})
        run = store.bind(second)
        ref = LatentRef("sae/resid_post.1", 3)
        run.put_explanation(Explanation(ref, "dates", "default"))
        run.put_failure(ref, "score", "detection/default", "no answer")
        call = LLMCall("h1", "fake", "m", {"q": 1}, {"text": "a"}, 3, 0, 2, 0.0, 0.1)
        run.put_llm_call(call)
        assert run.explained("default") == {ref} and not store.explained(first, "default")
        assert run.failures("score") == store.failures(second, "score") != {}
        assert store.usage(second).calls == 1 and store.usage(first).calls == 0
        assert run.get_llm_call("h1") is not None
        run.finish("finished")
        assert store.get_run(second).status == "finished"


def _example_set(ref: LatentRef, ids: list[list[int]], acts: list[list[float]], kinds: list[str]):
    import numpy as np

    from autointerp.examples import ExampleSet

    n_train = kinds.count("top")
    n_test = sum(k.startswith("quantile") for k in kinds)
    return ExampleSet(ref, tuple(kinds), np.array(ids), np.array(acts, dtype=np.float32),
                      n_train, n_test)  # fmt: skip


@pytest.mark.parametrize(
    ("ids", "acts", "token_dtype", "activation_dtype"),
    [
        ([[5, 7], [9, 5]], [[0.5, 1.25], [0.0, 3.0]], "<u2", "<f2"),  # exact in float16
        ([[70000, 7], [9, 5]], [[0.1, 1.0], [0.0, 3.0]], "<i4", "<f4"),  # a big vocab; 0.1
    ],
)
def test_example_sets_round_trip_in_one_compact_row(
    store: Store, ids, acts, token_dtype: str, activation_dtype: str
) -> None:
    run = store.start_run("r", {})
    ref = LatentRef("sae/x", 3)
    strings = {5: " a", 7: " cat", 9: "\n", 70000: "zz"}
    x = _example_set(ref, ids, acts, ["top", "random"])
    store.put_example_sets(run, [x], {t: strings[t] for t in {i for row in ids for i in row}})
    (row,) = store._query("SELECT token_dtype, activation_dtype FROM example_sets")
    assert tuple(row) == (token_dtype, activation_dtype)
    got = store.examples(run, ref)
    import numpy as np

    assert [e.tokens for e in got] == [tuple(r) for r in ids]
    assert [e.str_tokens for e in got] == [tuple(strings[i] for i in r) for r in ids]
    assert [e.activations for e in got] == [tuple(np.float32(a).item() for a in r) for r in acts]
    assert [e.kind for e in got] == ["top", "random"]
    assert store.examples(run, ref, "random") == got[1:]
    shown = store.latent_examples(run, [ref], tokens=False)[ref]
    assert [e.str_tokens for e in shown] == [e.str_tokens for e in got]
    assert all(e.tokens == () for e in shown)


def test_examples_of_earlier_runs_are_still_read_beside_example_sets(store: Store) -> None:
    run = store.start_run("r", {})
    old, new = LatentRef("s", 1), LatentRef("s", 2)
    legacy = [Example((1, 2), ("x", "y"), (0.0, 2.0), "top")]
    store.put_examples(run, old, legacy)
    store.put_example_sets(run, [_example_set(new, [[3]], [[1.0]], ["top"])], {3: "z"})
    both = store.latent_examples(run, [old, new])
    assert both[old] == legacy and both[new] == [Example((3,), ("z",), (1.0,), "top")]
    # the strings a run stored first are kept: a later unit passes only new ones
    store.put_example_sets(run, [_example_set(LatentRef("s", 4), [[3, 8]], [[0, 1]], ["top"])],
                           {8: "w"})  # fmt: skip
    assert store.examples(run, LatentRef("s", 4))[0].str_tokens == ("z", "w")


def test_explanations_are_streamed_a_page_at_a_time(store: Store) -> None:
    run = store.start_run("r", {})
    refs = [LatentRef("b", 2), LatentRef("a", 10), LatentRef("a", 3), LatentRef("b", 1)]
    for ref in refs:
        store.put_explanation(run, Explanation(ref, f"text {ref.index}", "default"))
    store.put_explanation(run, Explanation(refs[0], "other", "another"))
    got = list(store.iter_explanations(run, "default", page=2))
    assert [e.latent for e in got] == sorted(refs, key=lambda r: (r.source, r.index))
    assert got == store.explanations(run, "default")


def test_paged_reads_equal_the_whole_reads(store: Store, run_id: int) -> None:
    refs = [LatentRef(src, i) for src in ("a/x", "b/y") for i in range(7)]
    for ref in refs:
        for explainer in ("default", "contrastive"):
            store.put_explanation(
                run_id, Explanation(latent=ref, explainer=explainer, text=f"{ref} {explainer}")
            )
            for scorer in ("detection", "fuzzing"):
                score = replace(make_score(ref, scorer=scorer), explainer=explainer)
                store.put_score(run_id, score)
    other = store.start_run("other", {"model": "gpt2"})
    store.put_explanation(other, Explanation(latent=L0, explainer="default", text="elsewhere"))
    assert list(store.iter_explanations(run_id, page=3)) == store.explanations(run_id)
    assert list(store.iter_explanations(run_id, "default", page=2)) == store.explanations(
        run_id, "default"
    )
    assert list(store.iter_scores(run_id, page=5)) == store.scores(run_id)
    assert len(store.scores(run_id)) == 14 * 4


def test_progress_counts_agree_with_the_records(store: Store, run_id: int) -> None:
    refs = [LatentRef(SRC, i) for i in range(5)]
    rows = [{"index": r.index, "frequency": 0.1, "max_activation": 1.0} for r in refs]
    store.put_latents(run_id, SRC, rows)
    for r in refs[:4]:
        store.put_explanation(run_id, Explanation(latent=r, explainer="default", text="x"))
    for r in refs[:3]:
        store.put_score(run_id, make_score(r, scorer="detection"))
    store.put_score(run_id, make_score(refs[0], scorer="fuzzing"))
    store.put_failure(run_id, refs[4], "explain", "default", "boom")
    store.put_failure(run_id, refs[3], "score", "detection/default", "bad")
    counts = store.progress_counts(run_id)
    assert counts.latents == 5
    assert counts.explained == {"default": 4}
    assert counts.scored == {"detection/default": 3, "fuzzing/default": 1}
    assert counts.failed == {"explain": {"default": 1}, "score": {"detection/default": 1}}
    assert store.progress_counts(store.start_run("empty", {})).latents == 0


def test_kept_counts_equal_a_recount(store: Store, run_id: int) -> None:
    """The counts and ledger totals the triggers keep (what ``status`` reads at a million
    latents) equal counting the records, through replacements, cleared failures, cache hits,
    calls of no run and a second run."""
    refs = [LatentRef(SRC, i) for i in range(6)]
    rows = [{"index": r.index, "frequency": 0.1, "max_activation": 1.0} for r in refs]
    store.put_latents(run_id, SRC, rows)
    store.put_latents(run_id, SRC, rows[:2])  # the same latents again: replaced, not added
    for r in refs[:5]:
        for _ in range(2):  # a resumed run writes an explanation again
            store.put_explanation(run_id, Explanation(latent=r, explainer="default", text="x"))
        store.put_score(run_id, make_score(r, scorer="detection"))
    store.put_score(run_id, make_score(refs[0], scorer="detection"))
    store.put_failure(run_id, refs[5], "explain", "default", "boom")
    store.put_failure(run_id, refs[4], "score", "fuzzing/default", "bad")
    store.put_failure(run_id, refs[4], "score", "fuzzing/default", "bad again")
    store.clear_failure(run_id, refs[4], "score", "fuzzing/default")
    for i, cached in enumerate((False, False, True)):
        call = LLMCall(
            f"h{i % 2}", "c", "m", {}, {}, prompt_tokens=10 + i, completion_tokens=2,
            cost_usd=0.25, latency_s=0.5, stage="score", component="detection/default",
        )  # fmt: skip
        store.put_llm_call(call, run_id, cached=cached)
    store.put_llm_call(LLMCall("h9", "c", "m", {}, {}, prompt_tokens=3), None)  # no run
    other = store.start_run("other", {})
    store.put_latents(other, SRC, rows[:3])
    store.put_llm_call(LLMCall("h8", "c", "m", {}, {}, prompt_tokens=7), other)

    def both() -> tuple[object, ...]:
        return (
            store.progress_counts(run_id), store.progress_counts(other),
            store.usage_by_component(run_id), store.usage_by_component(),
        )  # fmt: skip

    kept = both()
    store._counted = False  # the same questions answered by counting the records
    assert both() == kept
    store._counted = True
    assert kept[0].latents == 6 and kept[0].explained == {"default": 5}
    assert kept[0].scored == {"detection/default": 5}
    assert kept[0].failed == {"explain": {"default": 1}, "score": {}}
    assert kept[2][("score", "detection/default")].calls == 2


def test_a_score_clears_its_components_failure_in_the_same_write(store: Store, run_id: int) -> None:
    store.put_failure(run_id, L0, "score", "detection/default", "no answer")
    store.put_failure(run_id, L0, "score", "fuzzing/default", "no answer")
    store.put_failure(run_id, L0, "explain", "detection/default", "an explain failure stays")
    store.put_failure(run_id, L1, "score", "detection/default", "another latent's stays")
    store.put_score(run_id, make_score(L0), clears="detection/default")
    assert set(store.failures(run_id)) == {
        (L0, "fuzzing/default"),
        (L0, "detection/default"),
        (L1, "detection/default"),
    }
    assert set(store.failures(run_id, "score")) == {
        (L0, "fuzzing/default"),
        (L1, "detection/default"),
    }
    store.bind(run_id).put_score(make_score(L1), clears="detection/default")
    store.put_score(run_id, make_score(L0, scorer="fuzzing"))  # without clears: kept
    assert set(store.failures(run_id, "score")) == {(L0, "fuzzing/default")}
    assert store.get_score(run_id, L1, "default", "detection") is not None


def test_examples_of_some_roles_are_read_without_decoding_the_others(store: Store) -> None:
    run = store.start_run("r", {})
    kinds = ["top", "train-quantile:1", "quantile:0", "random", "quantile:7", "similar", "top"]
    ids = [[i, i + 1] for i in range(len(kinds))]
    acts = [[float(i), 0.5] for i in range(len(kinds))]
    strings = {i: f" t{i}" for i in range(len(kinds) + 1)}
    ref, legacy = LatentRef("s", 1), LatentRef("s", 2)
    store.put_example_sets(run, [_example_set(ref, ids, acts, kinds)], strings)
    store.put_examples(run, legacy, store.examples(run, ref))  # the table of earlier versions
    for latent in (ref, legacy):
        every = store.examples(run, latent)
        assert [x.kind for x in every] == kinds
        for roles in [("test", "negative"), ("train",), ("test",), ()]:
            got = store.examples(run, latent, roles=roles)
            assert got == [x for x in every if x.role in roles], roles
        assert [x.kind for x in store.bind(run).examples(latent, roles=("test",))] == [
            "quantile:0",
            "quantile:7",
        ]
        assert store.examples(run, latent, "random", roles=("negative",)) == [every[3]]
        assert store.examples(run, latent, "random", roles=("test",)) == []
