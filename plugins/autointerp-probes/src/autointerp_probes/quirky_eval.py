"""ELK on quirky models: probes trained on one persona/level and tested on another, and anomaly
detection of the quirky persona, per layer.

Transfer: a probe is fitted on a train subset (e.g. ``alice:easy``) against that subset's own
labels, then scored on a test subset (e.g. ``bob:hard``) against both the truth (``alice_label``)
and the quirky persona's belief (``bob_label``): a probe that tracks the truth keeps a high AUROC
vs ``alice_label`` where the model answers as Bob.

Anomaly: a Gaussian is fitted on trusted rows (``alice:easy``); test rows (``any:hard``) are scored
by Mahalanobis distance, with the quirky persona's rows as the anomalies. Features: the
activations per layer, and the vector of a probe's scores across layers (the paper's variant).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autointerp_probes.anomaly import anomaly_auroc
from autointerp_probes.evaluate import ProbeData, fit, score
from autointerp_probes.probes import ProbeError, auroc
from autointerp_probes.quirky import QuirkyExample, select

if TYPE_CHECKING:
    import torch


def quirky_probe_data(
    examples: Sequence[QuirkyExample],
    acts: torch.Tensor,
    pos: torch.Tensor | None = None,
    neg: torch.Tensor | None = None,
    layers: Sequence[int] = (),
) -> ProbeData:
    import torch

    return ProbeData(
        acts,
        torch.tensor([e.label for e in examples]),
        groups=[f"{e.character.lower()}:{e.level}" for e in examples],
        pos=pos,
        neg=neg,
        layers=list(layers),
    )


def _auc_or_none(scores: torch.Tensor, labels: torch.Tensor) -> list[float] | None:
    try:
        return auroc(scores, labels).tolist()
    except ProbeError:  # one label only in this subset: AUROC undefined
        return None


def quirky_transfer(
    examples: Sequence[QuirkyExample],
    data: ProbeData,
    methods: Sequence[str],
    train_subsets: Sequence[str],
    test_subsets: Sequence[str],
) -> dict[str, dict[str, dict[str, list[float] | None]]]:
    """``"train→test"`` -> method -> ``{"vs_alice": [layers], "vs_bob": [layers]}`` AUROCs."""
    import torch

    alice = torch.tensor([e.alice_label for e in examples])
    bob = torch.tensor([e.bob_label for e in examples])
    out: dict[str, dict[str, dict[str, list[float] | None]]] = {}
    for source in train_subsets:
        train_idx = torch.tensor(select(examples, source))
        probes = {m: fit(m, data, train_idx) for m in methods}
        for target in test_subsets:
            if target == source:
                continue
            test_idx = torch.tensor(select(examples, target))
            cell = out.setdefault(f"{source}→{target}", {})
            for m, probe in probes.items():
                s = score(probe, data, test_idx)
                cell[m] = {
                    "vs_alice": _auc_or_none(s, alice[test_idx]),
                    "vs_bob": _auc_or_none(s, bob[test_idx]),
                }
    return out


def quirky_anomaly(
    examples: Sequence[QuirkyExample],
    data: ProbeData,
    *,
    trusted: str = "alice:easy",
    test: str = "any:hard",
    quirky_persona: str = "bob",
    probe_method: str = "logreg",
    shrinkage: float = 0.1,
) -> dict[str, Any]:
    """AUROC of separating ``quirky_persona`` rows from the others in ``test``, by Mahalanobis
    distance to ``trusted``: per layer on activations, and once on the probe-score vector."""
    import torch

    trusted_idx = torch.tensor(select(examples, trusted))
    test_idx = torch.tensor(select(examples, test))
    anomalous = torch.tensor(
        [examples[i].character.lower() == quirky_persona.lower() for i in test_idx.tolist()]
    )
    if anomalous.all() or not anomalous.any():
        raise ProbeError(
            f"anomaly test subset {test!r} needs rows of '{quirky_persona}' and of another persona"
        )
    per_layer = anomaly_auroc(
        data.acts[:, trusted_idx], data.acts[:, test_idx], anomalous, shrinkage
    )
    probe = fit(probe_method, data, trusted_idx)
    # probe scores at every layer as one feature vector per row: [1, n, layers]
    feats = score(probe, data, torch.arange(data.acts.shape[1])).T[None].double()
    on_probe = anomaly_auroc(feats[:, trusted_idx], feats[:, test_idx], anomalous, shrinkage)
    return {
        "trusted": trusted,
        "test": test,
        "anomalous": quirky_persona,
        "n_trusted": len(trusted_idx),
        "n_test": len(test_idx),
        "n_anomalous": int(anomalous.sum()),
        "activations": per_layer.tolist(),
        "probe_method": probe_method,
        "probe_scores": float(on_probe[0]),
    }
