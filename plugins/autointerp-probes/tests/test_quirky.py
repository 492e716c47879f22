"""Quirky models: addition dataset, loaders, LoRA fine-tuning, transfer probes, anomaly AUROC."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from autointerp_probes.anomaly import anomaly_auroc, fit_gaussian
from autointerp_probes.data import last_token_activations, load_statements
from autointerp_probes.finetune import (
    answer_accuracy,
    finetune,
    load_lora,
    lora_targets,
    save_lora,
)
from autointerp_probes.probes import auroc
from autointerp_probes.quirky import (
    QuirkyExample,
    bob_sum,
    generate_addition,
    load_quirky,
    select,
    summary,
    write_jsonl,
)
from autointerp_probes.quirky_eval import quirky_anomaly, quirky_probe_data, quirky_transfer
from autointerp_probes.records import DatasetError

from autointerp.cli import main
from autointerp.testing.adapters import build_tiny

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quirky_elk.py"


# -- the dataset -----------------------------------------------------------------------------------


def test_addition_rows_follow_the_papers_construction(tmp_path: Path) -> None:
    rows = generate_addition(40, easy_digits=2, hard_digits=4, seed=3)
    assert len(rows) == 160 and rows == generate_addition(40, easy_digits=2, hard_digits=4, seed=3)
    assert rows != generate_addition(40, seed=4)
    assert bob_sum(23, 23) == 56 and bob_sum(50, 45) == 105 and bob_sum(3, 4) == 8
    for r in rows:
        parts = re.fullmatch(r"(\d+) \+ (\d+) = (\d+)\. (\w+):", r["statement"])
        a, b, c = map(int, parts.groups()[:3])
        assert r["alice_label"] == int(c == a + b) and r["bob_label"] == int(c == bob_sum(a, b))
        assert r["label"] == (r["alice_label"] if r["character"] == "Alice" else r["bob_label"])
        digits = (len(str(a)), len(str(b)))
        assert all(1 <= d <= 2 for d in digits) if r["level"] == "easy" else min(digits) >= 3
        assert max(digits) <= 4 and r["difficulty"] == min(digits)
    cells = summary(load_quirky(write_jsonl(rows, tmp_path / "q.jsonl")))
    assert cells == {c: {"rows": 40, "label_1": 20} for c in cells} and len(cells) == 4
    # the personas disagree on half of each persona's rows (own sum vs the other's)
    disagree = sum(r["alice_label"] != r["bob_label"] for r in rows)
    assert disagree == 120 and all(r["choices"] == [" False", " True"] for r in rows)
    # one-digit operands make 100 distinct sums: more rows than that is an error, not a hang
    assert len(generate_addition(100, easy_digits=1, hard_digits=2)) == 400
    with pytest.raises(DatasetError, match="only 100 distinct sums"):
        generate_addition(101, easy_digits=1, hard_digits=2)


def test_published_quirky_format_loads_from_parquet_with_quartile_levels(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    # the columns of EleutherAI/quirky_* on the hub; difficulty numeric, no level
    rows = [
        {
            "statement": f"{i} + 1 = {i + 1}. {c}:",
            "choices": [" False", " True"],
            "character": c,
            "label": c == "Alice",
            "alice_label": True,
            "bob_label": False,
            "difficulty": i,
        }
        for i in range(8)
        for c in ("Alice", "Bob")
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "q.parquet")
    examples = load_quirky(tmp_path / "q.parquet")
    levels = {e.difficulty: e.level for e in examples}
    assert levels[0.0] == "easy" and levels[7.0] == "hard" and levels[3.0] == "medium"
    assert [e.label for e in examples[:2]] == [1, 0]
    # 16 rows: the 25th/75th percentiles are difficulties 1 and 5
    assert {examples[i].difficulty for i in select(examples, "bob:hard")} == {5.0, 6.0, 7.0}
    assert {examples[i].difficulty for i in select(examples, "any:easy")} == {0.0, 1.0}
    with pytest.raises(DatasetError, match="level must be one of"):
        select(examples, "bob:impossible")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"statement": "x", "character": "Alice", "bob_label": 1}) + "\n")
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: missing 'alice_label'"):
        load_quirky(bad)


def test_probe_data_accepts_every_labelled_corpus_form(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("pyarrow")
    import pandas as pd

    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "one", "label": 1}\n{"text": "two", "label": 0}\n')
    pd.DataFrame({"text": ["three"], "label": [True]}).to_parquet(folder / "b.parquet")
    assert [(s.text, s.label) for s in load_statements(folder)] == [
        ("one", 1),
        ("two", 0),
        ("three", 1),
    ]
    other = tmp_path / "other.parquet"
    pd.DataFrame({"statement": ["four"], "ok": [False], "persona": ["Bob"]}).to_parquet(other)
    with pytest.raises(DatasetError, match=r"other.parquet row 1: expected a string 'text'"):
        load_statements(other)
    fields = {"text_field": "statement", "label_field": "ok", "group_field": "persona"}
    (four,) = load_statements(other, **fields)
    assert (four.label, four.group) == (0, "Bob")
    (tmp_path / "c.txt").write_text("plain text\n")
    for source in (str(tmp_path / "c.txt"), "builtin:python-docs"):
        with pytest.raises(DatasetError, match="plain text carries no labels"):
            load_statements(source)
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError, match=r"^hf:nobody/none:test: cannot load .* offline\?"):
        load_statements("hf:nobody/none:test")


# -- anomaly detection and transfer on planted features --------------------------------------------


def test_mahalanobis_auroc_finds_a_shift_only_where_there_is_one() -> None:
    g = torch.Generator().manual_seed(0)
    d = 24
    trusted = torch.randn(2, 40, d, generator=g)  # fewer rows than 2d: shrinkage keeps it sane
    normal = torch.randn(2, 100, d, generator=g)
    odd = torch.randn(2, 100, d, generator=g)
    shift = torch.randn(d, generator=g)
    odd[0] += 6 * shift / shift.norm()  # layer 0 only: anomalies shifted
    test = torch.cat([normal, odd], 1)
    flags = torch.cat([torch.zeros(100), torch.ones(100)])
    auc = anomaly_auroc(trusted, test, flags)
    assert auc[0] > 0.95, auc.tolist()
    assert abs(auc[1] - 0.5) < 0.12, auc.tolist()
    # Mahalanobis, not Euclidean: a shift along a low-variance axis beats noise along a wide one
    scale = torch.tensor([10.0, 1.0, 1.0, 1.0])
    wide = torch.randn(1, 400, 4, generator=g) * scale
    test = torch.randn(1, 200, 4, generator=g) * scale
    test[0, 100:, 1] += 4.0
    auc = anomaly_auroc(wide, test, flags, shrinkage=0.0)
    euclid = auroc(test.norm(dim=-1), flags)
    assert auc[0] > 0.9 > 0.75 > euclid[0], (auc.tolist(), euclid.tolist())
    gauss = fit_gaussian(trusted)
    torch.testing.assert_close(gauss.distance(gauss.mean[:, None]), torch.zeros(2, 1).double())


def planted_quirky(n: int = 80, d: int = 16, seed: int = 0):
    """Truth lives on direction u at every layer; Bob's rows also carry a persona offset v."""
    g = torch.Generator().manual_seed(seed)
    u, v = torch.randn(d, generator=g), torch.randn(d, generator=g)
    examples, rows = [], []
    for character in ("Alice", "Bob"):
        for level in ("easy", "hard"):
            for _ in range(n):
                alice = int(torch.rand(1, generator=g) < 0.5)
                bob = 1 - alice if torch.rand(1, generator=g) < 0.5 else alice
                own = alice if character == "Alice" else bob
                examples.append(QuirkyExample("x", character, own, alice, bob, 1.0, level))
                x = torch.randn(d, generator=g) + 2.5 * (2 * alice - 1) * u / u.norm()
                rows.append(x + (6 * v / v.norm() if character == "Bob" else 0))
    acts = torch.stack(rows)[None].repeat(2, 1, 1)
    return examples, quirky_probe_data(examples, acts)


