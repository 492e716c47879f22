"""Shared machinery of the Hugging Face model adapters (the transformers, mamba and rwkv plugins).

- :class:`HookPoint`: where a site lives (a module and whether its input or output is the site).
- :class:`HookSession`: installs forward hooks for one call, captures sites and applies
  interventions; works across several module calls (a recurrent model run token by token).
- :class:`HFAdapter`: a :class:`~autointerp.adapter.ModelAdapter` over a Hugging Face causal LM,
  implementing everything but the model-family specifics (site table, the actual model call),
  and building one: :meth:`HFAdapter.from_config` (the registered factory) and
  :meth:`HFAdapter.wrap` (an already-loaded model, served through a backend).
- :class:`HFModelConfig` and :func:`load_hf_model`: the options every HF adapter shares, and
  loading by hub name or local path with dtype and device ("auto" by default: the first CUDA
  device when torch sees one, in bfloat16 where it supports it; else the CPU in float32).

torch and transformers are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from autointerp.adapter import (
    ACTIVATION_KINDS,
    AdapterError,
    Batch,
    ForwardResult,
    Intervention,
    ModelAdapter,
    ModelOptions,
    RecurrentState,
    UnsupportedModelError,
    dtype_name,
    resolve_device,
    resolve_dtype,
)
from autointerp.types import Site

if TYPE_CHECKING:
    import torch
    from torch import nn

Where = Literal["input", "output"]
Backend = Literal["hooks", "nnsight", "transformer_lens"]
CACHE_ENV = "AUTOINTERP_CACHE_DIR"


def cache_dir() -> Path:
    """Where converted model copies are cached: ``$AUTOINTERP_CACHE_DIR`` or ~/.cache/autointerp."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "autointerp"


class HFModelConfig(ModelOptions):
    """Options shared by the Hugging Face model adapters (``device`` and ``dtype``: see
    :class:`~autointerp.adapter.ModelOptions`)."""

    model: str = Field(description="hub name, local directory or file, or a packaged model spec")
    backend: Backend = Field("hooks", description="hooks (default), nnsight or transformer_lens")
    padding_side: Literal["left", "right"] | None = Field(
        None, description="tokenizer padding side (default: the adapter's exact choice)"
    )
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")


# -- hooks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HookPoint:
    """A site's module and whether the site is that module's first input or (first) output."""

    module: nn.Module
    where: Where = "output"


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, tuple | list) else value


def _with_first(value: Any, new: Any) -> Any:
    if isinstance(value, tuple):
        return (new, *value[1:])
    if isinstance(value, list):
        return [new, *value[1:]]
    return new


