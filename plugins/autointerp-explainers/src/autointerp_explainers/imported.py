"""The ``imported`` explainer: explanations others published, read from a file, so that our scorers
score them like our own. It makes no LLM call; a latent the file has no explanation for fails with
``no imported explanation for latent N`` (and why, when its record was skipped)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autointerp.errors import AutointerpError
from autointerp.types import Example, Explanation, LatentRef
from autointerp_explainers.import_formats import (
    Imported,
    ImportedFile,
    ImportFormatError,
    content_sha256,
    load_explanations,
    resolve_label,
)
from autointerp_explainers.plugin import ImportedConfig


class NoImportedExplanation(AutointerpError):
    """The imported file holds no (usable) explanation for a latent."""


class ImportedExplainer:
    """Returns the imported explanation of each latent; the file is read once, on first use."""

    name = "imported"
    needs: frozenset[str] = frozenset()

    def __init__(self, config: ImportedConfig) -> None:
        self.config = config
        self._file: ImportedFile | None = None
        self._tables: dict[str, tuple[str, dict[int, Imported]]] = {}

    @property
    def prompt_version(self) -> str:
        """Recorded in every explanation's provenance: which file content it came from."""
        return f"imported:{(self.config.sha256 or '')[:16]}"

    def _loaded(self) -> ImportedFile:
        if self._file is None:
            path = Path(self.config.path).expanduser()
            if self.config.sha256 and content_sha256(path) != self.config.sha256:
                raise ImportFormatError(
                    f"{path} changed while the run was starting: rerun to pin its new content"
                )
            self._file = load_explanations(path, self.config.format, pick=self.config.pick)
        return self._file

    def _table(self, source: str) -> tuple[str, dict[int, Imported]]:
        if source not in self._tables:
            file = self._loaded()
            label = resolve_label(file, source, source=self.config.source, layer=self.config.layer)
            self._tables[source] = (label, file.labels[label])
        return self._tables[source]

    async def explain(
        self, latent: LatentRef, examples: Sequence[Example], llm: Any, **inputs: Any
    ) -> Explanation:
        label, table = self._table(latent.source)
        record = table.get(latent.index)
        if record is None:
            why = self._loaded().why_missing(label, latent.index)
            raise NoImportedExplanation(
                f"no imported explanation for latent {latent.index} in {self.config.path} "
                f"({label})" + (f": its record was skipped: {why}" if why else "")
            )
        meta = {
            "imported_from": str(Path(self.config.path).expanduser()),
            "format": self._loaded().format,
            "imported_source": label,
            "where": record.where,
        }
        if record.kind:
            meta["imported_explainer"] = record.kind
        if record.model:
            meta["model"] = record.model
        return Explanation(latent, record.text, self.name, meta=meta)
