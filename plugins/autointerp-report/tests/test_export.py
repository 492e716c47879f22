"""`autointerp export` (JSONL, Parquet, Neuronpedia feature JSON) on a finished run."""

from __future__ import annotations

import json

import pytest
from autointerp_report.export import ExportError, export_run

from autointerp.store import Store
from autointerp.testing.runs import small_finished_store
from autointerp.types import Explanation, LatentRef, Prediction, Score


@pytest.fixture
def finished_run(autointerp_run_dir):
    return small_finished_store(autointerp_run_dir)


def test_jsonl_export_holds_every_record(finished_run, autointerp_cli) -> None:
    result = autointerp_cli("export", str(finished_run))
    assert result.exit_code == 0, result.stderr
    out = finished_run / "export"
    (expl,) = [json.loads(x) for x in (out / "explanations.jsonl").read_text().splitlines()]
    assert expl == {
        "source": "sae/resid_post.3",
        "latent": 1,
        "explainer": "default",
        "explanation": "days of the week",
        "meta": {"reasks": 0},
        "provenance": {"config_hash": "abc"},
    }
    (score,) = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert score["value"] == 0.75 and score["n_failures"] == 1
    assert score["predictions"] == [
        {"example_id": 0, "predicted": 1.0, "actual": 1.0, "probability": None, "quantile": None}
    ]
    (failure,) = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert failure["stage"] == "explain" and failure["latent"] == 2


def test_parquet_export(finished_run, tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    written = export_run(finished_run, "parquet", tmp_path / "pq")
    assert {p.name: n for p, n in written.items()} == {
        "explanations.parquet": 1,
        "scores.parquet": 1,
        "failures.parquet": 1,
        "cost.parquet": 0,  # this fixture's run made no LLM call
    }
    table = pq.read_table(tmp_path / "pq" / "scores.parquet").to_pylist()
    assert table[0]["value"] == 0.75 and json.loads(table[0]["metrics"]) == {"f1": 0.8}


def test_export_errors(tmp_path, finished_run) -> None:
    with pytest.raises(ExportError, match=r"nowhere: does not exist; is this a run directory\?"):
        export_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match=r"empty: has no results\.sqlite"):
        export_run(tmp_path / "empty")
    with pytest.raises(ExportError, match="no run 9; runs here: 1"):
        export_run(finished_run, run_id=9)
    with pytest.raises(ExportError, match="expected jsonl, parquet or neuronpedia"):
        export_run(finished_run, "csv")  # type: ignore[arg-type]


