"""`autointerp compare` on real stores: a planted drop in scores is detected, a run compared
with a copy of itself is not; scorer agreement per run; one-line errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from autointerp_report.compare import compare_runs, sparkline
from autointerp_report.runs import RunInputError

from autointerp.store import Store
from autointerp.types import Explanation, LatentRef, Score


def make_run(
    path: Path,
    source: str,
    scores: Mapping[str, Sequence[float | None]],
    explainer: str = "default",
) -> Path:
    """A run directory whose store holds latents 0..n-1 of ``source`` with these scores."""
    n = max(len(v) for v in scores.values())
    with Store.open(path) as store:
        run = store.start_run(path.name, {"name": path.name})
        store.put_latents(
            run,
            source,
            [{"index": i, "frequency": 0.01, "max_activation": 1.0} for i in range(n)],
        )
        for i in range(n):
            store.put_explanation(run, Explanation(LatentRef(source, i), f"concept {i}", explainer))
        for scorer, values in scores.items():
            for i, v in enumerate(values):
                store.put_score(run, Score(LatentRef(source, i), scorer, explainer, v))
    return path


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    quality = rng.uniform(0.5, 0.95, size=60)
    sae = make_run(
        tmp_path / "sae-l6",
        "sae/resid_post.6",
        {
            "detection": quality + rng.normal(scale=0.03, size=60),
            "fuzzing": quality + rng.normal(scale=0.03, size=60),
            "embedding": 1 - quality,  # planted: perfectly anti-correlated with the others
        },
    )
    shifted = rng.uniform(0.5, 0.95, size=60) - 0.2
    neurons = make_run(
        tmp_path / "neurons-l6",
        "neurons/mlp_neurons.6",
        {"detection": shifted, "fuzzing": [*shifted[:-1], None], "embedding": shifted},
    )
    return sae, neurons


def test_a_planted_drop_is_detected(runs) -> None:
    sae, neurons = runs
    result = compare_runs([str(sae), str(neurons)], n_perm=1000)
    assert [r["label"] for r in result["runs"]] == [
        "sae-l6 (sae/resid_post.6)",
        "neurons-l6 (neurons/mlp_neurons.6)",
    ]
    first, second = result["scorers"]["detection"]["runs"]
    assert first["vs_first"] is None and first["n"] == 60
    vs = second["vs_first"]
    assert vs["median_diff"] == pytest.approx(second["median"] - first["median"])
    assert vs["median_diff"] < -0.1
    assert vs["p_permutation"] < 0.01 and vs["p_mann_whitney"] < 0.01
    assert second["ci"][1] < first["ci"][0]  # the intervals are apart
    lo, hi = vs["median_diff_ci"]
    assert lo < vs["median_diff"] < hi < 0
    assert first["ci"][0] <= first["median"] <= first["ci"][1]
    fuzz = result["scorers"]["fuzzing"]["runs"][1]
    assert fuzz["n"] == 59 and fuzz["missing"] == 1
    assert sum(first["histogram"]) == 60


def test_a_run_against_a_copy_of_itself_shows_no_difference(runs, tmp_path) -> None:
    sae, _ = runs
    copy = tmp_path / "copy" / "sae-l6"
    shutil.copytree(sae, copy)
    result = compare_runs([str(sae), str(copy)], n_perm=1000)
    for block in result["scorers"].values():
        a, b = block["runs"]
        assert b["vs_first"]["median_diff"] == 0
        assert b["vs_first"]["p_permutation"] > 0.5 and b["vs_first"]["p_mann_whitney"] > 0.5
        assert a["ci"] == b["ci"] and a["median"] == b["median"]
        lo, hi = b["vs_first"]["median_diff_ci"]
        assert lo <= 0 <= hi
    # two runs with one directory name are told apart by their path
    labels = [r["name"] for r in result["runs"]]
    assert labels == [str(sae), str(copy)]


def test_scorer_agreement_per_run(runs) -> None:
    sae, neurons = runs
    result = compare_runs([str(sae), str(neurons)], n_perm=100)
    agree = result["agreement"][0]
    assert agree["scorers"] == ["detection", "embedding", "fuzzing"]
    rho = np.array(agree["spearman"], dtype=float)
    d, e, f = 0, 1, 2
    assert rho[d, f] > 0.8 and rho[d, e] < -0.8 and rho[e, f] < -0.8
    assert agree["n"][d][f] == 60
    # the neuron run: detection and embedding are identical, fuzzing lacks one latent
    neuron_rho = np.array(result["agreement"][1]["spearman"], dtype=float)
    assert neuron_rho[d, e] == pytest.approx(1.0)
    assert result["agreement"][1]["n"][d][f] == 59


def test_cli_table_and_json(runs, autointerp_cli) -> None:
    sae, neurons = runs
    out = autointerp_cli("compare", str(sae), str(neurons), "--json", "--scorer", "detection")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert list(data["scorers"]) == ["detection"]
    assert data["agreement"][0]["scorers"] == ["detection", "embedding", "fuzzing"]
    assert data["scorers"]["detection"]["runs"][1]["vs_first"]["p_permutation"] < 0.01
    table = autointerp_cli("compare", str(sae), str(neurons))
    assert table.exit_code == 0, table.stderr
    for text in ("detection", "fuzzing", "sae-l6", "neurons-l6", "scorer agreement"):
        assert text in table.stdout


def test_errors_name_the_run_and_what_exists(runs, tmp_path, autointerp_cli) -> None:
    sae, neurons = runs
    with pytest.raises(RunInputError, match=r"nowhere: does not exist"):
        compare_runs([str(sae), str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunInputError, match=r"empty: has no results\.sqlite"):
        compare_runs([str(tmp_path / "empty")])
    with Store.open(tmp_path / "unscored") as store:
        store.start_run("u", {})
    with pytest.raises(RunInputError, match=r"unscored: run 1 has no scores yet"):
        compare_runs([str(sae), str(tmp_path / "unscored")])
    with pytest.raises(RunInputError, match=r"--scorer simulation: not in .*sae-l6 \(scorers "
                       r"there: detection, embedding, fuzzing\)"):  # fmt: skip
        compare_runs([str(sae), str(neurons)], scorers=["simulation"])
    with pytest.raises(RunInputError, match=r"no run 7; runs here: 1"):
        compare_runs([f"{sae}@7"])
    with pytest.raises(RunInputError, match=r"no scores of explainer 'other'; explainers here"):
        compare_runs([str(sae)], explainer="other")
    with pytest.raises(RunInputError, match=r"--confidence 95.0: expected a number between"):
        compare_runs([str(sae)], confidence=95.0)
    out = autointerp_cli("compare", str(sae), str(tmp_path / "unscored"))
    assert out.exit_code == 1
    assert "has no scores yet" in out.stderr and "Traceback" not in out.stderr


def test_run_ids_and_several_explainers(tmp_path) -> None:
    path = make_run(tmp_path / "r", "sae/resid_post.2", {"detection": [0.1, 0.2, 0.3]})
    with Store.open(path) as store:
        second = store.start_run("again", {})
        for i, v in enumerate([0.9, 0.8, 0.7]):
            ref = LatentRef("sae/resid_post.2", i)
            store.put_score(second, Score(ref, "detection", "default", v))
            store.put_score(second, Score(ref, "detection", "contrastive", v - 0.5))
    latest = compare_runs([str(path)])
    assert sorted(latest["scorers"]) == ["detection/contrastive", "detection/default"]
    one = compare_runs([str(path)], explainer="default")
    assert one["scorers"]["detection"]["runs"][0]["median"] == pytest.approx(0.8)
    older = compare_runs([f"{path}@1"])
    assert older["scorers"]["detection"]["runs"][0]["median"] == pytest.approx(0.2)


def test_sparkline() -> None:
    assert sparkline([0, 4, 8]) == " ▄█"
    assert sparkline([0, 0]) == "  "
    assert sparkline([1, 100])[0] == "▁"  # a non-empty bin never looks empty
