"""SAEs named by SAELens release and id, resolved through SAELens's own registry.

SAELens (``pip install sae-lens``) knows each release's hub repository, the folder of every SAE in
it and the converter its files need; it loads the SAE, and its config and tensors are read here
like a SAELens directory's. Weights come from the Hugging Face cache; offline
(``HF_HUB_OFFLINE=1``) an SAE that is not on disk is a one-line error saying how to get it.
"""

from __future__ import annotations

import difflib
from typing import Any

import torch

from autointerp.features import FeatureSourceError


def _registry() -> dict[str, Any]:
    try:
        from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory
    except ImportError:
        raise FeatureSourceError(
            "feature_source.release: SAEs by release need SAELens: pip install sae-lens "
            "(or give feature_source.path, a directory of SAE files)"
        ) from None
    return dict(get_pretrained_saes_directory())


def _close(name: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        return f"did you mean {', '.join(repr(c) for c in close)}?"
    return f"{len(known)} {what} known, e.g. {', '.join(sorted(known)[:3])}"


def resolve(release: str, sae_id: str) -> tuple[str, str]:
    """The hub repository and the folder within it of SAELens's ``release``/``sae_id``."""
    registry = _registry()
    lookup = registry.get(release)
    if lookup is None:
        raise FeatureSourceError(
            f"feature_source.release: SAELens knows no release {release!r}; "
            + _close(release, list(registry), "releases")
        )
    if sae_id not in lookup.saes_map:
        raise FeatureSourceError(
            f"feature_source.sae_id: release {release!r} has no SAE {sae_id!r}; "
            + _close(sae_id, list(lookup.saes_map), "ids")
        )
    return lookup.repo_id, lookup.saes_map[sae_id]


def _offline(exc: BaseException) -> bool:
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    seen: BaseException | None = exc
    while seen is not None:  # SAELens may wrap the hub's error
        if isinstance(seen, LocalEntryNotFoundError | OfflineModeIsEnabled):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def load_release(
    release: str, sae_id: str, device: str, dtype: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """SAELens's config (as a dict) and the tensors of ``release``/``sae_id``, on ``device``,
    floating tensors in ``dtype`` ("auto": as SAELens loads them, float32)."""
    repo, folder = resolve(release, sae_id)
    import warnings

    from sae_lens import SAE

    try:
        with warnings.catch_warnings():  # advice about loading the model through SAELens
            warnings.simplefilter("ignore", UserWarning)
            sae = SAE.from_pretrained(
                release, sae_id, device=device, dtype="float32" if dtype == "auto" else dtype
            )
    except Exception as exc:
        if _offline(exc):
            raise FeatureSourceError(
                f"feature_source.release: the SAE {release}/{sae_id} (hub repository {repo}, "
                f"folder {folder}) is not on disk and the hub cannot be reached: download it "
                f"once with `hf download {repo} --include '{folder}/*'`, or give "
                "feature_source.path"
            ) from None
        raise FeatureSourceError(
            f"feature_source.release: SAELens could not load {release}/{sae_id}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    tensors = {k: v.detach() for k, v in sae.state_dict().items()}
    return sae.cfg.to_dict(), tensors
