"""Alternative backends for the HF adapters: nnsight and TransformerLens.

A backend keeps the adapter's sites, validation, state handling and results, and replaces only
how one model call observes and edits the sites: instead of torch module hooks, the call runs
inside an nnsight trace (``backend="nnsight"``), or through a TransformerLens ``TransformerBridge``
with TransformerLens hook points (``backend="transformer_lens"``; the bridge wraps a copy of the
model, since bridging rewrites modules in place). Selecting a backend that cannot serve an
architecture raises :class:`~autointerp.adapter.UnsupportedModelError`.

Both stop a call that returns only captures right after the deepest captured site, as the hooks
backend does (``stops_early``): nnsight ends its trace there (``tracer.stop()``); under
TransformerLens the session's hook raises :class:`~autointerp_transformers.hooks.StopForward` from
its hook point, which unwinds the bridged model like a torch hook.
"""

from __future__ import annotations

import shutil
import warnings
from typing import TYPE_CHECKING, Any

from autointerp.adapter import UnsupportedModelError
from autointerp_transformers.hooks import StopForward

if TYPE_CHECKING:
    from torch import nn

    from autointerp_transformers.hooks import HFAdapter, HookSession

BACKENDS = ("hooks", "nnsight", "transformer_lens")
#: execution order of sites inside one layer (nnsight visits modules in forward order)
_ORDER = {
    "resid_pre": 0,
    "attn_out": 1,
    "mixer_out": 1,
    "mlp_neurons": 2,
    "mlp_out": 3,
    "resid_post": 4,
}


def wrap_backend(adapter: HFAdapter, backend: str) -> HFAdapter:
    """Serve ``adapter`` through ``backend``; "hooks" returns it unchanged."""
    if backend == "hooks":
        return adapter
    if backend == "nnsight":
        adapter.engine = NNsightEngine(adapter)
        adapter.backend = "nnsight"
        return adapter
    if backend == "transformer_lens":
        adapter.engine = TransformerLensEngine(adapter)
        adapter.backend = "transformer_lens"
        return adapter
    raise UnsupportedModelError(
        f"backend '{backend}' is not available for {adapter.architecture}; "
        f"choose one of: {', '.join(BACKENDS)}"
    )


class NNsightEngine:
    """Runs each model call in an nnsight trace, reading and replacing site values there."""

    stops_early = True

    def __init__(self, adapter: HFAdapter) -> None:
        try:
            from nnsight import NNsight
        except ImportError as exc:
            raise UnsupportedModelError(
                f"backend 'nnsight' needs the nnsight package ({exc}): pip install nnsight"
            ) from None
        self.adapter = adapter
        #: the torch module the calls run
        self.model: nn.Module = adapter.model
        with warnings.catch_warnings():  # RWKV's child named `output` is renamed: expected
            warnings.simplefilter("ignore", UserWarning)
            self.root = NNsight(adapter.model)

    def _envoy(self, path: str) -> Any:
        env = self.root
        for part in path.split(".") if path else ():
            env = env[int(part)] if part.isdigit() else getattr(env, part)
        return env

    def invoke(self, fn: Any, session: HookSession, kwargs: dict[str, Any]) -> Any:
        # the whole LM is traced even when ``fn`` is its base model: the caller reads only the
        # fields the base model's output also has (cache, state)
        adapter = self.adapter
        plan = sorted(
            session.hooks.items(),
            key=lambda item: (int(item[0].rsplit(".", 1)[1]), _ORDER[item[0].rsplit(".", 1)[0]]),
        )
        stop = session.stop_when_captured
        if stop:
            # the trace itself ends after the deepest capture: a hook raising inside it would be
            # an error of the trace, and edits at later sites change nothing that is returned
            session.stop_when_captured = False
            deepest = max(i for i, (name, _) in enumerate(plan) if name in session.capture)
            plan = plan[: deepest + 1]
        steps = [
            (hook, self._envoy(adapter.sites[name].module_path), adapter.points[name].where)
            for name, hook in plan
        ]
        with self.root.trace(**kwargs) as tracer:
            for hook, env, where in steps:
                if where == "input":
                    env.input = hook(env.input)
                else:
                    value = env.output
                    if isinstance(value, tuple):
                        env.output = (hook(value[0]), *value[1:])
                    else:
                        env.output = hook(value)
            if stop:
                tracer.stop()
            else:
                result = self.root.output.save()
        if stop:
            raise StopForward
        return result


