"""Probes through the adapter contract on every architecture, and `autointerp probe train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from autointerp_probes.data import DatasetError, last_token_activations, load_statements
from autointerp_probes.evaluate import ProbeData, evaluate, stratified_split

from autointerp.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "datasets"


def test_activations_are_padding_independent_on_every_architecture(autointerp_tiny_adapter) -> None:
    texts = ["short", "a much longer text than that", "mid length"]
    together = last_token_activations(autointerp_tiny_adapter, texts, batch_size=3)
    alone = torch.cat([last_token_activations(autointerp_tiny_adapter, [t]) for t in texts], dim=1)
    assert together.shape == (autointerp_tiny_adapter.n_layers, 3, autointerp_tiny_adapter.d_model)
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_probes_read_a_token_signal_on_every_architecture(autointerp_tiny_adapter) -> None:
    # the label is the last token: every layer's last-token activation separates it
    g = torch.Generator().manual_seed(0)
    words = ["sun", "moon", "tree", "rock", "river", "cloud"]
    labels = torch.randint(0, 2, (40,), generator=g)
    idx = torch.randint(0, len(words), (40, 3), generator=g)
    texts = [
        " ".join(words[j] for j in row) + (" Y" if y else " N")
        for row, y in zip(idx.tolist(), labels.tolist(), strict=True)
    ]
    data = ProbeData(last_token_activations(autointerp_tiny_adapter, texts), labels)
    pos = last_token_activations(autointerp_tiny_adapter, [t + " yes" for t in texts])
    data.pos, data.neg = (
        pos,
        last_token_activations(autointerp_tiny_adapter, [t + " no" for t in texts]),
    )
    train, test = stratified_split(labels, 0.4)
    result = evaluate(data, ["logreg", "diffmean", "lda", "ccs"], train, test)
    for m in ("logreg", "lda"):
        assert (result[m] > 0.95).all(), (
            f"{autointerp_tiny_adapter.architecture} {m}: {result[m].tolist()}"
        )
    # difference of means ignores the noise covariance: weaker, still well above chance
    assert (result["diffmean"] > 0.7).all(), result["diffmean"].tolist()
    assert ((result["ccs"] >= 0) & (result["ccs"] <= 1)).all()


def test_example_datasets_and_format_errors(tmp_path: Path) -> None:
    facts = load_statements(EXAMPLES / "true_false.jsonl")
    assert {s.group for s in facts} == {"geography", "arithmetic", "animals"}
    assert sum(s.label for s in facts) * 2 == len(facts)
    pairs = load_statements(EXAMPLES / "yes_no_pairs.jsonl")
    assert all(s.positive and s.negative for s in pairs)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "label": 2}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: 'label' must be 0 or 1"):
        load_statements(bad)


@pytest.mark.parametrize("arch", ["gpt2", "rwkv"])
def test_probe_command(arch, autointerp_tiny_dirs, tmp_path: Path, capsys) -> None:
    model = [
        "-a",
        {"gpt2": "transformers", "rwkv": "rwkv"}[arch],
        "-m",
        str(autointerp_tiny_dirs[arch]),
    ]
    data = str(EXAMPLES / "true_false.jsonl")
    out = tmp_path / "auroc.json"
    assert main(["probe", "train", data, "--out", str(out), *model]) == 0
    saved = json.loads(out.read_text())
    ((label, by_method),) = saved["results"].items()
    assert label.startswith("random split") and set(by_method) == {
        "logreg",
        "diffmean",
        "lda",
        "ccs",
    }
    assert all(len(v) == 2 for v in by_method.values())
    assert main(["probe", "train", data, "--transfer", "--methods", "diffmean", *model]) == 0
    assert "geography→animals" in capsys.readouterr().out
    assert (
        main(
            [
                "probe",
                "train",
                data,
                "--train-group",
                "geography",
                "--test-group",
                "arithmetic",
                "--methods",
                "lda",
                *model,
            ]
        )
        == 0
    )
    assert main(["probe", "train", data, "--methods", "svm", *model]) == 1
    assert "unknown ['svm']" in capsys.readouterr().err
