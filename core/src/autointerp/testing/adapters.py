"""Conformance suite for model adapters, and tiny random-weight models to run it on.

A plugin tests its adapter by subclassing :class:`AdapterConformance` and providing an ``adapter``
fixture (class-scoped: built once)::

    from autointerp.testing.adapters import AdapterConformance, tiny_model, tiny_tokenizer

    class TestTinyGPT2(AdapterConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def adapter(cls):
            return MyAdapter(tiny_model("gpt2"), tiny_tokenizer())

Fixtures (registered by the ``autointerp`` pytest plugin): ``autointerp_tiny_dirs`` (a saved tiny
model per architecture, for ``-m DIR``) and ``autointerp_tiny_adapter`` (each installed adapter
over its tiny model; a test using it runs once per architecture).

Every check is written against the contract only (``forward``, ``step``, ``unembed``, sites), so it
holds for any backend. :func:`assert_same_activations` compares two adapters (e.g. two backends
over the same weights). The tiny builders need torch and transformers, imported lazily; nothing
is downloaded.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from autointerp.adapter import (
    Ablate,
    Add,
    InterventionError,
    ModelAdapter,
    Replace,
    Scale,
    SiteError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    import torch

VOCAB = 260  # 256 byte tokens + <|endoftext|>, rounded up
EOS = 256
TINY_ARCHITECTURES = ("gpt2", "llama", "mamba", "mamba2", "rwkv")


# -- tiny models -----------------------------------------------------------------------------------


def tiny_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + ``<|endoftext|>`` = pad/eos/bos), built offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab["<|endoftext|>"] = EOS
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        name_or_path="autointerp-tiny-bytes",
    )


def tiny_config(architecture: str, n_layers: int = 2, d_model: int = 32) -> Any:
    """A tiny transformers config of ``architecture`` (one of :data:`TINY_ARCHITECTURES`)."""
    import transformers as tf

    ids = {"bos_token_id": EOS, "eos_token_id": EOS, "pad_token_id": EOS, "vocab_size": VOCAB}
    if architecture == "gpt2":
        return tf.GPT2Config(n_embd=d_model, n_layer=n_layers, n_head=4, n_positions=128, **ids)
    if architecture == "llama":
        return tf.LlamaConfig(
            hidden_size=d_model,
            intermediate_size=2 * d_model,
            num_hidden_layers=n_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            **ids,
        )
    if architecture == "mamba":
        return tf.MambaConfig(
            hidden_size=d_model, state_size=8, num_hidden_layers=n_layers, expand=2, **ids
        )
    if architecture == "mamba2":
        # hidden_size * expand must equal num_heads * head_dim
        return tf.Mamba2Config(
            hidden_size=d_model,
            state_size=8,
            num_hidden_layers=n_layers,
            expand=2,
            num_heads=2 * d_model // 8,
            head_dim=8,
            n_groups=1,
            chunk_size=8,
            **ids,
        )
    if architecture == "rwkv":
        config = tf.RwkvConfig(
            hidden_size=d_model,
            attention_hidden_size=d_model,
            intermediate_size=2 * d_model,
            num_hidden_layers=n_layers,
            context_length=128,
            rescale_every=0,
            **ids,
        )
        config.architectures = ["RwkvForCausalLM"]  # TransformerLens looks the class up by name
        return config
    raise ValueError(f"no tiny config for {architecture!r}; choose from {TINY_ARCHITECTURES}")


def tiny_model(architecture: str, seed: int = 0, **kwargs: Any) -> Any:
    """A random-weight causal LM of ``architecture`` in eval mode (float32, CPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(architecture, **kwargs))
    if architecture == "rwkv":
        # default init leaves the WKV decay flat; randomise so state matters in the tests
        with torch.no_grad():
            for block in model.rwkv.blocks:
                block.attention.time_decay.normal_(0, 1)
                block.attention.time_first.normal_(0, 1)
    return model.eval()


#: the tiny architectures one per adapter plugin, and the adapter serving each
ADAPTER_FOR_ARCH = {"gpt2": "transformers", "mamba": "mamba", "rwkv": "rwkv"}


def save_tiny(model: Any, where: Path) -> Path:
    """Save a tiny model with the tiny tokenizer, loadable by an adapter's ``model`` option."""
    model.save_pretrained(where)
    tiny_tokenizer().save_pretrained(where)
    return where


def build_tiny(arch: str, model_dir: Path) -> ModelAdapter:
    """The installed adapter for ``arch`` over a saved tiny model (skips if it isn't installed)."""
    from autointerp.plugins import PluginManager

    pm = PluginManager()
    name = ADAPTER_FOR_ARCH[arch]
    if name not in pm.names("model_adapter"):
        pytest.skip(f"the '{name}' adapter plugin is not installed")
    return pm.build("model_adapter", name, {"model": str(model_dir)})


