"""Evolution strategies for language models: rewards on generated text.

- :class:`TextReward` and :class:`Prompts`: the objective (a user's ``reward(prompt, completion)``
  on greedy or seeded sampled completions; optional per-prompt-group normalisation).
- :func:`generate`: decoding for many members × many prompts, one batched forward per token
  (``transformers`` causal LMs with their key/value cache, or plain ``nn.Module`` LMs).
- :func:`batched_members`: every member's perturbation applied to its own rows of one batch
  (low-rank: a shared GEMM plus a rank-r correction per member).
- :func:`perturbed_in_place`: one member at a time, in place, restored exactly, with one module's
  tensors of extra memory (for models too big for a batch of members).
- :func:`population_members` / :func:`member_deltas_of`: an ESOptimizer population's members,
  from its perturbation family and seeds (what :meth:`TextReward.evaluate_population` uses);
  :func:`population_noise` / :func:`member_deltas`: members from seeds alone, one stream per
  tensor. :class:`CharTokenizer`: a character-level tokenizer for models trained from scratch.

Nothing here imports ``transformers``; a ``transformers`` model works once the user has it
(``pip install "es_opt[text]"``).
"""

from .batched import (
    COVERED_MODULES,
    DenseNoise,
    LowRankNoise,
    UncoveredModuleError,
    batched_members,
)
from .decoding import generate, is_transformers_model
from .inplace import perturbed_in_place
from .members import member_deltas, population_noise, tensor_seed
from .objective import Prompts, TextReward
from .population import member_deltas_of, population_members
from .tokenizer import CharTokenizer

__all__ = [
    "COVERED_MODULES",
    "CharTokenizer",
    "DenseNoise",
    "LowRankNoise",
    "Prompts",
    "TextReward",
    "UncoveredModuleError",
    "batched_members",
    "generate",
    "is_transformers_model",
    "member_deltas",
    "member_deltas_of",
    "perturbed_in_place",
    "population_members",
    "population_noise",
    "tensor_seed",
]
