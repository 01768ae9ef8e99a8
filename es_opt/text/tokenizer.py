"""A character-level tokenizer: the smallest thing that turns prompts into token ids.

Any object with ``encode(text) -> list[int]`` and ``decode(ids) -> str`` works with
:class:`~es_opt.text.TextReward` (a Hugging Face tokenizer does); this one needs no files and
no download, so small models can be trained from scratch (see ``sample_scripts/finetune.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["CharTokenizer"]


class CharTokenizer:
    """One token per character of ``alphabet``, plus a padding token (id 0) and an end-of-text
    token (id 1).

    Args:
        alphabet: the characters, each once; their ids are ``2, 3, …`` in this order.

    Example:
        >>> tok = CharTokenizer("0123456789+=")
        >>> tok.encode("12+3=")
        [3, 4, 12, 5, 13]
        >>> tok.decode([3, 4, 1, 5])  # stops at the end-of-text token
        '12'
        >>> tok.vocab_size, tok.pad_token_id, tok.eos_token_id
        (14, 0, 1)
    """

    pad_token_id = 0
    eos_token_id = 1

    def __init__(self, alphabet: str):
        if len(set(alphabet)) != len(alphabet) or not alphabet:
            raise ValueError(f"alphabet must be non-empty characters, each once, got {alphabet!r}")
        self.alphabet = alphabet
        self._ids = {char: index + 2 for index, char in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        return len(self.alphabet) + 2

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; a character outside the alphabet is a ``ValueError``."""
        try:
            return [self._ids[char] for char in text]
        except KeyError as exc:
            raise ValueError(
                f"character {exc.args[0]!r} of {text!r} is not in the tokenizer's alphabet "
                f"{self.alphabet!r}"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` up to the first end-of-text token; padding is skipped."""
        chars = []
        for token in ids:
            token = int(token)
            if token == self.eos_token_id:
                break
            if token >= 2:
                chars.append(self.alphabet[token - 2])
        return "".join(chars)

    def save(self, path: str | Path) -> None:
        """Writes the alphabet as JSON (``{"alphabet": ...}``)."""
        Path(path).write_text(json.dumps({"alphabet": self.alphabet}))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        return cls(json.loads(Path(path).read_text())["alphabet"])

    def __repr__(self) -> str:
        return f"CharTokenizer({self.alphabet!r})"
