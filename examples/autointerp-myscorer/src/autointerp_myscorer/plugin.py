"""Registers the scorer. Kept light: autointerp imports this module for every command."""

from __future__ import annotations

from pydantic import Field

from autointerp import Register, hookimpl
from autointerp.config import ComponentConfig


class MyScorerConfig(ComponentConfig):
    """Options of `myscorer`, validated from the run config's `[[scorers]]` table."""

    min_word_length: int = Field(3, ge=1, description="shorter explanation words are ignored")
    case_sensitive: bool = Field(False, description="match words with their case")


@hookimpl
def autointerp_register_scorers(register: Register) -> None:
    register(
        "myscorer",
        "autointerp_myscorer.scorer:KeywordScorer",  # imported only when a run builds it
        config=MyScorerConfig,
        description="AUROC of explanation keywords found in activating vs other examples",
    )