def test_neuronpedia_export_round_trips_the_store(tmp_path, autointerp_cli) -> None:
    from autointerp_report.export import neuronpedia_layer

    from autointerp.types import Example

    run_dir = tmp_path / "run"
    src = "sae/resid_post.6"
    a, b = LatentRef(src, 3), LatentRef(src, 8)
    top = Example((5, 6, 7), ("The", " cat", " sat"), (0.0, 2.5, 0.5), "top")
    quant = Example((9, 6), (" a", " cat"), (0.25, 1.0), "quantile:0")
    neg = Example((1, 2), (" x", " y"), (0.0, 0.0), "random")
    with Store.open(run_dir) as store:
        run = store.start_run("r", {"model": {"name": "transformers", "model": "smollm2-135m"}})
        store.put_latents(
            run,
            src,
            [
                {"index": 3, "frequency": 0.02, "max_activation": 2.5, "mean": 1.1},
                {"index": 8, "frequency": 0.0, "max_activation": 0.0, "mean": 0.0},
            ],
        )
        store.put_examples(run, a, [top, quant, neg])
        prov = {"llm_model": "qwen2.5-coder-1.5b", "config_hash": "abc"}
        store.put_explanation(run, Explanation(a, "cats", "default", {"model": "qwen"}, prov))
        store.put_explanation(run, Explanation(a, "felines", "contrastive", {"model": "qwen"}))
        preds = (Prediction(0, 1.0, 1.0, 0.9, quantile=0), Prediction(1, None, 0.0))
        store.put_score(
            run,
            Score(a, "detection", "default", 0.5, {"f1": 0.6}, preds, 1, {"k": 1}, prov),
        )
        store.put_score(run, Score(a, "fuzzing", "contrastive", None))
        store.put_failure(run, b, "explain", "default", "no activating examples")
    result = autointerp_cli("export", str(run_dir), "--format", "neuronpedia")
    assert result.exit_code == 0, result.stderr
    assert "2 latents" in result.stdout
    data = json.loads((run_dir / "export" / "neuronpedia.json").read_text())
    assert data["format"] == "neuronpedia-features" and data["modelId"] == "smollm2-135m"
    f3, f8 = data["features"]
    assert (f3["modelId"], f3["layer"], f3["index"]) == ("smollm2-135m", "6-sae-resid-post", 3)
    assert f3["frac_nonzero"] == 0.02 and f3["maxActApprox"] == 2.5
    assert f3["autointerp"]["stats"] == {"mean": 1.1} and f3["autointerp"]["source"] == src
    first = f3["activations"][0]
    assert first["tokens"] == ["The", " cat", " sat"] and first["values"] == [0.0, 2.5, 0.5]
    assert first["maxValue"] == 2.5 and first["maxValueTokenIndex"] == 1
    assert first["minValue"] == 0.0
    # the examples come back exactly, kinds and token ids included
    back = [
        Example(
            tuple(x["autointerp"]["tokenIds"]), tuple(x["tokens"]), tuple(x["values"]),
            x["autointerp"]["kind"],
        )
        for x in f3["activations"]
    ]  # fmt: skip
    with Store.open(run_dir) as store:
        assert back == store.examples(1, a)
    assert [(x["autointerp"]["role"], x["autointerp"]["quantile"]) for x in f3["activations"]] == [
        ("train", None),
        ("test", 0),
        ("negative", None),
    ]
    by_type = {e["typeName"]: e for e in f3["explanations"]}
    assert by_type["default"]["description"] == "cats"
    assert by_type["default"]["explanationModelName"] == "qwen2.5-coder-1.5b"  # provenance
    assert by_type["default"]["autointerp"]["provenance"] == prov
    assert by_type["contrastive"]["description"] == "felines"
    assert by_type["contrastive"]["explanationModelName"] == "qwen"  # meta, without provenance
    (det,) = by_type["default"]["scores"]
    assert det["explanationScoreTypeName"] == "detection" and det["value"] == 0.5
    assert det["explanationScoreModelName"] == "qwen2.5-coder-1.5b"
    details = json.loads(det["jsonDetails"])
    assert details["metrics"] == {"f1": 0.6} and details["n_failures"] == 1
    assert details["meta"] == {"k": 1} and details["provenance"] == prov
    assert [Prediction(**p) for p in details["predictions"]] == list(preds)
    (fuzz,) = by_type["contrastive"]["scores"]
    assert fuzz["value"] is None and fuzz["explanationScoreTypeName"] == "fuzzing"
    assert f8["explanations"] == [] and f8["activations"] == []
    assert f8["autointerp"]["failures"] == [
        {"stage": "explain", "component": "default", "reason": "no activating examples"}
    ]
    # the model id can be set; the source id without a layer keeps the site's name
    export_run(run_dir, "neuronpedia", tmp_path / "np", model_id="my-model")
    assert json.loads((tmp_path / "np" / "neuronpedia.json").read_text())["modelId"] == "my-model"
    assert neuronpedia_layer("neurons/mlp_neurons.12") == "12-neurons-mlp-neurons"
    assert neuronpedia_layer("sae/embed") == "sae-embed"