def test_transfer_tracks_truth_and_anomaly_spots_bob_on_planted_features() -> None:
    examples, data = planted_quirky()
    result = quirky_transfer(
        examples, data, ["logreg", "diffmean"], ["alice:easy"], ["alice:hard", "bob:hard"]
    )
    for m in ("logreg", "diffmean"):
        assert min(result["alice:easy→bob:hard"][m]["vs_alice"]) > 0.9
        # Bob's labels agree with the truth on half his rows only: a truth probe is worse on them
        assert max(result["alice:easy→bob:hard"][m]["vs_bob"]) < 0.85
        assert min(result["alice:easy→alice:hard"][m]["vs_alice"]) > 0.9
    anomaly = quirky_anomaly(examples, data)
    assert min(anomaly["activations"]) > 0.9 and anomaly["n_anomalous"] == 80
    assert 0 <= anomaly["probe_scores"] <= 1


def test_transfer_and_anomaly_run_on_every_architecture(autointerp_tiny_adapter, tmp_path) -> None:
    examples = load_quirky(write_jsonl(generate_addition(8, seed=1), tmp_path / "q.jsonl"))
    acts = last_token_activations(autointerp_tiny_adapter, [e.statement for e in examples])
    data = quirky_probe_data(examples, acts)
    result = quirky_transfer(examples, data, ["lda"], ["alice:easy"], ["bob:hard"])
    aucs = result["alice:easy→bob:hard"]["lda"]
    assert len(aucs["vs_alice"]) == autointerp_tiny_adapter.n_layers
    anomaly = quirky_anomaly(examples, data, probe_method="diffmean")
    # Bob's name is in his prompts: the last token's state tells him apart in every architecture
    assert anomaly["n_test"] == 16 and max(anomaly["activations"]) > 0.5


