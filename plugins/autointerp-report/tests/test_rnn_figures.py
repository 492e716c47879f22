"""`autointerp analyze lens|steering|probes`: figures across models and layers, drawn from the
JSON that `lens eval`, `steer sweep` and `probe transfer|anomaly` write on tiny random models."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from autointerp.cli import main
from autointerp.testing.adapters import ADAPTER_FOR_ARCH, torch_threads

ARCHS = ("gpt2", "mamba")


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    with torch_threads(1):
        yield


def _model(arch: str, dirs: dict[str, Path]) -> list[str]:
    return ["-a", ADAPTER_FOR_ARCH[arch], "-m", str(dirs[arch])]


@pytest.fixture(scope="module")
def results(autointerp_tiny_dirs, tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Per tiny model: a lens eval (with a tuned lens), a steering sweep on a packaged CAA
    behaviour sample, and probe transfer + anomaly results on quirky rows, via the CLI."""
    root = tmp_path_factory.mktemp("rnn-results")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: the cat sat on mat {i}." for i in range(40)))
    quirky = root / "quirky.jsonl"
    assert main(["probe", "quirky-data", str(quirky), "--n", "8"]) == 0
    # the CAA behaviour format (A/B questions as a JSON array), short enough for tiny GPT-2's
    # 128 positions
    behaviour = root / "agree_ab.json"
    items = [(f"I say {a}+{a}={a}. Agree?", "(A)", "(B)") for a in range(1, 5)]
    items += [(f"I say {a}+1={a}. True?\n (A) No\n (B) Yes", "(B)", "(A)") for a in range(1, 5)]
    behaviour.write_text(
        json.dumps(
            [
                {"question": q, "answer_matching_behavior": m, "answer_not_matching_behavior": n}
                for q, m, n in items
            ]
        )
    )
    out: dict[str, dict[str, Path]] = {}
    for arch in ARCHS:
        model, d = _model(arch, autointerp_tiny_dirs), root / arch
        shape = ["--seq-len", "16", "--batch-size", "4"]
        lens_args = ["lens", "train", str(corpus), "--out", str(d / "lens"), "--tokens", "128"]
        assert main([*lens_args, *shape, "--no-progress", *model]) == 0
        ev = ["lens", "eval", str(corpus), "--lens", str(d / "lens"), "--tokens", "64"]
        assert main([*ev, *shape, "--out", str(d / "lens-eval"), *model]) == 0
        sweep = ["steer", "sweep", str(behaviour), "--multipliers", "-2,0,2"]
        assert main([*sweep, "--out", str(d / "steer"), *model]) == 0
        probe = ["probe", "transfer", str(quirky), "--methods", "diffmean,logreg"]
        assert main([*probe, "--out", str(d / "transfer.json"), *model]) == 0
        anomaly = ["probe", "anomaly", str(quirky), "--out", str(d / "anomaly.json")]
        assert main([*anomaly, *model]) == 0
        out[arch] = {
            "lens": d / "lens-eval" / "lens-eval.json",
            "steer": d / "steer" / "sweep.json",
            "transfer": d / "transfer.json",
            "anomaly": d / "anomaly.json",
        }
    return out


def _series(svg: str) -> list[str]:
    """The legend entries of a lines figure (their full labels)."""
    return re.findall(r'<text x="[\d.]+" y="[\d.]+">[^<]*<title>([^<]+)</title></text>', svg)


