"""Importing published explanations: delphi's explanation files, Neuronpedia exports and our own
export, read with one-line reasons for every skipped record, mapped onto a run's latents, and
scored by our scorers inside `autointerp run` (explainer `imported`) with the file's content
pinned in the run's identity."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest
from autointerp_explainers.import_formats import (
    ImportFormatError,
    content_sha256,
    detect_format,
    layer_of,
    load_explanations,
    resolve_label,
)
from autointerp_explainers.imported import ImportedExplainer, NoImportedExplanation
from autointerp_explainers.plugin import ImportedConfig

from autointerp.config import ConfigError, validate_options
from autointerp.store import Store
from autointerp.testing.adapters import save_tiny, tiny_model
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, small_finished_store, write_run_config
from autointerp.types import Explanation, LatentRef


def write_delphi(root: Path) -> Path:
    """A delphi explanations directory: per-latent files of module layers.1.mlp, some bad."""
    root.mkdir(parents=True)
    (root / "layers.1.mlp_latent0.txt").write_text(json.dumps("code words"))
    (root / "layers.1.mlp_feature4.txt").write_text(
        json.dumps("names of animals")
    )  # sae-auto-interp
    (root / "layers.1.mlp_latent5.txt").write_text("not json at all")
    (root / "layers.1.mlp_latent6.txt").write_text(json.dumps("Explanation could not be parsed."))
    (root / "layers.1.mlp_latent7.txt").write_text(json.dumps({"text": "a dict"}))
    (root / "README.md").write_text("not an explanation")
    return root


def np_record(layer: str, index: object, description: object, **extra: object) -> dict:
    """One record of a Neuronpedia explanations export."""
    base = {"modelId": "gpt2-small", "layer": layer, "index": index, "description": description}
    return {
        **base,
        "typeName": "oai_token-act-pair",
        "explanationModelName": "gpt-4o-mini",
        **extra,
    }


def test_delphi_files_are_read_and_bad_ones_named_with_what_was_expected(tmp_path: Path) -> None:
    root = write_delphi(tmp_path / "explanations")
    assert detect_format(root) == "delphi"
    got = load_explanations(root)
    assert got.format == "delphi"
    assert {i: e.text for i, e in got.labels["layers.1.mlp"].items()} == {
        0: "code words",
        4: "names of animals",
    }
    lines = [str(p) for p in got.problems]
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    bad_json = "expected the explanation as a JSON string"
    assert any("layers.1.mlp_latent5.txt" in ln and bad_json in ln for ln in lines)
    assert any("latent6.txt" in ln and "placeholder for a failed explanation" in ln for ln in lines)
    assert any("latent7.txt" in ln and "explanation: expected a string" in ln for ln in lines)
    assert got.why_missing("layers.1.mlp", 5) is not None
    summary = got.summary()
    assert summary.startswith("imported 2 explanations") and "skipped 3" in summary


def test_the_released_per_module_json_of_the_paper_is_read(tmp_path: Path) -> None:
    root = tmp_path / "Gemma" / "16k" / "res"
    root.mkdir(parents=True)
    data = {"0": "negation", "12": "dates", "x": "bad key", "13": ""}
    (root / "model.layers.14_feature.json").write_text(json.dumps(data))
    got = load_explanations(tmp_path / "Gemma")
    (label,) = got.labels
    assert label == "16k/res/model.layers.14" and layer_of(label) == 14
    assert {i: e.text for i, e in got.labels[label].items()} == {0: "negation", 12: "dates"}
    reasons = sorted(p.reason for p in got.problems)
    assert reasons == ["empty explanation", "index: expected a latent index (an integer >= 0)"]
    assert "key 'x'" in str(next(p for p in got.problems if p.latent is None))
    bad = root / "model.layers.15_feature.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ImportFormatError, match=r"layers.15_feature.json: expected a JSON object"):
        load_explanations(tmp_path / "Gemma")


def test_neuronpedia_exports_jsonl_gz_and_feature_records(tmp_path: Path) -> None:
    path = tmp_path / "batch-0.jsonl.gz"
    lines = [
        json.dumps(np_record("1-res-jb", "204", "time phrases")),
        json.dumps(np_record("1-res-jb", 3, "dates", typeName="other", explanationModelName="m2")),
        json.dumps(np_record("1-res-jb", 3, "calendar words")),
        "{not json",
        json.dumps(np_record("1-res-jb", "abc", "x")),
        json.dumps({"modelId": "gpt2-small", "index": 9, "description": "no layer"}),
        json.dumps({"modelId": "gpt2-small", "layer": "1-res-jb", "index": 9}),
        "",
    ]
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines))
    assert detect_format(path) == "neuronpedia"
    got = load_explanations(path)
    assert {i: e.text for i, e in got.labels["1-res-jb"].items()} == {
        204: "time phrases",
        3: "dates",
    }
    by_line = {p.where.rsplit(":", 1)[-1]: p.reason for p in got.problems}
    assert by_line["3"] == "another explanation of a latent already imported"
    assert by_line["4"] == "not valid JSON"
    assert by_line["5"].startswith("index: expected a latent index")
    assert by_line["6"].startswith("layer: expected a Neuronpedia source id")
    assert by_line["7"].startswith("expected 'description'")
    picked = load_explanations(path, pick="oai_token-act-pair")
    assert picked.labels["1-res-jb"][3].text == "calendar words"

    features = tmp_path / "features.json"  # the /api/feature answers, as a JSON array
    features.write_text(json.dumps([
        {"modelId": "gpt2-small", "layer": "2-res-jb", "index": 5,
         "explanations": [{"description": "plural nouns", "typeName": "t"}]},
        {"modelId": "gpt2-small", "layer": "2-res-jb", "index": 6, "explanations": []},
    ]))  # fmt: skip
    got = load_explanations(features)
    assert got.labels["2-res-jb"][5].text == "plural nouns"
    assert got.why_missing("2-res-jb", 6) is not None


def test_our_own_exports_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("autointerp_report")
    from autointerp_report.export import export_run

    run_dir = small_finished_store(tmp_path / "run")
    export_run(run_dir, "jsonl")
    export_run(run_dir, "neuronpedia")
    for path, fmt in (
        (run_dir / "export" / "explanations.jsonl", "autointerp"),
        (run_dir / "export", "autointerp"),
        (run_dir / "export" / "neuronpedia.json", "neuronpedia"),
    ):
        got = load_explanations(path)
        assert got.format == fmt
        assert got.labels["sae/resid_post.3"][1].text == "days of the week"
        assert resolve_label(got, "sae/resid_post.3") == "sae/resid_post.3"


def test_labels_map_onto_the_run_by_layer_with_explicit_overrides(tmp_path: Path) -> None:
    assert [layer_of(s) for s in ("6-res-jb", "20-gemmascope-mlp-16k", "layers.6.mlp")] == [
        6,
        20,
        6,
    ]
    assert [layer_of(s) for s in ("model.layers.6", "sae/resid_post.6", "encoder")] == [6, 6, None]
    path = tmp_path / "np.jsonl"
    path.write_text("\n".join(json.dumps(np_record(layer, 1, "x")) for layer in
                              ("1-res-jb", "1-att-kk", "2-res-jb")))  # fmt: skip
    got = load_explanations(path)
    assert resolve_label(got, "sae/resid_post.2") == "2-res-jb"
    with pytest.raises(ImportFormatError, match=r"several of its sources are layer 1 .*--source"):
        resolve_label(got, "sae/resid_post.1")
    assert resolve_label(got, "sae/resid_post.1", source="1-att-kk") == "1-att-kk"
    assert resolve_label(got, "sae/resid_post.7", layer=2) == "2-res-jb"
    with pytest.raises(
        ImportFormatError, match=r"no explanations for sae/resid_post.7 \(layer 7\)"
    ):
        resolve_label(got, "sae/resid_post.7")
    with pytest.raises(ImportFormatError, match=r"source 'nope' is not in the file"):
        resolve_label(got, "sae/resid_post.1", source="nope")


def test_unreadable_inputs_fail_with_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="no such file or directory"):
        load_explanations(tmp_path / "missing.jsonl")
    weird = tmp_path / "labels.csv"
    weird.write_text("a,b\n")
    with pytest.raises(ImportFormatError, match=r"labels.csv: cannot tell its format .*--format"):
        load_explanations(weird)
    other = tmp_path / "other.json"
    other.write_text(json.dumps([{"foo": 1}]))
    with pytest.raises(ImportFormatError, match=r"first record \(foo\)"):
        load_explanations(other)
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(ImportFormatError, match=r"broken\.json: not valid JSON"):
        load_explanations(broken, "neuronpedia")


def test_the_config_pins_the_files_content(tmp_path: Path) -> None:
    path = tmp_path / "np.jsonl"
    path.write_text(json.dumps(np_record("3-res-jb", 7, "dates")) + "\n")
    digest = content_sha256(path)
    with pytest.raises(ConfigError, match=rf'explainer.sha256: .*sha256 = "{digest}"'):
        validate_options(ImportedConfig, {"path": str(path)}, where="run.toml: explainer")
    options = validate_options(
        ImportedConfig, {"path": str(path), "sha256": digest}, where="run.toml: explainer"
    )
    path.write_text(json.dumps(np_record("3-res-jb", 7, "weekdays")) + "\n")
    with pytest.raises(ConfigError, match="changed since it was pinned"):
        validate_options(ImportedConfig, options.model_dump(), where="run.toml: explainer")
    with pytest.raises(ConfigError, match="no such file"):
        validate_options(ImportedConfig, {"path": str(tmp_path / "x")}, where="run.toml: explainer")
    tree = write_delphi(tmp_path / "tree")
    before = content_sha256(tree)
    (tree / "layers.1.mlp_latent0.txt").write_text(json.dumps("code tokens"))
    assert content_sha256(tree) != before


def test_the_explainer_returns_imported_text_and_fails_a_latent_without_one(
    tmp_path: Path,
) -> None:
    root = write_delphi(tmp_path / "explanations")
    config = ImportedConfig(path=str(root), sha256=content_sha256(root))
    explainer = ImportedExplainer(config)
    assert explainer.prompt_version == f"imported:{content_sha256(root)[:16]}"

    async def go(index: int) -> Explanation:
        return await explainer.explain(LatentRef("neurons/mlp_neurons.1", index), [], None)

    found = asyncio.run(go(4))
    assert found.text == "names of animals" and found.meta["imported_source"] == "layers.1.mlp"
    with pytest.raises(NoImportedExplanation, match=r"^no imported explanation for latent 9 in "):
        asyncio.run(go(9))
    with pytest.raises(NoImportedExplanation, match=r"latent 5 .*skipped: .*JSON string"):
        asyncio.run(go(5))


def test_autointerp_run_scores_imported_explanations_into_the_store_and_export(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    model = save_tiny(tiny_model("gpt2"), tmp_path / "model")
    autointerp_llm_server.responder = scripted_answers("code words", "1")
    config = write_run_config(
        tmp_path / "run.toml", base_url=autointerp_llm_server.openai_base_url, model=model,
        name="base", run_dir=tmp_path / "run", layer=1, n_latents=3, top="max_failure_rate = 0.5",
    )  # fmt: skip
    assert (result := autointerp_cli("run", str(config))).exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        refs = [s.latent for s in store.latents(store.runs()[-1].id)]
    assert len(refs) == 3 and {r.source for r in refs} == {"neurons/mlp_neurons.1"}

    # a Neuronpedia export of layer 1: two of the run's latents, one bad record, one stranger
    texts = {refs[0].index: "imported label alpha", refs[1].index: "imported label beta"}
    export = tmp_path / "np.jsonl"
    rows = [np_record("1-neurons-mlp", i, t) for i, t in texts.items()]
    rows += [np_record("1-neurons-mlp", "bad", "x"), np_record("1-neurons-mlp", 999, "stranger")]
    export.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    imported = autointerp_cli("import", str(export), "--run-dir", str(tmp_path / "run"))
    assert imported.exit_code == 0, imported.stderr
    assert "imported 3 explanations" in imported.stdout and "skipped 1" in imported.stdout
    assert f"{export}:3: index: expected a latent index" in imported.stdout
    assert "2 of the run's 3 latents have one" in imported.stdout
    written = tmp_path / "run" / "imported.toml"
    assert written.is_file()

    autointerp_llm_server.requests.clear()
    assert (result := autointerp_cli("run", str(written))).exit_code == 0, result.stderr
    # every LLM call was a scorer's, quoting an imported explanation: none explained anything
    assert all(any(t in json.dumps(r.body) for t in texts.values())
               for r in autointerp_llm_server.requests)  # fmt: skip
    with Store.open(tmp_path / "run") as store:
        run = store.runs()[-1]
        explanations = {e.latent.index: e for e in store.explanations(run.id)}
        scores = {(s.latent.index, s.scorer, s.explainer) for s in store.scores(run.id)}
    assert {i: e.text for i, e in explanations.items()} == texts
    assert all(e.explainer == "imported" for e in explanations.values())
    prov = next(iter(explanations.values())).provenance
    assert prov["prompt_version"] == f"imported:{content_sha256(export)[:16]}"
    assert scores == {(i, "detection", "imported") for i in texts}

    out = autointerp_cli("export", str(tmp_path / "run"))
    assert out.exit_code == 0, out.stderr
    rows_out = [json.loads(x) for x in (tmp_path / "run/export/explanations.jsonl").open()]
    assert {r["explanation"] for r in rows_out if r["explainer"] == "imported"} == set(
        texts.values()
    )
    score_rows = [json.loads(x) for x in (tmp_path / "run/export/scores.jsonl").open()]
    assert {(r["latent"], r["scorer"]) for r in score_rows} == {(i, "detection") for i in texts}

    # the file changes: the pinned run refuses it, naming the new hash
    export.write_text(json.dumps(np_record("1-neurons-mlp", refs[0].index, "changed")) + "\n")
    again = autointerp_cli("run", str(written))
    assert again.exit_code == 1 and "changed since it was pinned" in again.stderr

    # every run latent, one without an explanation, run at once: a failure that names it
    rerun = autointerp_cli(
        "import", str(export), "--run-dir", str(tmp_path / "run"), "--latents", "run", "--run"
    )
    assert rerun.exit_code == 1 and "failed" in rerun.stderr  # 2 of 3 failed: over the rate
    with Store.open(tmp_path / "run") as store:
        run = store.runs()[-1]
        failures = store.failures(run.id, "explain")
    reasons = {ref.index: why for (ref, _), why in failures.items()}
    assert set(reasons) == {refs[1].index, refs[2].index}
    assert reasons[refs[1].index].startswith(f"no imported explanation for latent {refs[1].index}")


def test_import_errors_are_one_line(autointerp_cli, tmp_path: Path) -> None:
    result = autointerp_cli("import", str(tmp_path / "x.jsonl"), "--run-dir", str(tmp_path))
    assert result.exit_code == 1 and "is this a run directory?" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