#: adapter site kind -> TransformerLens bridge hook (per architecture family where they differ)
_TL_HOOKS = {
    "resid_pre": "hook_resid_pre",
    "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out",
    "mlp_out": "hook_mlp_out",
    "mlp_neurons": "mlp.out.hook_in",
    "mixer_out": "hook_mixer_out",
}
_TL_HOOKS_RWKV = {**_TL_HOOKS, "attn_out": "hook_time_mix_out", "mlp_out": "hook_channel_mix_out"}


class TransformerLensEngine:
    """Runs each model call through a TransformerLens ``TransformerBridge`` over a model copy."""

    stops_early = True

    def __init__(self, adapter: HFAdapter) -> None:
        try:
            from transformer_lens.model_bridge import TransformerBridge
        except ImportError as exc:
            raise UnsupportedModelError(
                f"backend 'transformer_lens' needs transformer-lens ({exc}): "
                "pip install transformer-lens"
            ) from None
        import copy

        model = copy.deepcopy(adapter.model)
        if not getattr(model.config, "architectures", None):
            model.config.architectures = [type(model).__name__]
        name = getattr(model.config, "_name_or_path", "") or model.config.model_type
        tokenizer, scratch = _reloadable_tokenizer(adapter.tokenizer)
        try:
            self.bridge = TransformerBridge.boot_transformers(
                name,
                hf_model=model,
                tokenizer=tokenizer,
                device=str(adapter.device),
                dtype=adapter.dtype,
            )
        except Exception as exc:
            raise UnsupportedModelError(
                f"TransformerLens cannot bridge {adapter.architecture}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}"
            ) from None
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        self.adapter = adapter
        self.bridged = self.bridge.original_model
        #: the torch module the calls run (the bridged copy)
        self.model: nn.Module = self.bridged
        table = _TL_HOOKS_RWKV if adapter.architecture == "rwkv" else _TL_HOOKS
        self.hook_names = {
            site.name: f"blocks.{site.layer}.{table[site.kind]}"
            for site in adapter.sites.values()
            if site.kind in table
        }
        missing = sorted(n for n in self.hook_names.values() if n not in self.bridge.hook_dict)
        if missing:
            raise UnsupportedModelError(
                f"TransformerLens has no hook point {missing[0]} for {adapter.architecture}"
            )

    def invoke(self, fn: Any, session: HookSession, kwargs: dict[str, Any]) -> Any:
        target = self.bridged if fn is self.adapter.model else self.bridged.base_model
        fwd_hooks = [
            (self.hook_names[name], lambda x, hook, fn=hook_fn: fn(x))
            for name, hook_fn in session.hooks.items()
        ]
        with self.bridge.hooks(fwd_hooks=fwd_hooks):
            return target(**kwargs)


def _reloadable_tokenizer(tokenizer: Any) -> tuple[Any, str | None]:
    """TransformerLens reloads the tokenizer by its ``name_or_path``: give an in-memory one a real
    directory to be reloaded from. Returns the tokenizer and the scratch directory to remove."""
    import tempfile
    from pathlib import Path

    source = getattr(tokenizer, "name_or_path", "")
    if tokenizer is None or (source and Path(source).is_dir()):
        return tokenizer, None
    from transformers import AutoTokenizer

    directory = tempfile.mkdtemp(prefix="autointerp-tokenizer-")
    tokenizer.save_pretrained(directory)
    return AutoTokenizer.from_pretrained(directory), directory