def test_a_run_sampling_train_examples_by_quantile_exports_accuracy_per_quantile(
    autointerp_llm_server, autointerp_cli, tmp_path
) -> None:
    """`autointerp run` with ``latents.train_sampler = "quantiles"``: the stored train examples
    name their quantile, and every exported prediction names the quantile of its example, so
    accuracy per quantile is a group-by over ``scores.jsonl``; a rerun resumes without a request."""
    from autointerp.testing.adapters import save_tiny, tiny_model
    from autointerp.testing.runs import scripted_answers, write_run_config

    autointerp_llm_server.responder = scripted_answers()
    save_tiny(tiny_model("gpt2"), tmp_path / "model")
    path = write_run_config(
        tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url,
        model=tmp_path / "model", n_latents=3,
    )  # fmt: skip
    sets = ["--set", "latents.train_sampler=quantiles", "--set", "latents.n_quantiles=2"]
    result = autointerp_cli("run", str(path), "--no-report", *sets)
    assert result.exit_code == 0, result.stderr
    paid = len(autointerp_llm_server.requests)
    run_dir = tmp_path / "run"
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.config["latents"]["train_sampler"] == "quantiles"
        stored = {ref: store.examples(run.id, ref) for ref in store.explained(run.id, "default")}
    assert stored
    for examples in stored.values():
        train = [x for x in examples if x.role == "train"]
        assert train and all(x.kind.startswith("train-quantile:") for x in train)
        assert {x.quantile for x in train} <= {0, 1}
        assert all(x.quantile in (0, 1) for x in examples if x.role == "test")

    assert autointerp_cli("export", str(run_dir)).exit_code == 0
    rows = [json.loads(x) for x in (run_dir / "export" / "scores.jsonl").read_text().splitlines()]
    per_quantile: dict[int | None, list[bool]] = {}
    for row in rows:
        ref = LatentRef(row["source"], row["latent"])
        test = [x for x in stored[ref] if x.role == "test"]
        scored = [*test, *(x for x in stored[ref] if x.role == "negative")]
        for p in row["predictions"]:
            assert p["quantile"] == scored[p["example_id"]].quantile
            per_quantile.setdefault(p["quantile"], []).append(p["predicted"] == p["actual"])
    assert set(per_quantile) == {0, 1, None}  # both quantiles, and the negatives
    # the scripted judge answers 1 to all: right on every activating example, wrong on negatives
    assert all(per_quantile[0]) and all(per_quantile[1]) and not any(per_quantile[None])
    cost = [json.loads(x) for x in (run_dir / "export" / "cost.jsonl").read_text().splitlines()]
    by = {(c["stage"], c["component"]): c for c in cost}
    assert set(by) == {("explain", "default"), ("score", "detection/default")}
    assert sum(c["calls"] for c in cost) == paid  # every paid request, filed under its payer

    again = autointerp_cli("run", str(path), "--no-report", *sets)
    assert again.exit_code == 0, again.stderr
    assert len(autointerp_llm_server.requests) == paid


def test_parquet_is_written_in_batches_and_equals_one_table(tmp_path, monkeypatch) -> None:
    import autointerp_report.export as export

    pq = pytest.importorskip("pyarrow.parquet")
    run_dir = tmp_path / "run"
    with Store.open(run_dir) as store:
        run_id = store.start_run("r", {"model": "m"})
        for i in range(23):  # the first values are None: the column's type shows later
            store.put_score(
                run_id,
                Score(
                    latent=LatentRef("sae/resid_post.3", i), scorer="detection",
                    explainer="default", value=None if i < 9 else i / 23, metrics={"i": i},
                    predictions=(Prediction(example_id=i, predicted=1.0, actual=0.0),),
                ),
            )  # fmt: skip
    whole = export_run(run_dir, "parquet", tmp_path / "whole")
    monkeypatch.setattr(export, "PARQUET_BATCH", 4)
    batched = export_run(run_dir, "parquet", tmp_path / "batched")
    assert [n for n in whole.values()] == [n for n in batched.values()]
    a = pq.read_table(tmp_path / "whole" / "scores.parquet")
    b = pq.read_table(tmp_path / "batched" / "scores.parquet")
    assert a.num_rows == 23 and a.to_pylist() == b.to_pylist()
    assert b.schema.field("value").type == "double"
    assert pq.ParquetFile(tmp_path / "batched" / "scores.parquet").metadata.num_row_groups > 1


def test_neuronpedia_export_reads_stats_a_part_at_a_time(tmp_path, monkeypatch) -> None:
    """Parts of 2 latents over two sources: every feature keeps its own stats, in latent order."""
    import autointerp_report.export as export

    monkeypatch.setattr(export, "STATS_PART", 2)
    run_dir = tmp_path / "run"
    with Store.open(run_dir) as store:
        run = store.start_run("r", {"model": {"name": "transformers", "model": "m"}})
        for src, indices in (("sae/b.1", [7, 2]), ("sae/a.0", [9, 0, 4])):
            rows = [{"index": i, "frequency": i / 100, "max_activation": float(i)} for i in indices]
            store.put_latents(run, src, rows)
    export_run(run_dir, "neuronpedia")
    data = json.loads((run_dir / "export" / "neuronpedia.json").read_text())
    got = [(f["autointerp"]["source"], f["index"], f["frac_nonzero"], f["maxActApprox"])
           for f in data["features"]]  # fmt: skip
    order = [("sae/a.0", 0), ("sae/a.0", 4), ("sae/a.0", 9), ("sae/b.1", 2), ("sae/b.1", 7)]
    want = [(s, i, i / 100, float(i)) for s, i in order]
    assert got == want
