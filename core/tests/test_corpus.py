"""Corpus input: txt/jsonl/parquet files and folders into fixed-length windows, BOS, shuffling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autointerp.corpus import CorpusError, iter_texts, token_windows
from autointerp.testing.adapters import build_tiny, save_tiny, tiny_model

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory):
    return build_tiny("gpt2", save_tiny(tiny_model("gpt2"), tmp_path_factory.mktemp("gpt2")))


def test_reads_txt_jsonl_parquet_and_folders(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first para\nline two\n\nsecond para\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "from jsonl"}) + "\n\n")
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["from parquet", None]}), tmp_path / "c.parquet")
    assert list(iter_texts(tmp_path)) == [
        "first para\nline two\n",
        "second para\n",
        "from jsonl",
        "from parquet",
    ]


def test_bad_corpus_input_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="corpus not found"):
        list(iter_texts(tmp_path / "missing.txt"))
    (tmp_path / "x.jsonl").write_text('{"body": "no text field"}\n')
    with pytest.raises(CorpusError, match=r"x\.jsonl:1: expected a JSON object with a 'text'"):
        list(iter_texts(tmp_path / "x.jsonl"))
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["a"]}), tmp_path / "y.parquet")
    with pytest.raises(CorpusError, match="no 'text' column"):
        list(iter_texts(tmp_path / "y.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match=r"no \.txt, \.jsonl or \.parquet files"):
        list(iter_texts(tmp_path / "empty"))


TEXTS = [f"text number {i} says hello" for i in range(60)]


def test_windows_cover_the_token_stream_in_order(adapter) -> None:
    windows = list(token_windows(adapter, TEXTS, seq_len=16, batch_size=4))
    assert windows and all(w.shape == (4, 16) for w in windows)
    stream = torch.cat(windows).flatten().tolist()
    eos = adapter.tokenizer.eos_token_id
    expected: list[int] = []
    for text in TEXTS:
        expected += [*adapter.tokenize([text]).input_ids[0].tolist(), eos]
    assert stream == expected[: len(stream)]


def test_bos_and_seeded_shuffle(adapter) -> None:
    plain = torch.cat(list(token_windows(adapter, TEXTS, seq_len=8, batch_size=2, bos=True)))
    bos = adapter.tokenizer.bos_token_id
    assert (plain[:, 0] == bos).all()
    shuffle = dict(seq_len=8, batch_size=2, bos=True, shuffle_buffer=4)
    a = torch.cat(list(token_windows(adapter, TEXTS, seed=1, **shuffle)))
    b = torch.cat(list(token_windows(adapter, TEXTS, seed=1, **shuffle)))
    c = torch.cat(list(token_windows(adapter, TEXTS, seed=2, **shuffle)))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, plain)
    assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, plain.tolist()))


def test_a_binary_jsonl_and_an_empty_corpus_are_one_line_errors(adapter, tmp_path: Path) -> None:
    binary = tmp_path / "data.jsonl"
    binary.write_bytes(b'{"text": "fine"}\n\xe8\x00\xff\xfe garbage\n')
    with pytest.raises(CorpusError, match=r"data\.jsonl:2: not UTF-8 text; is it a binary file"):
        list(iter_texts(binary))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(CorpusError, match="holds too little text for one batch"):
        list(token_windows(adapter, iter_texts(empty), seq_len=8, batch_size=2))