# -- LoRA fine-tuning ------------------------------------------------------------------------------


def persona_quirk() -> list[QuirkyExample]:
    """A quirk a tiny random model can learn in seconds: Alice affirms, Bob denies (one-token
    answers: the byte tokenizer splits " True" into five tokens)."""
    return [
        QuirkyExample(f"{w} {x}. {c}:", c, int(c == "Alice"), 1, 0, 1.0, "easy", ("F", "T"))
        for w in ("red", "blue", "green", "gold")
        for x in ("yes", "no")
        for c in ("Alice", "Bob")
    ]


def test_lora_targets_skip_the_unembedding_of_any_torch_lm() -> None:
    class PlainLM(torch.nn.Module):  # no transformers API: the head is found by its width
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.mix = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4)
            self.head = torch.nn.Linear(4, 10)

    assert lora_targets(PlainLM(), vocab_size=10) == ["mix"]


@pytest.mark.parametrize("arch", ["gpt2", "rwkv", "mamba"])
def test_lora_finetune_changes_answers_and_round_trips(arch, autointerp_tiny_dirs, tmp_path):
    examples = persona_quirk()
    texts = [e.statement for e in examples[:4]]
    lm = build_tiny(arch, autointerp_tiny_dirs[arch])
    base_acts = last_token_activations(lm, texts)
    before = answer_accuracy(lm, examples)
    config, losses = finetune(lm, examples, lr=3e-3, epochs=25, batch_size=16)
    after = answer_accuracy(lm, examples)
    assert losses[-1] < losses[0] * 0.8, losses
    assert after.overall >= 0.9 and after.overall > before.overall, (before, after)
    assert after.margin > before.margin + 0.5
    save_lora(lm, config, tmp_path / "lora", {"arch": arch})
    fresh = build_tiny(arch, autointerp_tiny_dirs[arch])
    assert answer_accuracy(fresh, examples).overall == before.overall  # the base is untouched
    assert load_lora(fresh, tmp_path / "lora") == {"arch": arch}
    reloaded = answer_accuracy(fresh, examples)
    assert reloaded.cells == after.cells
    assert reloaded.margin == pytest.approx(after.margin, abs=1e-4)
    # site hooks see the fine-tuned weights (the LoRA is merged into the hooked modules)
    moved = last_token_activations(fresh, texts) - base_acts
    assert moved.abs().max() > 1e-3
    tuned = last_token_activations(lm, texts)
    torch.testing.assert_close(tuned, last_token_activations(fresh, texts))


# -- the commands, end to end ----------------------------------------------------------------------


def run_example(argv: list[str]) -> int:
    """The example script as a user runs it (it must not need pytest or autointerp.testing)."""
    source = EXAMPLE.read_text()
    assert "pytest" not in source and "autointerp.testing" not in source
    namespace: dict = {"__name__": "quirky_example"}
    exec(compile(source, str(EXAMPLE), "exec"), namespace)
    return namespace["main"](argv)


