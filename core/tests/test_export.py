"""`autointerp export` (JSONL, Parquet) and `autointerp status` on a finished run."""

from __future__ import annotations

import json

import pytest

from autointerp.export import ExportError, export_run
from autointerp.store import Store
from autointerp.types import Explanation, LatentRef, Prediction, Score


@pytest.fixture
def finished_run(autointerp_run_dir):
    with Store.open(autointerp_run_dir) as store:
        run = store.start_run("r", {})
        a, b = LatentRef("sae/resid_post.3", 1), LatentRef("sae/resid_post.3", 2)
        store.put_explanation(run, Explanation(a, "days of the week", "default", {"reasks": 0}))
        store.put_score(
            run,
            Score(a, "detection", "default", 0.75, {"f1": 0.8}, (Prediction(0, 1.0, 1.0),), 1),
        )
        store.put_failure(run, b, "explain", "default", "unparseable after 2 re-asks")
    return autointerp_run_dir


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
    }
    (score,) = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert score["value"] == 0.75 and score["n_failures"] == 1
    assert score["predictions"] == [
        {"example_id": 0, "predicted": 1.0, "actual": 1.0, "probability": None}
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
    }
    table = pq.read_table(tmp_path / "pq" / "scores.parquet").to_pylist()
    assert table[0]["value"] == 0.75 and json.loads(table[0]["metrics"]) == {"f1": 0.8}


def test_export_errors(tmp_path, finished_run) -> None:
    with pytest.raises(ExportError, match=r"no results\.sqlite here"):
        export_run(tmp_path / "nowhere")
    with pytest.raises(ExportError, match="no run 9; runs here: 1"):
        export_run(finished_run, run_id=9)
    with pytest.raises(ExportError, match="expected jsonl or parquet"):
        export_run(finished_run, "csv")  # type: ignore[arg-type]


def test_status_counts_done_failed_and_pending(finished_run, autointerp_cli) -> None:
    with Store.open(finished_run) as store:
        store.put_latents(
            1,
            "sae/resid_post.3",
            [{"index": i, "frequency": 0.1, "max_activation": 1.0} for i in range(5)],
        )
    result = autointerp_cli("status", str(finished_run), "--json")
    assert result.exit_code == 0, result.stderr
    rows = {(r["stage"], r["component"]): r for r in json.loads(result.stdout)}
    assert rows[("explain", "default")] == {
        "stage": "explain",
        "component": "default",
        "done": 1,
        "failed": 1,
        "pending": 3,
    }
    assert rows[("score", "detection/default")]["done"] == 1
    table = autointerp_cli("status", str(finished_run))
    assert table.exit_code == 0 and "detection/default" in table.stdout
