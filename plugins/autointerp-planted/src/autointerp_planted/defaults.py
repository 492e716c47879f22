"""The default planted set: base rules crossed with difficulties, generated from a seed.

Each base rule is (description, rule, key tokens). Word-set rules fire with word-level tokenizers
(SmolLM2's); character rules and the context rules over punctuation fire with any tokenizer,
byte-level ones included (the tests' tiny tokenizer), so a run on either finds latents to explain.
Every base is planted in seven variants: pure, graded, noisy at three rates, and polysemantic with
two other bases; the order is shuffled by the seed so any prefix of the set mixes them.
"""

from __future__ import annotations

import random
from typing import Any

WORD = r"^\s*[A-Za-z_]\w*$"
DIGITS = r"^\s*\d+\s*$"


def _words(*words: str) -> dict[str, Any]:
    return {"kind": "token", "match": {"words": list(words)}}


def _regex(pattern: str) -> dict[str, Any]:
    return {"kind": "token", "match": {"regex": pattern}}


#: (description, rule, key tokens an explanation should name)
BASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "days of the week",
        _words("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        ["monday", "friday"],
    ),
    (
        "names of months",
        _words(
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ),
        ["january", "march"],
    ),
    (
        "number words",
        _words(
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "hundred",
        ),
        ["one", "two"],
    ),
    (
        "control-flow keywords",
        _words("if", "elif", "else", "while", "for", "break", "continue"),
        ["if", "else"],
    ),
    ("the import keywords import, from and as", _words("import", "from", "as"), ["import"]),
    ("True, False and None", _words("true", "false", "none"), ["true", "false", "none"]),
    ("the boolean operators and, or, not", _words("and", "or", "not"), ["and", "or", "not"]),
    ("articles (the, a, an)", _words("the", "a", "an"), ["the"]),
    ("personal pronouns", _words("it", "they", "he", "she", "we", "you", "i"), ["it", "they"]),
    (
        "modal verbs",
        _words("can", "may", "must", "should", "will", "would", "could"),
        ["can", "must"],
    ),
    (
        "words about errors and exceptions",
        _words(
            "exception", "exceptions", "error", "errors", "raise", "raised", "except", "finally"
        ),
        ["error", "exception"],
    ),
    ("colour names", _words("red", "green", "blue", "yellow", "black", "white"), ["red", "blue"]),
    (
        "comparison words",
        _words("less", "greater", "equal", "than", "larger", "smaller"),
        ["less", "greater"],
    ),
    (
        "container type names",
        _words("list", "lists", "dict", "dictionary", "tuple", "set"),
        ["list", "dict"],
    ),
    ("prepositions", _words("in", "on", "at", "of", "to", "with", "by"), ["of", "in"]),
    ("return and yield", _words("return", "returns", "yield", "yields"), ["return", "yield"]),
    (
        "words for functions and methods",
        _words("function", "functions", "method", "methods", "call", "called"),
        ["function", "method"],
    ),
    ("numbers written in digits", _regex(DIGITS), []),
    ("capital letters", _regex(r"^\s*[A-Z]"), []),
    ("full stops", _regex(r"^\s*\.\s*$"), ["."]),
    ("commas", _regex(r"^\s*,\s*$"), [","]),
    ("colons", _regex(r"^\s*:\s*$"), [":"]),
    ("underscores", _regex(r"_"), ["_"]),
    ("quotation marks", _regex(r"[\"']"), []),
    ("line breaks", _regex(r"\n"), []),
    ("equals signs", _regex(r"="), ["="]),
    ("asterisks", _regex(r"\*"), ["*"]),
    ("hyphens and dashes", _regex(r"^\s*-+\s*$"), []),
    (
        "the name after 'def'",
        {"kind": "after", "prev": {"words": ["def"]}, "match": {"regex": WORD}},
        ["def"],
    ),
    (
        "the name after 'class'",
        {"kind": "after", "prev": {"words": ["class"]}, "match": {"regex": WORD}},
        ["class"],
    ),
    (
        "the module name after 'import'",
        {"kind": "after", "prev": {"words": ["import"]}, "match": {"regex": WORD}},
        ["import"],
    ),
    (
        "the first token after an opening parenthesis",
        {"kind": "after", "prev": {"regex": r"\($"}},
        [],
    ),
    (
        "an attribute or method name after a dot",
        {"kind": "after", "prev": {"regex": r"^\.$"}, "match": {"regex": r"^[A-Za-z_]"}},
        [],
    ),
    (
        "digits inside square brackets",
        {"kind": "inside", "brackets": "[]", "match": {"regex": r"\d"}},
        [],
    ),
    ("text inside parentheses", {"kind": "inside", "brackets": "()"}, []),
    ("text inside curly braces", {"kind": "inside", "brackets": "{}"}, []),
    (
        "numbers shortly after an equals sign",
        {"kind": "cooccur", "with": {"regex": "="}, "window": 8, "match": {"regex": r"\d"}},
        [],
    ),
    (
        "error words in a sentence that mentions raising",
        {
            "kind": "cooccur",
            "with": {"words": ["raise", "raises", "raised"]},
            "window": 16,
            "match": {"regex": r"(?i)error|exception"},
        },
        ["error", "raise"],
    ),
    (
        "tokens shortly after an @ sign",
        {"kind": "cooccur", "with": {"regex": "@"}, "window": 4},
        ["@"],
    ),
    ("the first two tokens of each text window", {"kind": "position", "lo": 0, "hi": 2}, []),
    (
        "letters shortly after a digit",
        {"kind": "cooccur", "with": {"regex": r"\d"}, "window": 3, "match": {"regex": r"[a-z]"}},
        [],
    ),
]

NOISE_RATES = (0.002, 0.005, 0.02)


def default_set(seed: int = 0) -> list[dict[str, Any]]:
    """The default planted latents (``7 * len(BASES)``), reproducible from ``seed``."""
    rng = random.Random(seed)
    latents: list[dict[str, Any]] = []
    for i, (description, rule, keys) in enumerate(BASES):
        first = {**rule, "description": description, "keys": keys}

        def latent(mode: str, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "mode": mode,
                "rules": rules,
                "strength": round(rng.uniform(0.5, 4.0), 3),
                "noise": 0.0,
                "graded": False,
                **extra,
            }

        latents.append(latent("pure", [first]))
        latents.append(latent("graded", [first], graded=True))
        for rate in NOISE_RATES:
            latents.append(latent("noisy", [first], noise=rate))
        others = rng.sample([j for j in range(len(BASES)) if j != i], 2)
        for j in others:
            d2, r2, k2 = BASES[j]
            second = {**r2, "description": d2, "keys": k2}
            latents.append(latent("polysemantic", [first, second]))
    rng.shuffle(latents)
    return latents