@dataclass
class HookSession:
    """Hooks for one forward call: captures and interventions at activation sites.

    ``seq_len`` is the length of the whole call; when the model runs in several chunks (token
    by token), call :meth:`advance` after each so positions and captures line up.
    """

    points: Mapping[str, HookPoint]
    capture: Sequence[str]
    interventions: Sequence[Intervention]
    seq_len: int
    offset: int = 0
    #: raise :class:`StopForward` once every captured activation site has its value (a call
    #: that returns neither logits nor state needs no later layer)
    stop_when_captured: bool = False
    pieces: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    #: site name -> function applying that site's edits and capture to its activation
    hooks: dict[str, Any] = field(default_factory=dict)
    _handles: list[Any] = field(default_factory=list)
    _n_wanted: int = 0

    def install(self) -> None:
        self._n_wanted = sum(n.rsplit(".", 1)[0] in ACTIVATION_KINDS for n in set(self.capture))
        by_site: dict[str, list[tuple[Intervention, torch.Tensor | None]]] = {}
        for iv in self.interventions:
            by_site.setdefault(iv.site, []).append((iv, self._position_mask(iv)))
        for name in dict.fromkeys([*self.capture, *by_site]):
            if name.rsplit(".", 1)[0] not in ACTIVATION_KINDS:
                continue  # state sites are filled in by the adapter after the call
            hook = self._make_hook(name, by_site.get(name, []), name in self.capture)
            self.hooks[name] = hook
            point = self.points.get(name)
            if point is None:
                continue  # a backend engine applies the hook itself
            if point.where == "output":
                handle = point.module.register_forward_hook(
                    lambda _m, _a, out, hook=hook: _with_first(out, hook(_first(out)))
                )
            else:
                handle = point.module.register_forward_pre_hook(
                    lambda _m, args, kwargs, hook=hook: _pre(args, kwargs, hook),
                    with_kwargs=True,
                )
            self._handles.append(handle)

    def _position_mask(self, iv: Intervention) -> torch.Tensor | None:
        import torch

        if iv.positions is None:
            return None
        mask = torch.zeros(self.seq_len, dtype=torch.bool)
        pos = iv.positions
        mask[pos if isinstance(pos, slice) else list(pos if isinstance(pos, tuple) else (pos,))] = (
            True
        )
        return mask

    def _make_hook(
        self,
        name: str,
        edits: list[tuple[Intervention, torch.Tensor | None]],
        keep: bool,
    ) -> Any:
        def hook(x: torch.Tensor) -> torch.Tensor:
            t = x.shape[1]
            for iv, mask in edits:
                if mask is None:
                    x = iv.edit(x)
                    continue
                sel = mask[self.offset : self.offset + t]
                if bool(sel.all()):
                    x = iv.edit(x)
                elif bool(sel.any()):
                    idx = sel.nonzero().squeeze(1).to(x.device)
                    x = x.index_copy(1, idx, iv.edit(x.index_select(1, idx)))
            if keep:
                self.pieces.setdefault(name, []).append(x.detach())
                if self.stop_when_captured and len(self.pieces) == self._n_wanted:
                    raise StopForward
            return x

        return hook

    def advance(self, n: int) -> None:
        self.offset += n

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def captures(self) -> dict[str, torch.Tensor]:
        import torch

        return {
            name: parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            for name, parts in self.pieces.items()
        }


class StopForward(Exception):
    """Raised by a hook once the last wanted site is captured: the layers after it never run."""


def _pre(args: tuple[Any, ...], kwargs: dict[str, Any], hook: Any) -> Any:
    if args:
        return (hook(args[0]), *args[1:]), kwargs
    key = next(iter(kwargs))  # hidden_states / hidden: the first keyword is the stream
    return args, {**kwargs, key: hook(kwargs[key])}


@contextmanager
def hook_session(
    points: Mapping[str, HookPoint],
    capture: Sequence[str],
    interventions: Sequence[Intervention],
    seq_len: int,
    stop: bool = False,
) -> Iterator[HookSession]:
    """Install hooks for one call and always remove them afterwards."""
    session = HookSession(points, capture, interventions, seq_len, stop_when_captured=stop)
    session.install()
    try:
        yield session
    finally:
        session.remove()


# -- loading ---------------------------------------------------------------------------------------


def torch_dtype(name: str, device: Any = "cpu") -> torch.dtype:
    """The dtype of a ``dtype`` option ("auto" resolves for ``device``)."""
    return resolve_dtype(name, device)