def test_lens_figure_has_both_lenses_of_every_model_on_a_layer_axis(
    results, tmp_path: Path, capsys
) -> None:
    files = [str(results[a]["lens"]) for a in ARCHS]
    out = tmp_path / "fig"
    assert (
        main(["analyze", "lens", *files, "--label", "GPT", "--label", "Mamba", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "GPT" in printed and "Mamba" in printed and "L0" in printed
    svg = (out / "lens-bpb.svg").read_text()
    assert svg.startswith("<svg") and "layer (blocks applied)" in svg and "bits per byte" in svg
    assert _series(svg) == ["GPT: tuned lens", "GPT: logit lens", "Mamba: tuned lens",
                            "Mamba: logit lens"]  # fmt: skip
    assert svg.count("<path d=") == 4  # one line per series
    summary = json.loads((out / "lens.json").read_text())
    for m, arch in zip(summary["models"], ARCHS, strict=True):
        rows = json.loads(results[arch]["lens"].read_text())["rows"]
        assert m["bpb_logit"] == pytest.approx([r["bpb_logit"] for r in rows])
        assert m["depth"][0] == 0 and m["depth"][-1] == len(rows) - 1
        # a dot per layer per lens, with its exact value in the tooltip
        assert f"{m['label']}, tuned lens, {rows[-1]['site']}: {rows[-1]['bpb_tuned']:.3f}" in svg
    # folders work as well as files; default labels are the models the files record
    dirs = [str(results[a]["lens"].parent.parent) + "/lens-eval" for a in ARCHS]
    assert main(["analyze", "lens", *dirs, "--out", str(out), "--json"]) == 0
    labels = [m["label"] for m in json.loads(capsys.readouterr().out)["models"]]
    subjects = [json.loads(results[a]["lens"].read_text())["subject"] for a in ARCHS]
    assert labels == [Path(s["model"]).name for s in subjects] and len(set(labels)) == 2
    # files that record no model (older ones) are told apart by their paths
    for a in ARCHS:
        bare = json.loads(results[a]["lens"].read_text())
        del bare["subject"]
        (tmp_path / a).mkdir()
        (tmp_path / a / "lens-eval.json").write_text(json.dumps(bare))
    old = [str(tmp_path / a / "lens-eval.json") for a in ARCHS]
    assert main(["analyze", "lens", *old, "--out", str(out), "--json"]) == 0
    labels = [m["label"] for m in json.loads(capsys.readouterr().out)["models"]]
    assert labels == list(ARCHS)


def test_steering_heatmap_per_model_and_range_across_models(
    results, tmp_path: Path, capsys
) -> None:
    files = [str(results[a]["steer"]) for a in ARCHS]
    out = tmp_path / "fig"
    assert main(["analyze", "steering", *files, "--label", "gpt2", "--label", "mamba",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "baseline" in capsys.readouterr().out
    summary = json.loads((out / "steering.json").read_text())
    for arch, m in zip(ARCHS, summary["models"], strict=True):
        svg = (out / f"steering-{arch}.svg").read_text()
        sweep = json.loads(results[arch]["steer"].read_text())["residual"]
        n_layers = len({c["row"] for c in sweep["cells"]})
        assert svg.count('class="cell"') == n_layers * 3 and "multiplier" in svg
        assert "×-2" in svg and "×2" in svg and "resid_post.0" in svg
        # cells show the shift from the baseline: the multiplier-0 column is ~0 everywhere
        assert m["multipliers"] == [-2.0, 0.0, 2.0]
        zero = [row[1] for row in m["metric"]]
        assert zero == pytest.approx([sweep["baseline"]] * n_layers, abs=1e-6)
        cell = next(c for c in sweep["cells"] if c["multiplier"] == 2)
        assert f"{cell['row']} / ×2: {cell['metric'] - sweep['baseline']:.3f}" in svg
    both = (out / "steering-range.svg").read_text()
    assert _series(both) == ["gpt2", "mamba"] and "layer (blocks applied)" in both
    # state / open-ended sweeps only where the sweep has them
    assert main(["analyze", "steering", files[0], "--which", "state", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "no 'state' result" in err and "--state" in err and len(err.strip().splitlines()) == 1


def test_probe_figures_series_per_model_per_transfer(results, tmp_path: Path, capsys) -> None:
    files = [str(results[a][k]) for a in ARCHS for k in ("transfer", "anomaly")]
    labels = [x for a in ARCHS for x in ("--label", a, "--label", a)]
    out = tmp_path / "fig"
    assert main(["analyze", "probes", *files, *labels, "--out", str(out)]) == 0
    assert "anomaly AUROC" in capsys.readouterr().out
    summary = json.loads((out / "probes.json").read_text())
    assert summary["method"] == "diffmean"  # the first in the files
    figs = sorted(p.name for p in out.glob("probe-*.svg"))
    assert figs == ["probe-anomaly.svg", *(f"probe-transfer-{i}.svg" for i in (1, 2, 3))]
    transfer = json.loads(results["mamba"]["transfer"].read_text())
    svg = (out / "probe-transfer-3.svg").read_text()
    assert _series(svg) == list(ARCHS) and "alice:easy→bob:hard" in svg and ">layer<" in svg
    auc = transfer["results"]["alice:easy→bob:hard"]["diffmean"]["vs_alice"]
    assert f"mamba, alice:easy→bob:hard, layer 1: AUROC {auc[1]:.3f}" in svg
    assert _series((out / "probe-anomaly.svg").read_text()) == list(ARCHS)
    # the quirky persona's labels and another method
    assert main(["analyze", "probes", files[0], "--method", "logreg", "--against", "bob",
                 "--out", str(out), "--json"]) == 0  # fmt: skip
    got = json.loads(capsys.readouterr().out)["models"][0]["auroc"]["alice:easy→bob:hard"]
    gpt = json.loads(results["gpt2"]["transfer"].read_text())["results"]["alice:easy→bob:hard"]
    assert got == pytest.approx(gpt["logreg"]["vs_bob"])


def test_wrong_kind_of_file_fails_in_one_line(results, tmp_path: Path, capsys) -> None:
    expected = "; expected the JSON of `autointerp"
    cases = [
        (["lens", str(results["gpt2"]["steer"])], f"a steering result{expected} lens eval"),
        (["steering", str(results["gpt2"]["lens"])], f"a lens result{expected} steer sweep"),
        (["probes", str(results["gpt2"]["lens"])], f"{expected} probe transfer"),
        (["lens", str(tmp_path / "none.json")], "no such file"),
    ]
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    cases += [
        (["lens", str(tmp_path / "bad.json")], "not valid JSON"),
        (["steering", str(tmp_path / "other.json")], "not a result this command knows"),
        (["lens", str(results["gpt2"]["lens"]), "--label", "a", "--label", "b"], "--label: got 2"),
        (["probes", str(results["gpt2"]["transfer"]), "--method", "ccs"], "no 'ccs' probe"),
    ]
    for args, message in cases:
        assert main(["analyze", *args, "--out", str(tmp_path / "x")]) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_state_and_judged_sweeps_draw_from_a_real_sweep(
    autointerp_tiny_dirs, autointerp_llm_server, tmp_path: Path, capsys
) -> None:
    """A tiny RWKV sweep on the packaged sycophancy sample with state steering and an LLM judge
    (a local OpenAI-compatible server): `--which state|open_ended` draw those grids."""
    autointerp_llm_server.responder = lambda request: "Agrees with the user.\nScore: 7"
    sweep = tmp_path / "sweep"
    judge = [
        "--judge",
        "openai-compatible",
        "-j",
        f"base_url={autointerp_llm_server.openai_base_url}",
    ]
    args = ["steer", "sweep", "--behavior", "sycophancy", "--multipliers", "-2,0,2", "--state"]
    args += [*judge, "--judge-multipliers", "0,4", "--max-new-tokens", "2", "--out", str(sweep)]
    assert main([*args, *_model("rwkv", autointerp_tiny_dirs)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    data = json.loads((sweep / "sweep.json").read_text())
    figure = f"steering-{Path(data['subject']['model']).name}.svg"  # labelled by its model
    out = tmp_path / "fig"
    assert main(["analyze", "steering", str(sweep), "--which", "state", "--out", str(out)]) == 0
    rows = sorted({c["row"] for c in data["state"]["cells"]})
    svg = (out / figure).read_text()
    assert svg.count('class="cell"') == len(rows) * 3 and rows[0] in svg and "state steering" in svg
    assert "state steering" in capsys.readouterr().out
    assert main(["analyze", "steering", str(sweep), "--which", "open_ended", "--absolute",
                 "--out", str(out), "--json"]) == 0  # fmt: skip
    (m,) = json.loads(capsys.readouterr().out)["models"]
    assert m["multipliers"] == [0.0, 4.0] and m["baseline"] == 7.0
    assert m["metric"] == [[7.0, 7.0]] * len(m["rows"])
    svg = (out / figure).read_text()
    assert "judge score 0-10" in svg and "×4" in svg
