"""The RWKV World tokenizer (RWKV-5/6/7 World models) as a transformers tokenizer.

The vocabulary ships inside the ``rwkv`` package (``rwkv_vocab_v20230424.txt``), so it loads
offline; encoding is the package's own greedy longest-match trie (``TRIE_TOKENIZER``). Tokens are
byte strings; here each is written as the Latin-1 string of its bytes (a lossless one-to-one
mapping), so every transformers API (padding, ``decode``, ``convert_ids_to_tokens``) works.
Id 0 is ``<|endoftext|>`` (end, padding and start of text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from transformers import PreTrainedTokenizer

from autointerp.adapter import AdapterError

VOCAB_FILE = "rwkv_vocab_v20230424.txt"
EOS = "<|endoftext|>"


def _trie() -> Any:
    try:
        import rwkv
        from rwkv.rwkv_tokenizer import TRIE_TOKENIZER
    except ImportError:
        raise AdapterError(
            "tokenizer 'rwkv-world' needs the rwkv package (pip install rwkv==0.8.32)"
        ) from None
    return TRIE_TOKENIZER(str(Path(rwkv.__file__).parent / VOCAB_FILE))


class RwkvWorldTokenizer(PreTrainedTokenizer):
    """RWKV World tokenizer (vocabulary v20230424, 65,536 ids)."""

    model_input_names: ClassVar[list[str]] = ["input_ids", "attention_mask"]

    def __init__(self, **kwargs: Any) -> None:
        self._trie = _trie()
        self._to_id = {tok.decode("latin-1"): i for tok, i in self._trie.token2idx.items()}
        self._to_id[EOS] = 0
        self._to_token = {i: tok for tok, i in self._to_id.items()}
        kwargs.setdefault("name_or_path", "rwkv-world")
        for key in ("bos_token", "eos_token", "pad_token"):
            kwargs.setdefault(key, EOS)
        super().__init__(**kwargs)

    @property
    def vocab_size(self) -> int:
        return 65536

    def get_vocab(self) -> dict[str, int]:
        return dict(self._to_id)

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        ids = self._trie.encodeBytes(text.encode("utf-8"))
        return [self._to_token[i] for i in ids]

    def _convert_token_to_id(self, token: str) -> int:
        return self._to_id.get(token, 0)

    def _convert_id_to_token(self, index: int) -> str:
        return self._to_token.get(index, "")

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return b"".join(t.encode("latin-1") for t in tokens).decode("utf-8", errors="replace")

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple:
        return ()
