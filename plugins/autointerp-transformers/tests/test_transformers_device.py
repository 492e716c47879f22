"""Device and dtype options: "auto" by default (a GPU when torch sees one), checked when the run is
planned and again when the model loads, each time in one line naming the field."""

from __future__ import annotations

import pytest
import torch
from autointerp_transformers.adapter import TransformersAdapter
from autointerp_transformers.hooks import load_hf_model
from autointerp_transformers.plugin import TransformersConfig

from autointerp.adapter import AdapterError, resolve_device, resolve_dtype
from autointerp.config import load_config
from autointerp.errors import ConfigError
from autointerp.pipeline import plan_run
from autointerp.plugins import PluginManager
from autointerp.testing.adapters import random_ids, save_tiny, tiny_model

HAS_CUDA = torch.cuda.is_available()
#: a device no test machine has
ABSENT = "cuda:99"


def test_the_defaults_are_auto_and_a_dump_records_what_they_resolve_to() -> None:
    config = TransformersConfig()
    assert (config.device, config.dtype) == ("auto", "auto")
    dumped = config.model_dump()
    if HAS_CUDA:
        bf16 = torch.cuda.is_bf16_supported()
        assert (dumped["device"], dumped["dtype"]) == ("cuda", "bfloat16" if bf16 else "float32")
    else:  # what a CPU run recorded before "auto" existed: its caches keep their fingerprint
        assert (dumped["device"], dumped["dtype"]) == ("cpu", "float32")
    assert TransformersConfig(dtype="float16").model_dump()["dtype"] == "float16"


def test_auto_resolves_to_cuda_in_bfloat16_only_where_torch_sees_a_gpu() -> None:
    device = resolve_device("auto")
    assert device.type == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        (ABSENT, "expected"),
        ("gpu", "expected auto, cpu, cuda, cuda:N, mps or xpu"),
        ("cuda:x", "expected auto, cpu, cuda, cuda:N, mps or xpu"),
    ],
)
def test_a_device_this_machine_lacks_is_refused_at_plan_time(device: str, expected: str) -> None:
    config = load_config(None, [f"model.device={device}"])
    with pytest.raises(ConfigError) as caught:
        plan_run(config, PluginManager(), source="run.toml")
    (line,) = [ln for ln in str(caught.value).splitlines() if "model.device" in ln]
    assert line.startswith("run.toml: model.device: ") and expected in line
    assert repr(device) in line


@pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")
def test_cuda_on_a_machine_without_one_says_so() -> None:
    with pytest.raises(ConfigError, match=r"model.device: .*torch sees no CUDA device here"):
        PluginManager().get("model_adapter", "transformers").validate(
            {"device": "cuda"}, where="run.toml: model"
        )


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_it_is_not_available_says_so() -> None:
    with pytest.raises(ConfigError, match=r"model.device: .*MPS backend is not available"):
        PluginManager().get("model_adapter", "transformers").validate(
            {"device": "mps"}, where="run.toml: model"
        )


def test_loading_on_an_absent_device_fails_in_one_line_before_any_weight(tmp_path) -> None:
    # no model files at all: the device is checked first
    with pytest.raises(AdapterError) as caught:
        load_hf_model(tmp_path / "nothing-here", device=ABSENT)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("model.device: ") and f"(got '{ABSENT}')" in str(
        caught.value
    )
    unchecked = TransformersConfig.model_construct(model=str(tmp_path), device=ABSENT)
    with pytest.raises(AdapterError, match=r"model\.device: "):
        TransformersAdapter.from_config(unchecked)


def test_bfloat16_on_the_cpu_runs_and_captures_bfloat16(tmp_path) -> None:
    model_dir = save_tiny(tiny_model("gpt2"), tmp_path / "gpt2")
    config = TransformersConfig(model=str(model_dir), device="cpu", dtype="bfloat16")
    adapter = TransformersAdapter.from_config(config)
    assert adapter.dtype == torch.bfloat16 and adapter.device.type == "cpu"
    assert adapter.placement == "cpu bfloat16"
    ref = TransformersAdapter.from_config(TransformersConfig(model=str(model_dir), device="cpu"))
    assert ref.dtype == torch.float32  # dtype "auto" on the CPU
    ids = random_ids(2, 6)
    half = adapter.forward(ids, capture=["resid_post.1"]).captures["resid_post.1"]
    full = ref.forward(ids, capture=["resid_post.1"]).captures["resid_post.1"]
    assert half.dtype == torch.bfloat16
    assert torch.allclose(half.float(), full, atol=0.1, rtol=0.05)
