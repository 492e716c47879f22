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


def test_the_judge_and_a_second_mode_are_compared_with_parity(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    """Two runs of one planted set (parity, small-llm) benched together: the LLM judge answers
    through the scripted server (yes for explanations naming commas, no otherwise), its answers
    are cached in each run's store, and the small-llm run is set against the parity one."""
    from autointerp_planted.judge import PROMPT_VERSION, SYSTEM

    scripted = scripted_answers(explanation="commas and full stops")

    def respond(request) -> str:
        messages = request.body["messages"]
        if messages[0]["content"] == SYSTEM:
            truth = messages[-1]["content"].split("\nExplanation:")[0]
            return "Yes." if "comma" in truth else "no"
        return scripted(request)

    autointerp_llm_server.responder = respond
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    runs = []
    for mode in ("parity", "small-llm"):
        path = write_run_config(
            tmp_path / f"{mode}.toml", base_url=autointerp_llm_server.openai_base_url,
            model=model, name=mode, run_dir=tmp_path / mode, n_latents=6,
            scorers=("detection",), source='name = "planted"\nseed = 3', top=f'mode = "{mode}"',
        )  # fmt: skip
        result = autointerp_cli("run", str(path), "--no-report")
        assert result.exit_code == 0, result.stderr
        runs.append(tmp_path / mode)

    out = tmp_path / "bench.json"
    args = ["bench", "planted", *map(str, runs), "--judge", "--no-embedding", "--out", str(out)]
    bench = autointerp_cli(*args)
    assert bench.exit_code == 0, bench.stderr
    assert "against parity" in bench.stdout and PROMPT_VERSION == "judge-v1"
    data = json.loads(out.read_text())
    parity, small = data["runs"]
    assert (parity["mode"], small["mode"]) == ("parity", "small-llm")
    for result in data["runs"]:
        truths = {r["latent"]: r for r in result["latents"]}
        for r in truths.values():  # the scripted judge: yes exactly when the truth names commas
            assert r["judge"] == float("comma" in r["truth"])
        assert result["correctness"]["llm_judge"] == sum(r["judge"] for r in truths.values()) / len(
            truths
        )
    rows = data["comparison"]["rows"]
    assert data["comparison"]["parity"].startswith("parity:")
    (row,) = [r for r in rows if r["mode"] == "small-llm"]
    scored = [
        {r["latent"] for r in x["latents"] if "detection" in r["scores"]} for x in (parity, small)
    ]
    assert row["n_common"] == len(scored[0] & scored[1]) > 0
    assert set(row) >= {"delta_spearman", "delta_auroc", "agreement_spearman", "within"}
    assert (runs[0] / "report" / "analyses" / "planted-bench.svg").read_text().startswith("<svg")
    judged = len(autointerp_llm_server.requests)
    again = autointerp_cli(*args)  # the judge's answers are cached in the runs' stores
    assert again.exit_code == 0, again.stderr
    assert len(autointerp_llm_server.requests) == judged

    # another (stronger) judge than the runs' own client: its own requests and answers
    other = [
        "--judge-llm",
        "openai-compatible",
        "-j",
        "model=judge-8b",
        "-j",
        "backoff_base_s=0.01",
    ]
    other += ["-j", f"base_url={autointerp_llm_server.openai_base_url}"]
    third = autointerp_cli(*args, *other)
    assert third.exit_code == 0, third.stderr
    asked = autointerp_llm_server.requests[judged:]
    assert asked and all(r.body["model"] == "judge-8b" for r in asked)
    bad = autointerp_cli(*args, "-j", "model=x")
    assert bad.exit_code != 0 and "--judge-option needs --judge-llm" in bad.stderr
