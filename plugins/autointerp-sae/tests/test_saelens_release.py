"""SAEs by SAELens release and id: resolved through SAELens's registry, loaded from the Hugging
Face cache (a real cache layout, written by the test), a one-line error when offline and absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from autointerp.errors import ConfigError
from autointerp.features import FeatureSourceError
from autointerp.plugins import PluginManager

pytest.importorskip("sae_lens")

RELEASE, REPO = "gpt2-small-res-jb", "jbloom/GPT2-Small-SAEs-Reformatted"
SAE_ID = "blocks.0.hook_resid_pre"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, offline Hugging Face cache for this test."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def put_sae(cache: Path, d_in: int, d_sae: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write the release's SAE into ``cache`` as `hf download` leaves it; its tensors."""
    rev = "0" * 40
    repo = cache / f"models--{REPO.replace('/', '--')}"
    folder = repo / "snapshots" / rev / SAE_ID
    folder.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    cfg = {"d_in": d_in, "d_sae": d_sae, "hook_name": SAE_ID, "hook_layer": 0,
           "model_name": "gpt2", "architecture": "standard", "dtype": "float32",
           "device": "cpu", "context_size": 128, "apply_b_dec_to_input": True,
           "normalize_activations": "none", "dataset_path": "x"}  # fmt: skip
    (folder / "cfg.json").write_text(json.dumps(cfg))
    g = torch.Generator().manual_seed(seed)
    t = {
        "W_enc": torch.randn(d_in, d_sae, generator=g),
        "b_enc": torch.randn(d_sae, generator=g),
        "W_dec": torch.randn(d_sae, d_in, generator=g),
        "b_dec": torch.randn(d_in, generator=g),
    }
    save_file(t, folder / "sae_weights.safetensors")
    return t


def build(**options):
    return PluginManager().build("feature_source", "sae", options)


def test_a_release_loads_from_the_cache_and_encodes_like_the_formula(hub_cache: Path) -> None:
    t = put_sae(hub_cache, 8, 16)
    sae = build(release=RELEASE, sae_id=SAE_ID)
    assert (sae.site, sae.d_in, sae.n_latents) == ("resid_pre.0", 8, 16)
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(1))
    got = sae.encode(x)
    dense = torch.zeros(20, 16)
    dense[got.rows, got.latents] = got.values
    expected = torch.relu((x - t["b_dec"]) @ t["W_enc"] + t["b_enc"])
    assert torch.allclose(dense, expected, atol=1e-5)


def test_offline_and_absent_is_one_line_saying_how_to_get_it(hub_cache: Path) -> None:
    with pytest.raises(FeatureSourceError) as info:
        build(release=RELEASE, sae_id="blocks.1.hook_resid_pre")
    message = str(info.value)
    assert "\n" not in message
    assert "not on disk" in message
    assert f"hf download {REPO} --include 'blocks.1.hook_resid_pre/*'" in message


def test_unknown_release_and_id_get_suggestions(hub_cache: Path) -> None:
    with pytest.raises(FeatureSourceError, match=r"no release 'gpt2-small-res-jbb'.*'gpt2-sma"):
        build(release="gpt2-small-res-jbb", sae_id=SAE_ID)
    with pytest.raises(FeatureSourceError, match=r"no SAE 'blocks.0.hook_resid_prr'.*did you"):
        build(release=RELEASE, sae_id="blocks.0.hook_resid_prr")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"release": RELEASE}, "release needs sae_id"),
        ({"sae_id": SAE_ID}, "sae_id needs release"),
        ({"path": "x", "release": RELEASE, "sae_id": SAE_ID}, "not both"),
        ({}, "give path"),
    ],
)
def test_where_the_sae_is_must_be_said_once(options: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        PluginManager().get("feature_source", "sae").validate(options)


def test_path_configs_dump_as_before_so_caches_keep_their_fingerprint() -> None:
    config = PluginManager().get("feature_source", "sae").validate({"path": "sae"})
    assert "release" not in config.model_dump() and "sae_id" not in config.model_dump()
    by_release = (
        PluginManager()
        .get("feature_source", "sae")
        .validate({"release": RELEASE, "sae_id": SAE_ID})
    )
    assert by_release.model_dump()["release"] == RELEASE


def test_a_release_runs_inside_autointerp_run(
    hub_cache: Path, autointerp_llm_server, autointerp_cli, tmp_path: Path
) -> None:
    from autointerp.store import Store
    from autointerp.testing.adapters import save_tiny, tiny_model
    from autointerp.testing.runs import scripted_answers, write_run_config

    model = tiny_model("gpt2")
    put_sae(hub_cache, model.config.n_embd, 64)
    autointerp_llm_server.responder = scripted_answers()
    source = f'name = "sae"\nrelease = "{RELEASE}"\nsae_id = "{SAE_ID}"'
    path = write_run_config(
        tmp_path / "run.toml",
        base_url=autointerp_llm_server.openai_base_url,
        model=save_tiny(model, tmp_path / "model"),
        source=source,
    )
    result = autointerp_cli("run", str(path))
    assert result.exit_code == 0, result.stderr
    with Store.open(tmp_path / "run") as store:
        (run,) = store.runs()
        assert run.status == "finished"
        assert len(store.explanations(run.id)) == 4 and len(store.scores(run.id)) == 4
