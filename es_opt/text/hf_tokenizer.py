"""A ``transformers`` tokenizer with :class:`~es_opt.text.CharTokenizer`'s ids, built offline.

TRL's trainers need a ``transformers`` tokenizer (``GRPOTrainer``'s ``processing_class``: called
on text, ``batch_decode``, a padding side, a chat template). :func:`char_tokenizer_fast` builds
one from the ``tokenizers`` library with no file and no download: a word-level vocabulary of
single characters split one by one, padding id 0 and end-of-text id 1, so a model trained with a
:class:`~es_opt.text.CharTokenizer` runs unchanged under TRL. Requires ``transformers``
(``pip install "es_opt[text]"``).
"""

from __future__ import annotations

from typing import Any

from ..errors import require
from .tokenizer import CharTokenizer

__all__ = ["PLAIN_CHAT_TEMPLATE", "char_tokenizer_fast"]

PLAIN_CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"
"""A chat template that writes the messages' contents one after another (no role markers): a
conversational prompt ``[{"role": "user", "content": "12+34="}]`` renders as ``"12+34="``."""

PAD, EOS = "<pad>", "<eos>"


def char_tokenizer_fast(alphabet: str | CharTokenizer, *, chat_template: str | None = None) -> Any:
    """A ``transformers.PreTrainedTokenizerFast`` with the ids of ``CharTokenizer(alphabet)``.

    Args:
        alphabet: the characters (ids ``2, 3, …``), or a :class:`CharTokenizer`.
        chat_template: a Jinja chat template (e.g. :data:`PLAIN_CHAT_TEMPLATE`), or ``None``.

    Example:
        >>> tokenizer = char_tokenizer_fast("0123456789+=")
        >>> tokenizer("12+3=")["input_ids"] == CharTokenizer("0123456789+=").encode("12+3=")
        True
        >>> tokenizer.batch_decode([[3, 4, 1, 0]], skip_special_tokens=True)
        ['12']
    """
    if isinstance(alphabet, CharTokenizer):
        alphabet = alphabet.alphabet
    chars = CharTokenizer(alphabet)  # validates the alphabet
    if PAD in alphabet or EOS in alphabet:
        raise ValueError(f"alphabet may not contain {PAD!r} or {EOS!r}")
    tokenizers = require("tokenizers", "text", "char_tokenizer_fast")
    transformers = require("transformers", "text", "char_tokenizer_fast")
    vocab = {PAD: chars.pad_token_id, EOS: chars.eos_token_id}
    vocab.update({char: chars.encode(char)[0] for char in alphabet})
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token=None))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Split("", "isolated")
    backend.decoder = tokenizers.decoders.Fuse()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer
