"""CAA: the vector is the answer-token contrast, and adding it steers the A/B metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from autointerp_steering.caa import SteeringVectors, ab_metric, caa_vectors, sweep
from autointerp_steering.data import DatasetError, load_pairs, tokenize_pairs
from autointerp_steering.report import write_all


def test_caa_recovers_a_planted_direction_on_every_architecture(
    planted, direction, ab_pairs
) -> None:
    pairs = ab_pairs(12)
    vecs = caa_vectors(planted, pairs)
    assert sorted(vecs.vectors) == [f"resid_post.{i}" for i in range(planted.n_layers)]
    for site, v in vecs.vectors.items():
        cos = torch.nn.functional.cosine_similarity(v, direction, dim=0)
        assert cos >= 0.9, f"{planted.architecture} {site}: cosine {cos:.3f}"


def test_steering_moves_the_metric_the_right_way(planted, ab_pairs) -> None:
    pairs = ab_pairs(10, seed=1)
    vecs = caa_vectors(planted, pairs)
    result = sweep(planted, pairs, vecs, multipliers=[-3, 0, 3])
    assert result.grid.shape == (planted.n_layers, 3)
    for i, row in enumerate(result.rows):
        low, mid, high = result.grid[i].tolist()
        assert low < mid < high, f"{planted.architecture} {row}: {low:.3f} {mid:.3f} {high:.3f}"
    assert result.grid[:, 1].eq(result.baseline).all()


def test_metric_is_batch_independent(planted, ab_pairs) -> None:
    pairs = ab_pairs(7, seed=2)
    together = ab_metric(planted, pairs, batch_size=7)
    one_by_one = ab_metric(planted, pairs, batch_size=1)
    torch.testing.assert_close(together, one_by_one, atol=1e-5, rtol=1e-4)
    assert ((together > 0) & (together < 1)).all()


def test_pairs_share_a_context_and_split_at_the_answer(planted, ab_pairs) -> None:
    toks = tokenize_pairs(planted, ab_pairs(3))
    ids = planted.tokenize(["A", "B"]).input_ids[:, 0].tolist()
    for t in toks:
        assert (t.positive, t.negative) == tuple(ids)
        assert planted.tokenizer.decode(list(t.context)).endswith("Answer: (")
    with pytest.raises(DatasetError, match="do not start with different tokens"):
        from autointerp_steering.data import ContrastPair

        tokenize_pairs(planted, [ContrastPair("Q (", "A", "A")])


def test_jsonl_format_and_caa_aliases(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [
        {"prompt": "x (", "positive": "A", "negative": "B"},
        {"question": "y (", "answer_matching_behavior": "B", "answer_not_matching_behavior": "A"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    pairs = load_pairs(path)
    # a CAA question is placed in the plain template; a prompt is used as is
    assert [(p.prompt, p.positive) for p in pairs] == [("x (", "A"), ("y (\n\nAnswer: ", "B")]
    path.write_text('{"prompt": "x"}\n')
    with pytest.raises(DatasetError, match=r"pairs.jsonl:1: missing field 'positive'"):
        load_pairs(path)


def test_example_dataset_loads() -> None:
    here = Path(__file__).resolve().parents[1] / "examples" / "datasets"
    pairs = load_pairs(here / "sycophancy_ab.jsonl")
    assert len(pairs) >= 20 and all(p.positive != p.negative for p in pairs)


def test_vectors_round_trip_and_reports(planted, tmp_path: Path, ab_pairs) -> None:
    vecs = caa_vectors(planted, ab_pairs(4), layers=[0])
    back = SteeringVectors.load(vecs.save(tmp_path / "v.safetensors"))
    torch.testing.assert_close(back.vectors["resid_post.0"], vecs.vectors["resid_post.0"])
    assert back.meta["n_pairs"] == 4 and back.layers() == [0]
    result = sweep(planted, ab_pairs(4), vecs, multipliers=[-1, 0, 1])
    paths = write_all(result, tmp_path / "out")
    names = {p.name for p in paths}
    assert {"sweep.csv", "sweep.svg"} <= names
    csv = (tmp_path / "out" / "sweep.csv").read_text().splitlines()
    assert csv[0] == "row,-1,0,1" and csv[1].startswith("resid_post.0,")


def test_steering_at_the_last_position_only(planted, ab_pairs) -> None:
    from autointerp_steering.caa import add_steering

    pairs = ab_pairs(8, seed=5)  # contexts of several lengths
    vec = caa_vectors(planted, pairs, layers=[0]).vectors["resid_post.0"]
    iv = add_steering("resid_post.0", vec, 3.0, positions=-1)
    last_only = ab_metric(planted, pairs, [iv])
    one_by_one = torch.cat([ab_metric(planted, [p], [iv]) for p in pairs])
    torch.testing.assert_close(last_only, one_by_one, atol=1e-5, rtol=1e-4)
    assert (last_only > ab_metric(planted, pairs)).all()
