"""Prompt templates shipped as files with a plugin, and the subject model's tokens made safe and
marked inside a prompt: what every explainer and LLM scorer builds its messages from.

A template is ``<folder>/<name>.v<version>.toml`` inside a plugin's package: ``name``,
``version``, ``system``, optional ``[[few_shot]]`` turns (``user``/``assistant``), an optional
``reask`` message and a ``[turn]`` whose ``user`` text is a :class:`string.Template`. The system
text and few-shot turns are the stable prefix sent byte-identical for every latent, so provider
prefix caches hit; a change to them belongs in a new version file. The file's sha256 is recorded
as provenance.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from itertools import islice
from string import Template
from typing import Any

from autointerp.llm import DEFAULT_REASK, LLMError, Message


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned prompt file: system text and few-shot turns (the stable prefix), the turn."""

    name: str
    version: int
    system: str
    few_shot: tuple[tuple[str, str], ...]
    turn: Template
    sha256: str
    #: the re-ask after an unusable answer (``{error}`` is the reason)
    reask: str = DEFAULT_REASK

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def prefix(self) -> list[Message]:
        """System + few-shot messages: byte-identical for every latent (prefix caches hit)."""
        out = [Message("system", self.system, cache=not self.few_shot)]
        for i, (user, assistant) in enumerate(self.few_shot):
            out.append(Message("user", user))
            out.append(Message("assistant", assistant, cache=i == len(self.few_shot) - 1))
        return out

    def messages(self, **fields: Any) -> list[Message]:
        return [*self.prefix(), Message("user", self.turn.substitute(fields))]


@cache
def load_template(package: str, prompt_id: str, *, folder: str = "prompts") -> PromptTemplate:
    """The template ``<folder>/<prompt_id>.toml`` shipped in ``package`` (an import name);
    raises :class:`~autointerp.llm.LLMError` naming the ones available."""
    where = files(package).joinpath(folder)
    try:
        raw = where.joinpath(f"{prompt_id}.toml").read_bytes()
    except FileNotFoundError:
        known = sorted(
            p.name.removesuffix(".toml") for p in where.iterdir() if p.name.endswith(".toml")
        )
        raise LLMError(
            f"no prompt template '{prompt_id}' in {package}; available: {', '.join(known)}"
        ) from None
    data = tomllib.loads(raw.decode("utf-8"))
    return PromptTemplate(
        name=data["name"],
        version=int(data["version"]),
        system=data["system"],
        few_shot=tuple((s["user"], s["assistant"]) for s in data.get("few_shot", ())),
        turn=Template(data["turn"]["user"]),
        sha256=hashlib.sha256(raw).hexdigest(),
        reask=data.get("reask", DEFAULT_REASK),
    )


# special tokens of the subject model (a document separator such as <|im_end|>): inside a prompt
# a chat server may parse them as the LLM's own control tokens and end the user turn early
SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|<unk>|<pad>")


@lru_cache(maxsize=1 << 17)  # a vocabulary's worth: tokens repeat across every prompt
def clean(token: str) -> str:
    """A token made safe for a one-line, ``<<marked>>`` rendering: newlines and special tokens
    shown as ``\\n``, and no ``<<``/``>>`` of its own."""
    token = SPECIAL_TOKEN.sub("\n", token)
    return token.replace("\n", "\\n").replace("<<", "< <").replace(">>", "> >")


_MARKED_RUN = re.compile(rb"\x01+")  # a run of marked tokens in a 0/1 byte per token


def render(tokens: Sequence[str], marks: Sequence[bool] | None = None) -> str:
    """Tokens as one line (each :func:`clean`), runs of marked tokens wrapped in ``<<...>>``
    (after a token's leading space)."""
    plain = "".join(tokens)
    # what clean() changes holds "<", ">" or a newline: without them every token is its own clean
    # form, and the text is made without a call per token (twice per example of every prompt)
    as_is = not ("<" in plain or ">" in plain or "\n" in plain)
    if marks is None or not any(marks):
        return plain.strip() if as_is else "".join(map(clean, tokens)).strip()
    # a loop per run of marks, not per token: called for every example of every prompt
    pieces = list(tokens) if as_is else list(map(clean, tokens))
    for run in _MARKED_RUN.finditer(bytes(map(bool, islice(marks, len(pieces))))):
        start, end = run.span()
        tok = pieces[start]
        body = tok.lstrip()
        pieces[start] = tok[: len(tok) - len(body)] + "<<" + body
        pieces[end - 1] += ">>"
    return "".join(pieces).strip()


def numbered(texts: Sequence[str], start: int = 1) -> str:
    """``Example <n>: <text>`` lines, numbered from ``start``."""
    return "\n".join(f"Example {n}: {text}" for n, text in enumerate(texts, start))
