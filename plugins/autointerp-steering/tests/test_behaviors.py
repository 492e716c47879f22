"""Behaviour datasets: the CAA format (JSON arrays and JSONL), hf: datasets, standard names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from autointerp_steering.behaviors import BEHAVIORS, behavior_of, cache_dir, packaged_path
from autointerp_steering.data import DatasetError, load_pairs, load_questions, tokenize_pairs

from autointerp.testing.adapters import build_tiny

CAA_ROWS = [
    {
        "question": "Is the sky green?\n\nChoices:\n (A) Yes, it is green.\n (B) No, it is blue.",
        "answer_matching_behavior": "(A)",
        "answer_not_matching_behavior": "(B)",
    },
    {
        "question": "Do cats bark?\n\nChoices:\n (A) No.\n (B) Yes, loudly.",
        "answer_matching_behavior": ["(B)"],  # CAA's source files sometimes hold a list
        "answer_not_matching_behavior": "(A)",
    },
]


def test_a_caa_json_array_and_its_jsonl_give_the_same_pairs(tmp_path: Path) -> None:
    array = tmp_path / "caa.json"
    array.write_text(json.dumps(CAA_ROWS, indent=4))
    lines = tmp_path / "caa.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in CAA_ROWS))
    pairs = load_pairs(array)
    assert pairs == load_pairs(lines)
    assert pairs[0].prompt == CAA_ROWS[0]["question"] + "\n\nAnswer: "
    assert [(p.positive, p.negative) for p in pairs] == [("(A)", "(B)"), ("(B)", "(A)")]
    custom = load_pairs(array, template="[INST] {question} [/INST] ")
    assert custom[1].prompt == "[INST] " + CAA_ROWS[1]["question"] + " [/INST] "


def test_the_answer_token_is_the_letter(autointerp_tiny_dirs, tmp_path: Path) -> None:
    lm = build_tiny("gpt2", autointerp_tiny_dirs["gpt2"])
    array = tmp_path / "caa.json"
    array.write_text(json.dumps(CAA_ROWS))
    toks = tokenize_pairs(lm, load_pairs(array))
    decode = lm.tokenizer.decode
    assert [(decode([t.positive]), decode([t.negative])) for t in toks] == [("A", "B"), ("B", "A")]
    assert all(decode(list(t.context)).endswith("Answer: (") for t in toks)
    with pytest.raises(DatasetError, match="no chat template"):
        load_pairs(array, template="chat", tokenizer=lm.tokenizer)
    with pytest.raises(
        DatasetError, match=r"expected plain, chat or a text containing \{question\}"
    ):
        load_pairs(array, template="Q: ")


@pytest.mark.parametrize("name", list(BEHAVIORS))
def test_every_standard_behaviour_has_a_packaged_sample(name: str) -> None:
    pairs = load_pairs(name)
    assert len(pairs) >= 5
    assert {p.positive for p in pairs} == {"(A)", "(B)"}, "alternate the matching letter"
    assert all("Choices:" in p.prompt and p.prompt.endswith("Answer: ") for p in pairs)
    questions = load_questions(name)
    assert len(questions) >= 3
    assert all(prompt.startswith("Question: ") for _, prompt in questions)
    assert behavior_of(name) == name and behavior_of(f"caa:{name}:test") == name


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="did you mean 'sycophancy'"):
        load_pairs("sycophnacy")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(DatasetError, match=r"bad.json\[1\]: expected a JSON object, got int"):
        load_pairs(bad)
    bad.write_text('[{"question": "q", "answer_matching_behavior": "(A)"}]')
    with pytest.raises(DatasetError, match=r"bad.json\[1\]: missing field 'negative'"):
        load_pairs(bad)
    bad.write_text("[{")
    with pytest.raises(DatasetError, match="invalid JSON"):
        load_pairs(bad)


def test_open_ended_questions_drop_the_choices(tmp_path: Path) -> None:
    array = tmp_path / "caa.json"
    array.write_text(json.dumps(CAA_ROWS))
    assert [q for q, _ in load_questions(array)] == ["Is the sky green?", "Do cats bark?"]


def test_hf_datasets_load_through_datasets(tmp_path: Path) -> None:
    """``hf:`` goes through ``datasets.load_dataset``; a local dataset folder needs no network."""
    pytest.importorskip("datasets")
    folder = tmp_path / "behaviour-set"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in CAA_ROWS[:1]))
    pairs = load_pairs(f"hf:{folder}")
    assert pairs == load_pairs(folder / "train.jsonl")


def test_hub_sources_fail_offline_in_one_line(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DatasetError) as info:
        load_pairs("hf:someone/no-such-caa-set")
    assert "hf:someone/no-such-caa-set: cannot load" in str(info.value)
    assert "\n" not in str(info.value)
    monkeypatch.setenv("AUTOINTERP_CACHE", str(tmp_path))
    with pytest.raises(DatasetError, match=r"offline.*generate/sycophancy/generate_dataset.json"):
        load_pairs("caa:sycophancy")
    # once the published file is in the cache, it is read from there
    cached = cache_dir() / "test/sycophancy/test_dataset_ab.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps(CAA_ROWS))
    assert len(load_pairs("caa:sycophancy:test")) == 2
    with pytest.raises(DatasetError, match="unknown split 'dev'"):
        load_pairs("caa:sycophancy:dev")


def test_packaged_files_are_in_the_caa_format() -> None:
    for name in BEHAVIORS:
        rows = json.loads(packaged_path(name).read_text())
        assert all(
            set(r) == {"question", "answer_matching_behavior", "answer_not_matching_behavior"}
            for r in rows
        )
        assert all(
            set(r) == {"question"}
            for r in json.loads(packaged_path(name, "open_ended").read_text())
        )
