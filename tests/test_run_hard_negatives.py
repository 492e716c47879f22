"""`autointerp run` with hard negatives: the run hands the model's token embeddings to example
building, and the stored "similar" negatives are silent windows holding a top token of the latent
or one of its embedding-space neighbours (checked against a dense recomputation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autointerp.adapter import ModelAdapter
from autointerp.cache import ActivationCache
from autointerp.config import load_config
from autointerp.errors import ConfigError
from autointerp.pipeline import SerialAdapter, _token_embeddings
from autointerp.store import Store
from autointerp.testing.adapters import build_tiny, save_tiny, tiny_model, torch_threads
from autointerp.testing.llm_server import ScriptedLLMServer
from autointerp.testing.runs import scripted_answers, write_run_config

LAYER, TOP_K, WINDOW, BATCH = 1, 8, 16, 4
SIMILAR_TOKENS, NEIGHBOURS = 5, 2  # the builder's default top tokens; neighbours asked for


def dense_truth(model_dir: Path, tokens: np.ndarray) -> np.ndarray:
    """Activations ``[n_tokens, n_neurons]`` of the top-k neurons source, recomputed: the model
    over the cached contexts in the cache's batches, each token's top-k positive neurons."""
    adapter = build_tiny("gpt2", model_dir)
    site = f"mlp_neurons.{LAYER}"
    parts = []
    with torch_threads(1):
        for start in range(0, len(tokens), BATCH):
            ids = torch.as_tensor(tokens[start : start + BATCH].astype(np.int64))
            x = adapter.forward(ids, capture=[site], return_logits=False).captures[site]
            parts.append(x.reshape(-1, x.shape[-1]))
    x = torch.cat(parts)
    values, idx = x.topk(TOP_K, dim=-1)
    dense = torch.zeros_like(x).scatter_(1, idx, values.clamp(min=0))
    return dense.half().float().numpy()  # the cache stores float16


def neighbours(embeddings: np.ndarray, ids: np.ndarray, k: int) -> set[int]:
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    sims = unit[ids] @ unit.T
    sims[np.arange(len(ids)), ids] = -np.inf
    return {int(i) for row in sims for i in np.argsort(-row)[:k]}


def test_similar_negatives_are_silent_and_hold_top_tokens_or_neighbours(
    autointerp_llm_server: ScriptedLLMServer, autointerp_cli, tmp_path: Path
) -> None:
    autointerp_llm_server.responder = scripted_answers()
    model = tiny_model("gpt2")
    model_dir = save_tiny(model, tmp_path / "model")
    path = write_run_config(
        tmp_path / "run.toml",
        base_url=autointerp_llm_server.openai_base_url,
        model=model_dir,
        layer=LAYER,
        top_k=TOP_K,
    )
    text = path.read_text(encoding="utf-8").replace("n_negatives = 4", "n_negatives = 8")
    # [latents] is the file's last table: these lines land in it
    path.write_text(
        text + f'negatives = "similar"\nsimilar_neighbours = {NEIGHBOURS}\n', encoding="utf-8"
    )
    result = autointerp_cli("run", str(path))
    assert result.exit_code == 0, result.stderr

    cache = ActivationCache(tmp_path / "run" / "cache" / f"mlp_neurons.{LAYER}")
    tokens = cache.tokens()
    stream = tokens.reshape(-1)
    dense = dense_truth(model_dir, tokens)
    embeddings = model.get_input_embeddings().weight.detach().numpy()
    n_similar = n_by_neighbour = 0
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert run.status == "finished"
        latents = [s.latent for s in store.latents(run.id)]
        assert len(latents) == 4
        for latent in latents:
            act = dense[:, latent.index]
            assert (act > 0).any()
            order = np.argsort(-act, kind="stable")[: int((act > 0).sum())]
            _, first = np.unique(stream[order], return_index=True)
            top = stream[order][np.sort(first)][:SIMILAR_TOKENS]
            allowed = {int(t) for t in top} | neighbours(embeddings, top, NEIGHBOURS)
            silent = act.reshape(-1, WINDOW).max(axis=1) == 0
            windows = {tuple(stream[w * WINDOW : (w + 1) * WINDOW]): w for w in range(len(silent))}
            negatives = store.examples(run.id, latent, kind="similar")
            for ex in negatives:
                w = windows[ex.tokens]  # a real window of the cached token stream
                assert silent[w], f"latent {latent.index}: 'similar' window {w} fires"
                assert not any(ex.activations)
                assert allowed & set(ex.tokens), f"latent {latent.index}: window {w}"
            n_similar += len(negatives)
            n_by_neighbour += sum(not set(top.tolist()) & set(ex.tokens) for ex in negatives)
    assert n_similar >= 4  # hard negatives were found, not only random top-ups
    assert n_by_neighbour >= 1  # some hold only an embedding neighbour: the embeddings arrived


def test_token_embeddings_are_read_once_without_a_copy_or_refused_in_one_line(
    tmp_path: Path,
) -> None:
    adapter = build_tiny("gpt2", save_tiny(tiny_model("gpt2"), tmp_path / "model"))
    emb = _token_embeddings(SerialAdapter(adapter))  # what scorers and stages hold
    weight = adapter.model.get_input_embeddings().weight
    assert emb.dtype == np.float32 and emb.shape == (adapter.vocab_size, adapter.d_model)
    assert np.shares_memory(emb, weight.detach().numpy())  # float32 on CPU: the weights, viewed
    # an adapter that cannot give embeddings (the contract's default) gets an actionable error
    adapter.input_embeddings = lambda: ModelAdapter.input_embeddings(adapter)
    with pytest.raises(ConfigError, match=r"latents.similar_neighbours = 0"):
        _token_embeddings(adapter)


def test_similar_neighbours_is_part_of_a_runs_identity_only_when_set() -> None:
    """Off (the default), the option is left out of the recorded config: runs recorded before it
    existed still resume."""
    assert "similar_neighbours" not in load_config().as_table()["latents"]
    table = load_config(overrides=["latents.similar_neighbours=3"]).as_table()
    assert table["latents"]["similar_neighbours"] == 3
