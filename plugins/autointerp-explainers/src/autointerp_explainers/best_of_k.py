"""Best-of-k: k candidates from a base explainer, one kept.

The run wires a *judge* (``set_judge``) built from the scorer named in the config: an async
callable ``judge(latent, candidates, examples) -> scores`` (higher is better). Without one the
most frequent candidate wins (self-consistency), and ``meta["selection"]`` says so.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from autointerp.types import Example, Explanation, LatentRef
from autointerp_explainers.common import ExplanationFailedError
from autointerp_explainers.plugin import BestOfKConfig

Judge = Callable[[LatentRef, Sequence[Explanation], Sequence[Example]], Awaitable[Sequence[float]]]


class BestOfKExplainer:
    name = "best_of_k"

    def __init__(self, config: BestOfKConfig, base: Any = None) -> None:
        self.config = config
        self._base = base
        self.judge: Judge | None = None

    @property
    def base(self) -> Any:
        if self._base is None:
            from autointerp.plugins import get_plugin_manager

            self._base = get_plugin_manager().build(
                "explainer", self.config.base, self.config.base_options
            )
        return self._base

    @property
    def prompt_version(self) -> str:
        """The base explainer's prompt template id (provenance)."""
        return f"best_of_k({getattr(self.base, 'prompt_version', '1')})"

    @property
    def needs(self) -> frozenset[str]:
        return frozenset(getattr(self.base, "needs", frozenset()))

    def set_judge(self, judge: Judge | None) -> None:
        """Wire the scorer that picks the best candidate (the hook for scorers)."""
        self.judge = judge

    async def explain(
        self,
        latent: LatentRef,
        examples: Sequence[Example],
        llm: Any,
        *,
        negatives: Sequence[Example] = (),
        promoted: Sequence[str | tuple[str, float]] = (),
        seed: int | None = None,
        temperature: float | None = None,
    ) -> Explanation:
        k = self.config.k
        first = (seed or 0) * k  # distinct seeds: distinct requests, distinct cache entries
        results = await asyncio.gather(
            *(
                self.base.explain(
                    latent,
                    examples,
                    llm,
                    negatives=negatives,
                    promoted=promoted,
                    seed=first + i,
                    temperature=self.config.temperature if temperature is None else temperature,
                )
                for i in range(k)
            ),
            return_exceptions=True,
        )
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, ExplanationFailedError):
                raise r
        candidates = [r for r in results if isinstance(r, Explanation)]
        failed = [r for r in results if isinstance(r, ExplanationFailedError)]
        if not candidates:
            raise ExplanationFailedError(latent, f"all {k} candidates failed: {failed[0].reason}")
        unique: dict[str, Explanation] = {}
        for c in candidates:
            unique.setdefault(c.text.lower(), c)
        options = list(unique.values())
        if self.judge is not None and len(options) > 1:
            scores = [float(s) for s in await self.judge(latent, options, examples)]
            best = options[max(range(len(options)), key=scores.__getitem__)]
            selection = f"scorer:{self.config.scorer or 'judge'}"
        else:
            votes = Counter(c.text.lower() for c in candidates)
            best = unique[votes.most_common(1)[0][0]]
            scores = [float(votes[o.text.lower()]) for o in options]
            selection = "majority" if len(options) > 1 else "unanimous"
        meta = dict(best.meta) | {
            "base": self.config.base,
            "k": k,
            "candidates": [o.text for o in options],
            "candidate_scores": scores,
            "selection": selection,
            "failed_candidates": [f.reason for f in failed],
            "cost_usd": sum(c.meta.get("cost_usd", 0.0) for c in candidates),
        }
        return Explanation(latent=latent, text=best.text, explainer=self.name, meta=meta)
