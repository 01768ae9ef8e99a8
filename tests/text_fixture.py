"""Tiny language models and a graded reward for the text tests (importable by worker
processes: the reward is pickled by reference)."""

from __future__ import annotations

import torch
from torch import nn

from es_opt.text import CharTokenizer

TOKENIZER = CharTokenizer("0123456789+=")


def digit_reward(prompt: str, completion: str) -> float:
    """Graded, so that members differ: the digit sum of the completion."""
    return float(sum(int(c) for c in completion if c.isdigit()))


def tiny_gpt2(n_layer: int = 2, n_embd: int = 32, n_positions: int = 32) -> nn.Module:
    """A GPT-2 built from its config (Conv1D, Linear head tied to the Embedding, LayerNorm)."""
    import transformers

    torch.manual_seed(0)  # transformers initialises weights from the global generator
    config = transformers.GPT2Config(
        n_layer=n_layer, n_embd=n_embd, n_head=2, vocab_size=TOKENIZER.vocab_size,
        n_positions=n_positions, bos_token_id=1, eos_token_id=1, pad_token_id=0,
    )  # fmt: skip
    return transformers.GPT2LMHeadModel(config).eval()


class PlainLM(nn.Module):
    """A plain LM called as ``net(ids)`` → logits: Embedding, LayerNorm, two Linears."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(TOKENIZER.vocab_size, 16)
        self.norm = nn.LayerNorm(16)
        self.hidden = nn.Linear(16, 16)
        self.out = nn.Linear(16, TOKENIZER.vocab_size)

    def forward(self, ids):
        h = self.embed(ids).cumsum(1)
        return self.out(torch.tanh(self.hidden(self.norm(h))))


def plain_lm() -> nn.Module:
    torch.manual_seed(1)
    return PlainLM()
