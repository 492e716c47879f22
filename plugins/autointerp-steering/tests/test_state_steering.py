"""State steering: the contrast taken on the recurrent state, added to a copy of the state."""

from __future__ import annotations

import copy

import pytest
import torch
from autointerp_steering.caa import ab_metric, add_steering, caa_vectors
from autointerp_steering.data import DatasetError
from autointerp_steering.generate import generate
from autointerp_steering.state import ab_metric_state, state_sweep, state_vectors, steer_state


def recurrent(planted):
    if not planted.recurrent:
        pytest.skip("state steering is for recurrent models")
    return planted


def test_state_vectors_have_the_state_sites_shapes(planted, ab_pairs) -> None:
    lm = recurrent(planted)
    vecs = state_vectors(lm, ab_pairs(6))
    assert set(vecs.vectors) == {s.name for s in lm.state_sites}
    for name, v in vecs.vectors.items():
        assert tuple(v.shape) == lm.site(name).shape
        assert v.abs().sum() > 0, f"{name}: answers A and B leave the same state"


def test_state_steering_changes_outputs_only_after_the_edit(planted, ab_pairs) -> None:
    lm = recurrent(planted)
    vecs = state_vectors(lm, ab_pairs(6)).vectors
    ids = lm.tokenize(["The quick brown fox jumps over the dog"]).input_ids
    cut = 5
    whole = lm.forward(ids)
    head = lm.forward(ids[:, :cut], return_state=True)
    kept = copy.deepcopy(head.state)
    edited = steer_state(head.state, vecs, 4.0)
    for name, value in kept.items():  # the caller's state is untouched
        assert torch.equal(head.state[name], value)
        assert edited[name] is not head.state[name]
    tail = lm.forward(ids[:, cut:], state=edited)
    same_tail = lm.forward(ids[:, cut:], state=steer_state(head.state, vecs, 0.0))
    torch.testing.assert_close(head.logits, whole.logits[:, :cut], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(same_tail.logits, whole.logits[:, cut:], atol=1e-4, rtol=1e-4)
    assert (tail.logits - whole.logits[:, cut:]).abs().max() > 1e-3


def test_unsteered_state_path_matches_the_padded_path(planted, ab_pairs) -> None:
    lm = recurrent(planted)
    pairs = ab_pairs(8, seed=3)
    vecs = state_vectors(lm, pairs)
    torch.testing.assert_close(
        ab_metric_state(lm, pairs, vecs, 0.0), ab_metric(lm, pairs), atol=1e-4, rtol=1e-4
    )


def test_state_sweep_and_combined_steering(planted, ab_pairs) -> None:
    lm = recurrent(planted)
    pairs = ab_pairs(6, seed=4)
    svecs = state_vectors(lm, pairs)
    result = state_sweep(lm, pairs, svecs, multipliers=[-2, 0, 2])
    assert result.grid.shape == (lm.n_layers, 3)
    assert not torch.allclose(result.grid[:, 0], result.grid[:, 2])
    rvec = caa_vectors(lm, pairs, layers=[0]).vectors["resid_post.0"]
    iv = add_steering("resid_post.0", rvec, 0.05)
    residual_only = ab_metric_state(lm, pairs, svecs, 0.0, interventions=[iv])
    torch.testing.assert_close(residual_only, ab_metric(lm, pairs, [iv]), atol=1e-4, rtol=1e-4)
    combined = ab_metric_state(lm, pairs, svecs, -4.0, interventions=[iv])
    assert not torch.allclose(combined, residual_only)


def test_transformers_refuse_state_steering(planted, ab_pairs) -> None:
    if planted.recurrent:
        pytest.skip("transformer only")
    with pytest.raises(DatasetError, match="needs a recurrent model"):
        state_vectors(planted, ab_pairs(2))


def test_steered_generation(planted, ab_pairs) -> None:
    pairs = ab_pairs(6)
    vec = caa_vectors(planted, pairs, layers=[0]).vectors["resid_post.0"]
    plain = generate(planted, ["Hello there"], max_new_tokens=6)
    again = generate(planted, ["Hello there"], max_new_tokens=6)
    steered = generate(
        planted,
        ["Hello there"],
        max_new_tokens=6,
        interventions=[add_steering("resid_post.0", vec, -8.0)],
    )
    assert plain == again and isinstance(plain[0], str)
    assert steered != plain
    if planted.recurrent:
        svecs = state_vectors(planted, pairs).vectors
        by_state = generate(
            planted, ["Hello there"], max_new_tokens=6, state_vectors=svecs, state_multiplier=-50.0
        )
        assert by_state != plain
