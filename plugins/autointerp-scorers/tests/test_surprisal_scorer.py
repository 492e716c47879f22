"""Surprisal on tiny GPT-2 models: the batched, padded losses equal one-sequence hand computations,
and a model trained to tie "cats" to meowing (and "dogs" to barking) scores the matching
explanation 1 and the opposite one 0."""

from __future__ import annotations

import asyncio
import random

import pytest

from autointerp.types import Example, Explanation, LatentRef

torch = pytest.importorskip("torch")
pytest.importorskip("autointerp_transformers")

from autointerp_transformers.adapter import TransformersAdapter  # noqa: E402

from autointerp.testing.adapters import tiny_model, tiny_tokenizer  # noqa: E402

MEOW = ["meow purr meow", "purr purr meow", "meow meow purr", "purr meow meow"]
WOOF = ["woof bark woof", "bark bark woof", "woof woof bark", "bark woof woof"]


def example(text: str, fires: bool) -> Example:
    words = text.split(" ")
    toks = tuple(w if i == 0 else " " + w for i, w in enumerate(words))
    return Example(
        tokens=tuple(range(len(toks))),
        str_tokens=toks,
        activations=tuple(1.0 if fires else 0.0 for _ in toks),
    )


@pytest.fixture(scope="module")
def trained() -> TransformersAdapter:
    """A tiny GPT-2 trained on "about cats: <meowing>", "about dogs: <barking>" and "about
    things: <either>"; a few hundred steps on CPU."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    model = tiny_model("gpt2", seed=0)
    rng = random.Random(0)
    texts = [f"about cats: {t}" for t in MEOW] + [f"about dogs: {t}" for t in WOOF]
    texts += [f"about things: {t}" for t in MEOW + WOOF]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        batch = rng.sample(texts, 8)
        enc = tokenizer(batch, return_tensors="pt", padding=True)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    return TransformersAdapter(model, tokenizer)


def test_batched_losses_equal_one_sequence_hand_computation() -> None:
    from autointerp_scorers.surprisal import continuation_losses

    adapter = TransformersAdapter(tiny_model("gpt2", seed=3), tiny_tokenizer())
    pairs = [("Hello: ", "a short one"), ("A much longer prefix: ", "and a longer text here")]
    losses = continuation_losses(adapter, pairs, batch_size=2)
    for (prefix, text), loss in zip(pairs, losses, strict=True):
        ids = adapter.tokenizer(prefix + text, return_tensors="pt")["input_ids"]
        logits = adapter.forward(ids).logits[0]
        n_prefix = len(adapter.tokenizer(prefix)["input_ids"])
        logprobs = torch.log_softmax(logits, -1)
        nll = [-logprobs[t - 1, ids[0, t]].item() for t in range(n_prefix, ids.shape[1])]
        assert loss == pytest.approx(sum(nll) / len(nll), rel=1e-4)


def run(scorer, text: str, adapter) -> object:
    explanation = Explanation(LatentRef("sae/resid_post.0", 1), text, "default")
    activating = [example(t, True) for t in MEOW]
    negatives = [example(t, False) for t in WOOF]
    return asyncio.run(scorer.score(explanation, activating, negatives, None, adapter=adapter))


def test_the_matching_explanation_lowers_the_loss_of_activating_examples(
    trained, build_scorer
) -> None:
    scorer = build_scorer(
        "surprisal", prefix="about {explanation}: ", baseline_prefix="about things: "
    )
    cats = run(scorer, "cats", trained)
    dogs = run(scorer, "dogs", trained)
    assert cats.value == 1.0 and dogs.value == 0.0
    assert cats.metrics["mean_loss_reduction_activating"] > 0
    assert cats.metrics["mean_loss_reduction_negatives"] < 0
    assert len(cats.predictions) == 8 and cats.n_failures == 0


def test_without_an_adapter_the_latent_fails(build_scorer) -> None:
    from autointerp_scorers.common import ScoringFailedError

    with pytest.raises(ScoringFailedError, match="needs a model adapter"):
        run(build_scorer("surprisal"), "cats", None)
    assert build_scorer("surprisal").needs == frozenset({"adapter"})
