"""autointerp.prompts: prompt templates shipped with a plugin, and subject-model tokens made safe
and marked inside a prompt."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from autointerp.llm import DEFAULT_REASK, LLMError, Message
from autointerp.prompts import clean, load_template, numbered, render

TEMPLATE = """name = "demo"
version = 2
system = "You explain."
reask = "Bad: {error}"

[[few_shot]]
user = "Example 1: <<Paris>>"
assistant = "Explanation: cities"

[turn]
user = "$examples"
"""


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    root = tmp_path / "demo_prompts_pkg"
    (root / "prompts").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "prompts" / "demo.v2.toml").write_text(TEMPLATE)
    (root / "prompts" / "bare.v1.toml").write_text(
        'name = "bare"\nversion = 1\nsystem = "S"\n[turn]\nuser = "$x"\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "demo_prompts_pkg"
    sys.modules.pop("demo_prompts_pkg", None)
    load_template.cache_clear()


def test_a_template_is_read_from_the_package_folder(package: str) -> None:
    t = load_template(package, "demo.v2")
    assert t.id == "demo.v2" and t.reask == "Bad: {error}"
    assert t.sha256 == hashlib.sha256(TEMPLATE.encode()).hexdigest()
    assert t.messages(examples="Example 1: x") == [
        Message("system", "You explain.", cache=False),
        Message("user", "Example 1: <<Paris>>"),
        Message("assistant", "Explanation: cities", cache=True),  # the end of the stable prefix
        Message("user", "Example 1: x"),
    ]


def test_without_few_shot_the_system_message_ends_the_prefix(package: str) -> None:
    t = load_template(package, "bare.v1")
    assert t.prefix() == [Message("system", "S", cache=True)]
    assert t.reask == DEFAULT_REASK


def test_an_unknown_template_names_the_available_ones(package: str) -> None:
    with pytest.raises(LLMError, match=r"no prompt template 'demo.v9'.*bare.v1, demo.v2"):
        load_template(package, "demo.v9")


def test_special_tokens_and_newlines_render_as_a_visible_line_break() -> None:
    assert clean("<|im_end|>") == "\\n"
    assert clean(" </s>") == " \\n"
    assert clean("a\nb") == "a\\nb"
    assert clean("x<<y>>") == "x< <y> >"  # a token cannot forge a mark


def test_marked_runs_are_wrapped_after_the_leading_space() -> None:
    assert render(["a", " b", " c", " d"], [False, True, True, False]) == "a <<b c>> d"
    assert render(["a", " b"], [False, True]) == "a <<b>>"
    assert render([" a", " <|endoftext|>"]) == "a \\n"
    assert numbered(["x", "y"], start=3) == "Example 3: x\nExample 4: y"


def _render_per_token(tokens: list[str], marks: list[bool]) -> str:
    """The original per-token rendering, kept as the reference the run-based one must match."""
    text, inside = "", False
    for raw, marked in zip(tokens, marks, strict=False):
        tok = clean(raw)
        if marked and not inside:
            body = tok.lstrip()
            text, tok, inside = text + tok[: len(tok) - len(body)] + "<<", body, True
        elif not marked and inside:
            text, inside = text + ">>", False
        text += tok
    return (text + (">>" if inside else "")).strip()


def test_run_based_rendering_matches_the_per_token_one() -> None:
    import random

    rng = random.Random(0)
    pieces = ["a", " b", "  c", " ", "", "\n", " <|endoftext|>", "x>>", " <<y", "\t z"]
    for _ in range(2000):
        n = rng.randrange(0, 12)
        tokens = [rng.choice(pieces) for _ in range(n)]
        marks = [rng.random() < 0.4 for _ in range(n)]
        assert render(tokens, marks) == _render_per_token(tokens, marks), (tokens, marks)
    # marks may be numpy booleans or 0/1 ints; a mark past the last token is ignored
    assert render(["a", " b", " c"], [0, 1, 1, 1]) == "a <<b c>>"
    assert render([" a", " b"], [True, True]) == "<<a b>>"


def test_tokens_without_angle_brackets_or_newlines_render_as_cleaning_each_would() -> None:
    import random

    rng = random.Random(1)
    plain = ["a", " b", "  c", " ", "", "\t z", "é", " 12", "|", "s"]
    special = ["\n", " <|endoftext|>", "x>>", " <<y", "<", ">", "<|end", "oftext|>", "</s>"]
    for _ in range(2000):
        pool = plain if rng.random() < 0.5 else plain + special
        tokens = tuple(rng.choice(pool) for _ in range(rng.randrange(0, 16)))
        marks = [rng.random() < 0.3 for _ in tokens]
        reference = "".join(map(clean, tokens)).strip()
        assert render(tokens) == reference, tokens
        assert render(tokens, [False] * len(tokens)) == reference, tokens
        assert render(tokens, marks) == _render_per_token(list(tokens), marks), (tokens, marks)
    # a special token or a "<<" split over two tokens is not one: each token is cleaned alone
    assert render(["<|end", "oftext|>"]) == "<|endoftext|>"
    assert render(["<", "<", " x"], [False, False, True]) == "<< <<x>>"