@pytest.fixture(scope="session")
def autointerp_tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved tiny random-weight model per architecture of :data:`ADAPTER_FOR_ARCH` (``gpt2``,
    ``mamba``, ``rwkv``), built once per session: a directory to pass as an adapter's ``model``
    option (``-m DIR`` on the command line)."""
    return {
        arch: save_tiny(tiny_model(arch), tmp_path_factory.mktemp(f"tiny-{arch}"))
        for arch in ADAPTER_FOR_ARCH
    }


@pytest.fixture(scope="session", params=list(ADAPTER_FOR_ARCH))
def autointerp_tiny_adapter(
    request: pytest.FixtureRequest, autointerp_tiny_dirs: dict[str, Path]
) -> ModelAdapter:
    """The installed adapter of each architecture over its tiny model (:func:`build_tiny`): a
    test that uses it runs once per architecture, skipped where that adapter is not installed."""
    arch = request.param
    return build_tiny(arch, autointerp_tiny_dirs[arch])


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run with ``n`` torch threads (tiny tensors: one is several times faster than two on a busy
    machine), restoring the previous count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def random_ids(batch: int, seq: int, seed: int = 0) -> torch.Tensor:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, seq), generator=gen)


# -- the suite -------------------------------------------------------------------------------------


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, what: str) -> None:
    import torch

    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}"
    diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
    assert torch.allclose(a.float(), b.float(), atol=atol, rtol=atol), f"{what}: max diff {diff}"


class AdapterConformance:
    """The shared contract tests. Subclass it and provide a class-scoped ``adapter`` fixture."""

    #: absolute/relative tolerance for "same numbers" comparisons (float32 tiny models)
    atol: float = 1e-4
    seq_len: int = 10

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls) -> ModelAdapter:
        raise NotImplementedError("provide an `adapter` fixture in the subclass")

    @pytest.fixture(scope="class")
    @classmethod
    def ids(cls) -> torch.Tensor:
        return random_ids(2, cls.seq_len)

    # -- metadata --------------------------------------------------------------------------------

    def test_metadata_and_sites(self, adapter: ModelAdapter) -> None:
        assert adapter.n_layers >= 1 and adapter.d_model >= 1 and adapter.vocab_size >= 1
        assert isinstance(adapter.architecture, str) and adapter.architecture
        for layer in range(adapter.n_layers):
            for kind in ("resid_pre", "resid_post"):
                site = adapter.site(f"{kind}.{layer}")
                assert site.shape == (adapter.d_model,)
                assert site.layer == layer and site.module_path
        if adapter.recurrent:
            assert adapter.state_sites, "a recurrent adapter exposes its state as sites"
        else:
            assert not adapter.state_sites
        info = adapter.describe()
        assert len(info["sites"]) == len(adapter.sites)

    def test_input_embeddings_are_the_models_token_embeddings(self, adapter: ModelAdapter) -> None:
        import torch

        emb = adapter.input_embeddings()
        if emb is None:
            pytest.skip("this adapter gives no token embeddings")
        assert tuple(emb.shape) == (adapter.vocab_size, adapter.d_model)
        assert not emb.requires_grad, "input_embeddings() must be detached"
        model = getattr(adapter, "model", None)
        if model is not None and hasattr(model, "get_input_embeddings"):
            weight = model.get_input_embeddings().weight
            assert torch.equal(emb, weight.detach()), "differs from the HF input embeddings"
            assert emb.data_ptr() == weight.data_ptr(), "copied the weights instead of a view"

    def test_tokenizer_round_trip(self, adapter: ModelAdapter) -> None:
        batch = adapter.tokenize(["hello world", "hi"])
        assert batch.input_ids.shape == batch.attention_mask.shape
        assert batch.input_ids.shape[0] == 2

    # -- errors ----------------------------------------------------------------------------------

    def test_unknown_site_lists_valid_ones(self, adapter: ModelAdapter) -> None:
        with pytest.raises(SiteError, match=r"unknown site 'resid_mid\.0'.*resid_post\.L"):
            adapter.site("resid_mid.0")

    def test_layer_out_of_range(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        name = f"resid_post.{adapter.n_layers}"
        with pytest.raises(SiteError, match=rf"layer {adapter.n_layers} out of range"):
            adapter.forward(ids, capture=[name])

    def test_vector_width_error_names_both_sizes(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        import torch

        bad = Add("resid_post.0", vector=torch.zeros(adapter.d_model + 3))
        with pytest.raises(
            InterventionError, match=rf"width {adapter.d_model + 3}.*width {adapter.d_model}"
        ):
            adapter.forward(ids, interventions=[bad])

    # -- captures --------------------------------------------------------------------------------

    def test_captures_have_site_shapes(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        names = [s.name for s in adapter.sites.values() if s.layer == 0]
        out = adapter.forward(ids, capture=names)
        assert out.logits is not None
        assert out.logits.shape == (*ids.shape, adapter.vocab_size)
        for name in names:
            site = adapter.site(name)
            expected = (*ids.shape, *site.shape)
            if site in adapter.state_sites:
                expected = (ids.shape[0], *site.shape)
            assert tuple(out.captures[name].shape) == expected, name

    def test_last_resid_post_unembeds_to_logits(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        last = f"resid_post.{adapter.n_layers - 1}"
        out = adapter.forward(ids, capture=[last])
        assert out.logits is not None
        _close(adapter.unembed(out.captures[last]), out.logits, self.atol, "unembed(resid_post)")

    def test_resid_pre_is_previous_resid_post(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        if adapter.n_layers < 2:
            pytest.skip("needs two layers")
        out = adapter.forward(ids, capture=["resid_post.0", "resid_pre.1"])
        _close(out.captures["resid_pre.1"], out.captures["resid_post.0"], 1e-6, "resid_pre.1")

    def test_captures_without_logits_match(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        site = f"resid_post.{adapter.n_layers // 2}"
        full = adapter.forward(ids, capture=[site])
        bare = adapter.forward(ids, capture=[site], return_logits=False)
        assert bare.logits is None
        _close(bare.captures[site], full.captures[site], 1e-6, site)

    def test_edits_apply_when_a_call_stops_early(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        """Edits before the deepest capture apply; one after it changes nothing returned."""
        import torch

        last = adapter.n_layers - 1
        gen = torch.Generator().manual_seed(1)
        early = Add("resid_pre.0", vector=torch.randn(adapter.d_model, generator=gen))
        late = Scale(f"resid_post.{last}", factor=3.0)
        site = f"resid_pre.{last}"
        full = adapter.forward(ids, capture=[site], interventions=[early])
        plain = adapter.forward(ids, capture=[site], return_logits=False)
        bare = adapter.forward(
            ids, capture=[site], interventions=[early, late], return_logits=False
        )
        _close(bare.captures[site], full.captures[site], 1e-5, f"{site} with an early edit")
        assert not torch.allclose(bare.captures[site], plain.captures[site]), "edit not applied"

    def test_forward_without_logits_stops_after_the_deepest_site(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        """``return_logits=False`` runs no layer after the deepest captured site: forward
        pre-hooks record the blocks entered (a block is entered before its input is read, and
        a backend may stop inside the block whose output it reads) and the final norm."""
        model = getattr(adapter, "model", None)
        if model is None or adapter.n_layers < 2:
            pytest.skip("needs an adapter over a torch model with two layers or more")
        engine = getattr(adapter, "engine", None)
        if engine is not None:
            if not getattr(engine, "stops_early", False):
                pytest.skip("this backend runs the whole model")
            model = engine.model  # the module the backend runs (TransformerLens: a copy)
        blocks = [
            model.get_submodule(adapter.site(f"resid_pre.{i}").module_path)
            for i in range(adapter.n_layers)
        ]
        entered: list[int] = []
        handles = [
            b.register_forward_pre_hook(lambda *_a, i=i: entered.append(i))
            for i, b in enumerate(blocks)
        ]
        norm_path = getattr(adapter, "final_norm_path", "")
        if norm_path:
            handles.append(
                model.get_submodule(norm_path).register_forward_pre_hook(
                    lambda *_a: entered.append(-1)
                )
            )
        try:
            cases = {  # captured sites -> the blocks entered
                ("resid_post.0",): [0],
                ("resid_pre.1", "resid_post.0"): [0, 1],  # resid_pre.1 is block 1's input
                ("resid_post.1", "resid_pre.0"): [0, 1],  # no final norm after the last
            }
            for sites, expected in cases.items():
                full = adapter.forward(ids, capture=list(sites))
                entered.clear()
                bare = adapter.forward(ids, capture=list(sites), return_logits=False)
                assert entered == expected, f"{sites}: blocks that ran {entered}"
                for name in sites:
                    _close(bare.captures[name], full.captures[name], 1e-6, name)
        finally:
            for h in handles:
                h.remove()

    # -- interventions ---------------------------------------------------------------------------

    def test_zero_add_leaves_logits_unchanged(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        import torch

        base = adapter.forward(ids)
        zero = torch.zeros(adapter.d_model)
        edited = adapter.forward(
            ids, interventions=[Add(s, vector=zero) for s in ("resid_pre.0", "resid_post.0")]
        )
        assert base.logits is not None and edited.logits is not None
        _close(edited.logits, base.logits, 1e-6, "logits after adding zero")

    def test_add_is_causal(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        import torch

        pos = self.seq_len // 2
        base = adapter.forward(ids)
        vec = torch.randn(adapter.d_model, generator=torch.Generator().manual_seed(1)) * 5
        edited = adapter.forward(ids, interventions=[Add("resid_post.0", pos, vector=vec)])
        assert base.logits is not None and edited.logits is not None
        _close(edited.logits[:, :pos], base.logits[:, :pos], 1e-6, "logits before the edit")
        changed = (edited.logits[:, pos] - base.logits[:, pos]).abs().max().item()
        assert changed > 1e-4, "adding a vector at a position must change its logits"

    def test_interventions_show_in_captures(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        import torch

        site = "resid_post.0"
        base = adapter.forward(ids, capture=[site]).captures[site]
        value = torch.full((adapter.d_model,), 0.5)
        cases: list[tuple[Any, torch.Tensor]] = [
            (Ablate(site, (1, 3)), torch.zeros_like(base[:, [1, 3]])),
            (Scale(site, -1, factor=2.0), 2 * base[:, [-1]]),
            (Replace(site, slice(0, 2), value=value), value.expand_as(base[:, :2])),
        ]
        for iv, expected in cases:
            got = adapter.forward(ids, capture=[site], interventions=[iv]).captures[site]
            index = (
                iv.positions
                if isinstance(iv.positions, slice)
                else (list(iv.positions) if isinstance(iv.positions, tuple) else [iv.positions])
            )
            _close(got[:, index], expected, 1e-5, type(iv).__name__)
            untouched = torch.ones(self.seq_len, dtype=torch.bool)
            untouched[index] = False
            _close(got[:, untouched], base[:, untouched], 1e-6, f"{type(iv).__name__} elsewhere")

    def test_sublayer_sites_are_editable(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        base = adapter.forward(ids)
        for kind in ("attn_out", "mlp_out", "mixer_out"):
            name = f"{kind}.0"
            if name not in adapter.sites:
                continue
            out = adapter.forward(ids, capture=[name], interventions=[Ablate(name)])
            assert out.captures[name].abs().max().item() == 0.0
            assert base.logits is not None and out.logits is not None
            assert not _allclose(out.logits, base.logits), f"ablating {name} changed nothing"

    # -- batching --------------------------------------------------------------------------------

    def test_padded_batch_matches_single_sequences(self, adapter: ModelAdapter) -> None:
        texts = ["The cat sat on the mat.", "Hi", "A slightly longer piece of text here"]
        site = f"resid_post.{adapter.n_layers - 1}"
        sides = ["left", "right"] if not adapter.recurrent else [adapter_padding(adapter)]
        for side in sides:
            previous = getattr(adapter, "padding_side", None)
            if previous is not None:
                adapter.padding_side = side  # type: ignore[attr-defined]
            try:
                batch = adapter.tokenize(texts)
            finally:
                if previous is not None:
                    adapter.padding_side = previous  # type: ignore[attr-defined]
            out = adapter.forward(
                batch.input_ids, attention_mask=batch.attention_mask, capture=[site]
            )
            assert out.logits is not None
            for row, text in enumerate(texts):
                single = adapter.tokenize([text])
                ref = adapter.forward(single.input_ids, capture=[site])
                real = batch.attention_mask[row].bool()
                assert ref.logits is not None
                _close(out.logits[row, real], ref.logits[0], self.atol, f"{side}-padded logits")
                _close(
                    out.captures[site][row, real],
                    ref.captures[site][0],
                    self.atol,
                    f"{side}-padded {site}",
                )

    # -- recurrent state -------------------------------------------------------------------------

    def test_transformer_has_no_state(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        if adapter.recurrent:
            pytest.skip("recurrent")
        with pytest.raises(UnsupportedModelError):
            adapter.step(ids[:, 0], None)
        with pytest.raises(UnsupportedModelError):
            adapter.forward(ids, return_state=True)

    def test_prefix_state_then_suffix_equals_whole(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        if not adapter.recurrent:
            pytest.skip("not recurrent")
        cut = 3
        site = f"resid_post.{adapter.n_layers - 1}"
        whole = adapter.forward(ids, capture=[site], return_state=True)
        head = adapter.forward(ids[:, :cut], return_state=True)
        tail = adapter.forward(ids[:, cut:], capture=[site], state=head.state, return_state=True)
        assert whole.logits is not None and head.logits is not None and tail.logits is not None
        _close(head.logits, whole.logits[:, :cut], self.atol, "prefix logits")
        _close(tail.logits, whole.logits[:, cut:], self.atol, "suffix logits from state")
        _close(tail.captures[site], whole.captures[site][:, cut:], self.atol, "suffix capture")
        assert tail.state is not None and whole.state is not None
        for name in whole.state:
            _close(tail.state[name], whole.state[name], self.atol, f"final {name}")

    def test_interventions_follow_a_continuation(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        import torch

        if not adapter.recurrent:
            pytest.skip("not recurrent")
        cut, pos = 3, 5
        vec = torch.randn(adapter.d_model, generator=torch.Generator().manual_seed(2)).tolist()
        whole = adapter.forward(ids, interventions=[Add("resid_pre.0", pos, vector=vec)])
        head = adapter.forward(ids[:, :cut], return_state=True)
        tail = adapter.forward(
            ids[:, cut:],
            state=head.state,
            interventions=[Add("resid_pre.0", pos - cut, vector=vec)],
        )
        assert whole.logits is not None and tail.logits is not None
        _close(tail.logits, whole.logits[:, cut:], self.atol, "edited continuation")

    def test_step_matches_full_forward(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        import torch

        if not adapter.recurrent:
            pytest.skip("not recurrent")
        whole = adapter.forward(ids, return_state=True)
        state = adapter.initial_state(ids.shape[0])
        logits = []
        for t in range(ids.shape[1]):
            out = adapter.step(ids[:, t], state)
            assert out.logits is not None and out.logits.shape[1] == 1
            logits.append(out.logits)
            state = out.state
        assert whole.logits is not None and whole.state is not None and state is not None
        _close(torch.cat(logits, dim=1), whole.logits, self.atol, "step-by-step logits")
        for name in whole.state:
            _close(state[name], whole.state[name], self.atol, f"stepped {name}")

    def test_state_in_is_never_mutated(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        if not adapter.recurrent:
            pytest.skip("not recurrent")
        head = adapter.forward(ids[:, :4], return_state=True)
        assert head.state is not None
        kept = copy.deepcopy(head.state)
        adapter.forward(ids[:, 4:], state=head.state, return_state=True)
        adapter.step(ids[:, 4], head.state)
        for name, value in kept.items():
            assert (head.state[name] == value).all(), f"{name} was modified in place"

    def test_state_sites_capture_final_state(
        self, adapter: ModelAdapter, ids: torch.Tensor
    ) -> None:
        if not adapter.recurrent:
            pytest.skip("not recurrent")
        names = [s.name for s in adapter.state_sites]
        out = adapter.forward(ids, capture=names, return_state=True)
        assert out.state is not None
        for name in names:
            _close(out.captures[name], out.state[name], 0.0, name)
        with pytest.raises(InterventionError, match="state"):
            adapter.forward(ids, interventions=[Ablate(names[0])])

    def test_initial_state_is_state_none(self, adapter: ModelAdapter, ids: torch.Tensor) -> None:
        if not adapter.recurrent:
            pytest.skip("not recurrent")
        plain = adapter.forward(ids)
        seeded = adapter.forward(ids, state=adapter.initial_state(ids.shape[0]))
        assert plain.logits is not None and seeded.logits is not None
        _close(seeded.logits, plain.logits, self.atol, "logits from initial_state()")


def adapter_padding(adapter: ModelAdapter) -> str:
    return str(getattr(adapter, "padding_side", "right"))


def _allclose(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> bool:
    import torch

    return bool(torch.allclose(a.float(), b.float(), atol=atol))


def assert_same_activations(
    a: ModelAdapter,
    b: ModelAdapter,
    sites: Sequence[str] | None = None,
    *,
    ids: torch.Tensor | None = None,
    atol: float = 1e-4,
) -> None:
    """Check that two adapters over the same weights (e.g. two backends) capture the same
    activations and logits; ``sites`` defaults to every activation site the two share."""
    ids = random_ids(2, 8) if ids is None else ids
    names = (
        list(sites)
        if sites is not None
        else [n for n, s in a.sites.items() if n in b.sites and s not in a.state_sites]
    )
    out_a = a.forward(ids, capture=names)
    out_b = b.forward(ids, capture=names)
    assert out_a.logits is not None and out_b.logits is not None
    _close(out_a.logits, out_b.logits, atol, "logits")
    for name in names:
        _close(out_a.captures[name], out_b.captures[name], atol, name)
