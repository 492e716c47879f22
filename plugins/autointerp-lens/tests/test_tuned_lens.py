"""Logit lens and tuned lens: exact at the last layer, trainable to near-zero KL where possible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from autointerp_lens.lens import LensError, TunedLens, evaluate, lens_sites, top_tokens
from autointerp_lens.train import train_tuned_lens

from autointerp.corpus import iter_texts, token_windows


def test_logit_lens_on_every_architecture(autointerp_tiny_adapter, helpers) -> None:
    windows = helpers.random_windows(256, 2, batch=2, seq=12)
    report = evaluate(autointerp_tiny_adapter, windows)
    assert report.sites == lens_sites(autointerp_tiny_adapter)
    assert report.kl_logit[-1] < 1e-5, "the last resid_post decodes to the model's own logits"
    assert abs(report.ce_logit[-1] - report.ce_model) < 1e-4
    assert all(kl >= -1e-6 for kl in report.kl_logit)
    assert report.bytes > 0 and report.rows()[0]["bpb_logit"] > 0
    tops = top_tokens(autointerp_tiny_adapter, "Hello world", k=3)
    assert set(tops) == set(report.sites) and all(len(v) == 3 for v in tops.values())


def test_untrained_tuned_lens_is_the_logit_lens(autointerp_tiny_adapter, helpers) -> None:
    windows = helpers.random_windows(256, 1, batch=2, seq=10)
    report = evaluate(
        autointerp_tiny_adapter, windows, TunedLens.for_adapter(autointerp_tiny_adapter)
    )
    assert report.kl_tuned == pytest.approx(report.kl_logit, abs=1e-6)


def test_training_beats_the_logit_lens_on_every_architecture(
    autointerp_tiny_adapter, helpers
) -> None:
    train = helpers.random_windows(256, 60, batch=4, seq=12, seed=1)
    result = train_tuned_lens(
        autointerp_tiny_adapter, train, max_tokens=10**9, lr=2e-3, progress=False
    )
    assert result.steps == 60 and sum(result.history[-5:]) < sum(result.history[:5])
    report = evaluate(
        autointerp_tiny_adapter,
        helpers.random_windows(256, 2, batch=4, seq=12, seed=2),
        result.lens,
    )
    early = slice(0, len(report.sites) - 1)
    assert sum(report.kl_tuned[early]) < sum(report.kl_logit[early])


def test_tuned_lens_reaches_near_zero_kl_where_the_logit_lens_cannot(helpers) -> None:
    lm = helpers.linear_stack(identity_like=False)
    train = helpers.random_windows(lm.vocab_size, 300, seed=3)
    result = train_tuned_lens(lm, train, max_tokens=10**9, lr=2e-2, progress=False)
    report = evaluate(lm, helpers.random_windows(lm.vocab_size, 4, seed=4), result.lens)
    for site, kl_logit, kl_tuned in zip(
        report.sites[:-1], report.kl_logit, report.kl_tuned, strict=False
    ):
        assert kl_logit > 0.3, f"{site}: the logit lens should be far off ({kl_logit:.3f})"
        assert kl_tuned < 0.02, f"{site}: the tuned lens should be near exact ({kl_tuned:.4f})"
    identity = helpers.linear_stack(identity_like=True)
    report = evaluate(identity, helpers.random_windows(identity.vocab_size, 2, seed=5))
    assert max(report.kl_logit) < 1e-6, "identity-like layers: the logit lens is already exact"


def test_save_load_and_model_check(autointerp_tiny_adapter, helpers, tmp_path: Path) -> None:
    lens = train_tuned_lens(
        autointerp_tiny_adapter,
        helpers.random_windows(256, 2, batch=2, seq=8),
        max_tokens=10**9,
        progress=False,
    ).lens
    back = TunedLens.load(lens.save(tmp_path / "lens"))
    config = json.loads((tmp_path / "lens" / "config.json").read_text())
    assert config["architecture"] == autointerp_tiny_adapter.architecture and config["steps"] == 2
    for k, v in lens.module.state_dict().items():
        assert torch.equal(back.module.state_dict()[k], v)
    other = helpers.linear_stack(identity_like=True)
    with pytest.raises(LensError, match="d_model"):
        evaluate(other, helpers.random_windows(other.vocab_size, 1), back)
    with pytest.raises(LensError, match="no tuned lens"):
        TunedLens.load(tmp_path / "nothing")


def test_checkpoints_resume_where_training_stopped(helpers, tmp_path: Path) -> None:
    lm = helpers.linear_stack(identity_like=False)
    data = helpers.random_windows(lm.vocab_size, 6, seed=6)
    per_batch = data[0].numel()
    whole = train_tuned_lens(lm, data, max_tokens=6 * per_batch, progress=False)
    ckpt = tmp_path / "ckpt"
    first = train_tuned_lens(
        lm, data, max_tokens=3 * per_batch, progress=False, checkpoint_dir=ckpt, checkpoint_every=1
    )
    assert first.steps == 3 and (ckpt / "tuned_lens.safetensors").is_file()
    resumed = train_tuned_lens(
        lm, data, max_tokens=6 * per_batch, progress=False, checkpoint_dir=ckpt, resume=True
    )
    assert resumed.steps == 6 and resumed.tokens == 6 * per_batch
    for k, v in whole.lens.module.state_dict().items():
        torch.testing.assert_close(resumed.lens.module.state_dict()[k], v)


def test_corpus_streams_txt_and_jsonl(autointerp_tiny_adapter, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first paragraph\nstill first\n\nsecond one\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "third text"}) + "\n")
    texts = list(iter_texts(tmp_path))
    assert texts == ["first paragraph\nstill first\n", "second one\n", "third text"]
    windows = list(
        token_windows(autointerp_tiny_adapter, texts * 5, seq_len=8, batch_size=2, texts_per_call=4)
    )
    assert windows and all(w.shape == (2, 8) for w in windows)


def test_logit_lens_agrees_with_a_direct_transformers_computation(
    autointerp_tiny_dirs, helpers
) -> None:
    """Reference numbers from transformers itself: GPT-2's hidden states through ln_f + lm_head."""
    from transformers import AutoModelForCausalLM

    lm = helpers.build("gpt2", autointerp_tiny_dirs["gpt2"])
    hf = AutoModelForCausalLM.from_pretrained(autointerp_tiny_dirs["gpt2"]).eval()
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(9))
    report = evaluate(lm, [ids])
    with torch.no_grad():
        out = hf(ids, output_hidden_states=True)
        final = torch.log_softmax(out.logits, -1)
        # hidden_states: embedding, block 0 .. block n-2, then the last block after ln_f
        resid = list(out.hidden_states[:-1])
        expected = []
        for h in resid:
            logp = torch.log_softmax(hf.lm_head(hf.transformer.ln_f(h)), -1)
            expected.append(float((final.exp() * (final - logp)).sum(-1).mean()))
    assert report.kl_logit[:-1] == pytest.approx(expected, rel=1e-4, abs=1e-6)
