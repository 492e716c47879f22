"""Open-ended generation under steering (residual interventions and/or an edited state).

Transformers are re-run on the whole sequence each new token (the contract has no KV cache);
recurrent models advance with the exact one-token ``step`` from the prompt's state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from autointerp_steering.data import unpadded

if TYPE_CHECKING:
    import torch

    from autointerp.adapter import Intervention, ModelAdapter


def _pick(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> torch.Tensor:
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


def generate(
    adapter: ModelAdapter,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 20,
    interventions: Sequence[Intervention] = (),
    state_vectors: Mapping[str, torch.Tensor] | None = None,
    state_multiplier: float = 0.0,
    state_sites: Sequence[str] | None = None,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Continue each prompt; greedy unless ``temperature > 0``. Returns the new text only."""
    import torch

    from autointerp_steering.state import context_state, steer_state

    gen = torch.Generator().manual_seed(seed)
    results = []
    for ids_list in unpadded(adapter, prompts):
        ids = torch.tensor([ids_list], dtype=torch.long)
        new: list[int] = []
        if adapter.recurrent:
            state = context_state(adapter, ids[:, :-1], interventions)
            if state_vectors is not None and state_multiplier:
                state = steer_state(state, state_vectors, state_multiplier, state_sites)
            token = ids[:, -1]
            for _ in range(max_new_tokens):
                out = adapter.step(token, state, interventions=interventions)
                assert out.logits is not None
                token = _pick(out.logits[:, -1], temperature, gen)
                state = out.state
                new.append(int(token))
        else:
            if state_vectors is not None:
                from autointerp_steering.state import _require_recurrent

                _require_recurrent(adapter)
            for _ in range(max_new_tokens):
                logits = adapter.forward(ids, interventions=interventions).logits
                assert logits is not None
                token = _pick(logits[:, -1], temperature, gen)
                ids = torch.cat([ids, token.view(1, 1)], dim=1)
                new.append(int(token))
        results.append(adapter.tokenizer.decode(new))
    return results