def load_hf_model(
    spec: str | Path,
    *,
    dtype: str = "auto",
    device: str = "auto",
    revision: str | None = None,
    model_class: Any = None,
) -> tuple[nn.Module, Any]:
    """Load a causal LM and its tokenizer by hub name, local directory or local GGUF file.

    Hub names go through ``from_pretrained`` (honouring ``HF_HUB_OFFLINE``); a ``.gguf`` file is
    dequantized by transformers (needs the ``gguf`` package). ``device`` and ``dtype`` are
    resolved first (:func:`~autointerp.adapter.resolve_device`): a device this machine lacks
    fails here, in one line, before any weight is read.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = resolve_device(device)
    cls = model_class or AutoModelForCausalLM
    path = Path(spec).expanduser()
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype, where)}
    if revision:
        kwargs["revision"] = revision
    try:
        if path.is_file() and path.suffix == ".gguf":
            model = cls.from_pretrained(str(path.parent), gguf_file=path.name, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        else:
            source = str(path) if path.exists() else str(spec)
            model = cls.from_pretrained(source, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(
            f"cannot load model '{spec}': {first} (a hub name needs network access or a "
            f"local copy in the HF cache; a local path must exist){_packaged_hint(str(spec))}"
        ) from None
    model.to(where)
    model.eval()
    return model, tokenizer


def _packaged_hint(spec: str) -> str:
    """``; did you mean 'smollm2-135m'?`` for a misspelt packaged model name, else ""."""
    import difflib

    from autointerp_transformers.packaged import PACKAGED

    close = difflib.get_close_matches(spec, list(PACKAGED), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}' (packaged, offline)?" if close else ""


# -- the shared HF adapter -------------------------------------------------------------------------


def get_module(root: nn.Module, path: str) -> nn.Module:
    return root.get_submodule(path) if path else root


class HFAdapter(ModelAdapter):
    """Hook-based adapter over a Hugging Face causal LM.

    Subclasses fill :meth:`_site_table` (site name -> (module path, where, shape)) and
    :meth:`_run` (the model call); everything else — validation, hooks, captures, state
    handling around the call — lives here.
    """

    #: module paths of the final norm and the unembedding (for :meth:`unembed`)
    final_norm_path: str
    lm_head_path: str
    #: an alternative backend (nnsight, TransformerLens) that runs model calls instead of hooks
    engine: Any = None
    #: the tokenizer padding side when neither the caller nor the config chooses one
    default_padding_side: ClassVar[Literal["left", "right"]] = "right"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        architecture: str,
        padding_side: Literal["left", "right"] = "right",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.architecture = architecture
        self.padding_side = padding_side
        if tokenizer is not None and getattr(tokenizer, "pad_token_id", None) is None:
            tokenizer.pad_token = tokenizer.eos_token
        config = model.config
        self.n_layers = int(config.num_hidden_layers)
        self.d_model = int(config.hidden_size)
        self.vocab_size = int(config.vocab_size)
        table = self._site_table()
        self.sites = {
            name: Site(name=name, shape=tuple(shape), module_path=path)
            for name, (path, _where, shape) in table.items()
        }
        self.points = {
            name: HookPoint(get_module(model, path), where)
            for name, (path, where, _shape) in table.items()
            if name.rsplit(".", 1)[0] in ACTIVATION_KINDS
        }

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: HFModelConfig) -> Any:
        """The registered factory: load ``config.model`` and wrap it with ``config.backend``."""
        model, tokenizer = load_hf_model(
            cls.resolve_model(config.model),
            dtype=config.dtype,
            device=config.device,
            revision=config.revision,
        )
        return cls.wrap(
            model,
            tokenizer,
            backend=config.backend,
            padding_side=config.padding_side,
            **cls.init_options(config),
        )

    @classmethod
    def wrap(
        cls,
        model: nn.Module,
        tokenizer: Any,
        *,
        backend: str = "hooks",
        padding_side: Literal["left", "right"] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Wrap an already-loaded model with the chosen backend; ``kwargs`` go to the adapter's
        constructor."""
        from autointerp_transformers.backends import wrap_backend

        adapter = cls(
            model, tokenizer, padding_side=padding_side or cls.default_padding_side, **kwargs
        )
        return wrap_backend(adapter, backend)

    @classmethod
    def resolve_model(cls, spec: str) -> str | Path:
        """The hub name or local path to load for the config's ``model`` (a subclass may map its
        own specs, e.g. packaged models, to a path)."""
        return spec

    @classmethod
    def init_options(cls, config: HFModelConfig) -> dict[str, Any]:
        """Constructor keyword arguments that a subclass's config adds to the shared options."""
        return {}

    # -- subclass API --------------------------------------------------------------------------

    def _site_table(self) -> dict[str, tuple[str, Where, tuple[int, ...]]]:
        raise NotImplementedError

    def _run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        state: RecurrentState | None,
        return_state: bool,
        return_logits: bool,
        session: HookSession,
    ) -> tuple[torch.Tensor | None, RecurrentState | None]:
        raise NotImplementedError

    def _invoke(self, fn: Any, session: HookSession, **kwargs: Any) -> Any:
        """Call the model (``fn``: the LM or its base model); a backend engine may take over."""
        if self.engine is None:
            return fn(**kwargs)
        return self.engine.invoke(fn, session, kwargs)

    # -- contract ------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def placement(self) -> str:
        """``cuda:0 bfloat16``: where and in what the model computes (for logs and benchmarks)."""
        return f"{self.device} {dtype_name(self.dtype)}"

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        capture: Sequence[str] = (),
        interventions: Sequence[Intervention] = (),
        state: RecurrentState | None = None,
        return_state: bool = False,
        return_logits: bool = True,
    ) -> ForwardResult:
        import torch

        if input_ids.dim() != 2:
            raise AdapterError(
                f"input_ids must be [batch, seq], got shape {tuple(input_ids.shape)}"
            )
        capture = list(dict.fromkeys(capture))
        wanted = [self.site(name) for name in capture]
        self.check_interventions(interventions, input_ids.shape[1])
        state_wanted = [s.name for s in wanted if s.kind not in ACTIVATION_KINDS]
        if not self.recurrent and (state is not None or return_state):
            raise UnsupportedModelError(
                f"{self.architecture} is not recurrent: it takes no `state` and returns none"
            )
        if state is not None:
            self._check_state(state, input_ids.shape[0])
        input_ids = input_ids.to(self.device)
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        points = self.points if self.engine is None else {}  # an engine applies hooks itself
        # only captures are returned: stop the model right after the deepest one (no wasted
        # layers). A call from a state may run token by token, so it always runs to the end, as
        # does a backend engine that cannot stop its own call (no ``stops_early``).
        stop = (
            bool(capture)
            and not (return_logits or return_state or state_wanted)
            and state is None
            and (self.engine is None or getattr(self.engine, "stops_early", False))
        )
        with (
            torch.no_grad(),
            hook_session(points, capture, interventions, input_ids.shape[1], stop) as session,
        ):
            try:
                logits, final = self._run(
                    input_ids,
                    attention_mask,
                    state,
                    return_state or bool(state_wanted),
                    return_logits,
                    session,
                )
            except StopForward:
                logits, final = None, None
        captures = session.captures()
        for name in state_wanted:
            assert final is not None
            captures[name] = final[name]
        return ForwardResult(
            logits=logits,
            captures={name: captures[name] for name in capture},
            state=final if return_state else None,
        )

    def _check_state(self, state: Mapping[str, Any], batch: int) -> None:
        expected = {s.name: s for s in self.state_sites}
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        if missing or extra:
            raise AdapterError(
                f"state does not fit {self.architecture}: missing {missing[:4]}, "
                f"unexpected {extra[:4]} (use a state returned by this adapter)"
            )
        for name, site in expected.items():
            shape = tuple(state[name].shape)
            if shape != (batch, *site.shape):
                raise AdapterError(
                    f"state '{name}' has shape {shape}, expected {(batch, *site.shape)}"
                )

    def unembed(self, resid: torch.Tensor) -> torch.Tensor:

        # runs under the caller's grad mode: a tuned lens trains through it
        norm = get_module(self.model, self.final_norm_path)
        head = get_module(self.model, self.lm_head_path)
        return head(norm(resid.to(device=self.device, dtype=self.dtype)))

    def input_embeddings(self) -> torch.Tensor:
        # the HF model's own weights, detached (a view: no copy); every backend runs these
        # weights (TransformerLens a copy of them), so one answer serves all backends
        return self.model.get_input_embeddings().weight.detach()

    def tokenize(self, texts: Sequence[str], *, max_length: int | None = None) -> Batch:
        if self.tokenizer is None:
            raise AdapterError("this adapter was built without a tokenizer")
        self.tokenizer.padding_side = self.padding_side
        enc = self.tokenizer(
            list(texts),
            return_tensors="pt",
            padding=True,
            truncation=max_length is not None,
            max_length=max_length,
        )
        return Batch(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
