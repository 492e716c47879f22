"""A planted source inside `autointerp run` (tiny model, built-in corpus, scripted LLM server),
then `autointerp bench planted` on the finished run."""

from __future__ import annotations

import json
from pathlib import Path

from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config


def test_a_planted_run_reaches_the_store_and_the_bench_reads_it(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = scripted_answers(explanation="commas and full stops")
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    path = write_run_config(
        tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url, model=model,
        n_latents=6, scorers=("detection", "fuzzing"), source='name = "planted"\nseed = 3',
    )  # fmt: skip
    result = autointerp_cli("run", str(path), "--no-report")
    assert result.exit_code == 0, result.stderr
    run_dir = tmp_path / "run"
    with Store.open(run_dir) as store:
        (run,) = store.runs()
        assert run.status == "finished"
        assert len(store.explanations(run.id)) == 6
        assert len(store.scores(run.id, "detection")) == len(store.scores(run.id, "fuzzing")) == 6
    assert (run_dir / "cache" / "resid_post.0" / "manifest.json").is_file()

    out = tmp_path / "bench.json"
    bench = autointerp_cli("bench", "planted", str(run_dir), "--out", str(out))
    assert bench.exit_code == 0, bench.stderr
    assert "Spearman" in bench.stdout
    report = json.loads(out.read_text())
    assert report["seed"] == 3 and report["n_explained"] == 6 and report["n_planted"] > 200
    assert {s["scorer"] for s in report["scorers"]} == {"detection", "fuzzing"}
    latents = report["latents"]
    assert all(-1.0 <= r["similarity"] <= 1.0 for r in latents)
    assert all(0.0 <= r["purity"] <= 1.0 for r in latents)
    named = [r for r in latents if r["keys"] and set(r["keys"]) <= {",", "."}]
    assert all(r["key_match"] == 1.0 for r in named)  # "commas and full stops" names both
    assert report["cost"]["llm_calls"] > 0