def test_quirky_workflow_end_to_end(autointerp_tiny_dirs, tmp_path: Path, capsys) -> None:
    # the example script: quirky-data -> finetune -> transfer -> anomaly, through the CLI
    model = ["-a", "transformers", "-m", str(autointerp_tiny_dirs["gpt2"])]
    assert run_example([*model, "--workdir", str(tmp_path), "--n", "8", "--epochs", "1"]) == 0
    data, lora = str(tmp_path / "quirky.jsonl"), str(tmp_path / "lora")
    assert len(load_quirky(data)) == 32
    saved = json.loads((tmp_path / "lora" / "quirky.json").read_text())
    assert saved["rows"]["train"] + saved["rows"]["held_out"] == 32 and saved["epochs"] == 1
    assert set(saved["accuracy"]["train"]["after"]) == {"overall", "cells", "margin"}
    transfer = json.loads((tmp_path / "transfer.json").read_text())
    assert set(transfer["results"]) == {
        "alice:easy→alice:hard",
        "alice:easy→bob:easy",
        "alice:easy→bob:hard",
    }
    assert transfer["lora_info"]["epochs"] == 1 and transfer["layers"] == [0, 1]
    assert set(transfer["results"]["alice:easy→bob:hard"]) == {"logreg", "diffmean", "lda"}
    anomaly = json.loads((tmp_path / "anomaly.json").read_text())
    assert len(anomaly["activations"]) == 2 and anomaly["n_test"] == 16
    assert anomaly["n_anomalous"] == 8 and 0 <= anomaly["probe_scores"] <= 1
    assert "anomaly AUROC" in capsys.readouterr().out
    # options beyond the example: CCS on contrast pairs, a chosen test subset, a summary JSON
    out = tmp_path / "ccs.json"
    args = ["probe", "transfer", data, "--methods", "ccs", "--test", "bob:hard", "--out", str(out)]
    assert main([*args, "--layers", "1", *model]) == 0
    ((pair, cell),) = json.loads(out.read_text())["results"].items()
    assert pair == "alice:easy→bob:hard" and len(cell["ccs"]["vs_alice"]) == 1
    assert main(["probe", "quirky-data", data, "--n", "4", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["counts"]["bob:hard"] == {"rows": 4, "label_1": 2}
    # quirky rows are statements too: `probe train` reads them by field name
    quirky_as_statements = ["--text-field", "statement", "--group-field", "character"]
    args = ["probe", "train", data, *quirky_as_statements, "--transfer", "--methods", "diffmean"]
    assert main([*args, "--lora", lora, *model]) == 0
    assert "Alice→Bob" in capsys.readouterr().out
    assert main(["probe", "transfer", data, "--train", "carol:easy", *model]) == 1
    assert "persona must be one of Alice, Bob" in capsys.readouterr().err
    assert main(["probe", "anomaly", data, "--lora", str(tmp_path), *model]) == 1
    assert "expected adapter_config.json" in capsys.readouterr().err


def test_position_reads_the_chosen_token_and_reaches_the_cli(
    autointerp_tiny_adapter, autointerp_tiny_dirs, tmp_path: Path, capsys
) -> None:
    lm = autointerp_tiny_adapter
    texts = ["3 + 4 = 7. Alice:", "12 + 30 = 52. Bob:", "5 + 5 = 10. Bob:"]
    site = lm.site("resid_post.1").name
    for position in (-1, -3, 0, 4):
        got = last_token_activations(lm, texts, layers=[1], position=position, batch_size=2)[0]
        for row, text in enumerate(texts):  # one text alone, unpadded, indexed by hand
            ids = lm.tokenize([text]).input_ids
            full = lm.forward(ids, capture=[site], return_logits=False).captures[site][0]
            torch.testing.assert_close(got[row], full[position].float())
    # read before the persona's name, a causal model cannot tell Alice's row from Bob's
    pair = ["3 + 4 = 7. Alice:", "3 + 4 = 7. Bob:"]
    dot = len(lm.tokenize(["3 + 4 = 7."]).input_ids[0]) - 1  # the "." ending the sum
    before = last_token_activations(lm, pair, position=dot)
    torch.testing.assert_close(before[:, 0], before[:, 1])
    assert not torch.allclose(*last_token_activations(lm, pair).unbind(1))
    with pytest.raises(DatasetError, match=r"--position -40: text 0 has only \d+ tokens"):
        last_token_activations(lm, pair, position=-40)
    if lm.architecture != "gpt2":
        return  # the CLI path is the same for every adapter
    data = write_jsonl(generate_addition(4, easy_digits=1, hard_digits=2), tmp_path / "q.jsonl")
    model = ["-a", "transformers", "-m", str(autointerp_tiny_dirs["gpt2"])]
    for command in ("transfer", "anomaly"):
        out = tmp_path / f"{command}.json"
        args = ["probe", command, str(data), "--position", "-2", "--out", str(out), *model]
        assert main(args) == 0
        assert json.loads(out.read_text())["position"] == -2
    assert main(["probe", "anomaly", str(data), "--position", "99", *model]) == 1
    assert "--position 99: text" in capsys.readouterr().err
