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

    # purity measured on the run's cache, the nominal one kept beside it
    assert report["purity"] == "measured"
    for r in latents:
        counts = r["firings"]
        assert counts["firings"] > 0 and r["purity"] == r["purity_measured"]
        assert r["purity"] == max(counts["rule_firings"]) / counts["firings"]
        if r["mode"] in ("pure", "graded"):
            assert r["purity"] == r["purity_nominal"] == 1.0
        if r["mode"] == "polysemantic":
            assert r["purity_nominal"] == 0.5 and len(counts["rule_firings"]) == 2
    assert all("spearman_purity_nominal" in s for s in report["scorers"])
    nominal = autointerp_cli(
        "bench", "planted", str(run_dir), "--out", str(out), "--no-embedding",
        "--no-measured-purity",
    )  # fmt: skip
    assert nominal.exit_code == 0, nominal.stderr
    again = json.loads(out.read_text())
    assert again["purity"] == "nominal"
    assert all(r["purity"] == r["purity_nominal"] for r in again["latents"])


def comma_answers(request) -> str:
    """The explanation, then 1 for each example holding a comma: keyed JSON where the request
    asks for a JSON schema (economy), an ``Answer: [...]`` list otherwise (parity, small-llm)."""
    messages = request.body["messages"]
    if "explain what a neuron" in messages[0]["content"]:
        return "Explanation: commas and full stops"
    turn = messages[-1]["content"]
    bits = [int("," in line) for line in turn.splitlines() if line.startswith("Example ")]
    if request.body.get("response_format"):
        return json.dumps({str(i): b for i, b in enumerate(bits, 1)})
    return "Answer: [" + ", ".join(map(str, bits)) + "]"


def test_the_judge_and_the_other_modes_are_compared_with_parity(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    """Three runs of one planted set (parity, economy, small-llm) benched together: the LLM
    judge answers through the scripted server (yes for explanations naming commas, no
    otherwise), its answers are cached in each run's store, and the economy and small-llm runs
    are set against the parity one in the table, the JSON and the figure."""
    from autointerp_planted.judge import PROMPT_VERSION, SYSTEM

    def respond(request) -> str:
        messages = request.body["messages"]
        if messages[0]["content"] == SYSTEM:
            truth = messages[-1]["content"].split("\nExplanation:")[0]
            return "Yes." if "comma" in truth else "no"
        return comma_answers(request)

    autointerp_llm_server.responder = respond
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    runs, asked = [], {}
    for mode in ("parity", "economy", "small-llm"):
        before = len(autointerp_llm_server.requests)
        path = write_run_config(
            tmp_path / f"{mode}.toml", base_url=autointerp_llm_server.openai_base_url,
            model=model, name=mode, run_dir=tmp_path / mode, n_latents=6,
            scorers=("detection", "fuzzing"), source='name = "planted"\nseed = 3',
            top=f'mode = "{mode}"',
        )  # fmt: skip
        result = autointerp_cli("run", str(path), "--no-report")
        assert result.exit_code == 0, result.stderr
        runs.append(tmp_path / mode)
        asked[mode] = [
            r.body
            for r in autointerp_llm_server.requests[before:]
            if "explain what a neuron" not in r.body["messages"][0]["content"]
        ]

    out = tmp_path / "bench.json"
    args = ["bench", "planted", *map(str, runs), "--judge", "--no-embedding", "--out", str(out)]
    bench = autointerp_cli(*args)
    assert bench.exit_code == 0, bench.stderr
    assert "against parity" in bench.stdout and PROMPT_VERSION == "judge-v1"
    assert "economy: economy@" in bench.stdout and "small-llm: small-llm@" in bench.stdout
    data = json.loads(out.read_text())
    parity, economy, small = data["runs"]
    assert [r["mode"] for r in data["runs"]] == ["parity", "economy", "small-llm"]
    # every mode's scorers scored the same latents (those firing often enough to be scored)
    for result in data["runs"]:
        assert {s["scorer"] for s in result["scorers"]} == {"detection", "fuzzing"}
        assert {s["n"] for s in result["scorers"]} == {parity["scorers"][0]["n"]}
        assert result["purity"] == "measured"
    assert parity["scorers"][0]["n"] >= 3

    # economy: a set's examples in one JSON answer; small-llm: one example a prompt, logprobs
    def examples(body) -> int:
        turn = body["messages"][-1]["content"]
        return sum(line.startswith("Example ") for line in turn.splitlines())

    assert all(b.get("response_format") for b in asked["economy"])
    assert max(map(examples, asked["economy"])) > 5 >= max(map(examples, asked["parity"]))
    assert asked["small-llm"] and all(examples(b) == 1 for b in asked["small-llm"])
    assert all(b.get("logprobs") for b in asked["small-llm"])
    for result in data["runs"]:
        truths = {r["latent"]: r for r in result["latents"]}
        for r in truths.values():  # the scripted judge: yes exactly when the truth names commas
            assert r["judge"] == float("comma" in r["truth"])
        assert result["correctness"]["llm_judge"] == sum(r["judge"] for r in truths.values()) / len(
            truths
        )
    rows = data["comparison"]["rows"]
    assert data["comparison"]["parity"].startswith("parity:")
    assert {(r["mode"], r["scorer"]) for r in rows} == {
        (m, s) for m in ("parity", "economy", "small-llm") for s in ("detection", "fuzzing")
    }
    for other in (economy, small):
        (row,) = [r for r in rows if r["mode"] == other["mode"] and r["scorer"] == "detection"]
        scored = [
            {r["latent"] for r in x["latents"] if "detection" in r["scores"]}
            for x in (parity, other)
        ]
        assert row["n_common"] == len(scored[0] & scored[1]) == parity["scorers"][0]["n"]
        assert set(row) >= {"delta_spearman", "delta_auroc", "agreement_spearman", "within"}
    figure = (runs[0] / "report" / "analyses" / "planted-bench.svg").read_text()
    assert figure.startswith("<svg")
    assert all(f"{m}: {m}@1" in figure for m in ("parity", "economy", "small-llm"))
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
