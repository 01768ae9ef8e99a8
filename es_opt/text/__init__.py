"""Evolution strategies for language models: rewards on generated text.

- :class:`TextReward` and :class:`Prompts`: the objective (a user's ``reward(prompt, completion)``
  on greedy or seeded sampled completions; optional per-prompt-group normalisation).
- :func:`generate`: decoding for many members × many prompts, one batched forward per token
  (``transformers`` causal LMs with their key/value cache, or plain ``nn.Module`` LMs).
- :func:`batched_members`: every member's perturbation applied to its own rows of one batch
  (low-rank: a shared GEMM plus a rank-r correction per member).
- :func:`perturbed_in_place`: one member at a time, in place, restored exactly, with one module's
  tensors of extra memory (for models too big for a batch of members).
- :func:`population_members` / :func:`member_deltas_of` / :func:`member_values_of`: an
  ESOptimizer population's members as these two take them, re-arranged from the core's noise
  (:mod:`es_opt.perturbations`), bit for bit the population's own members (what
  :meth:`TextReward.evaluate_population` uses);
  :func:`population_noise` / :func:`member_deltas`: the same for parameters and bare seeds.
  :class:`CharTokenizer`: a character-level tokenizer for models trained from scratch.
- Hugging Face TRL's inputs: :class:`TRLReward` (reward functions with TRL's signature and
  reward models, weighted as ``GRPOConfig.reward_weights``; :class:`RewardFunctions`),
  :class:`DatasetSampler` / :func:`dataset_prompts` (prompts from a ``datasets.Dataset``, plain or
  conversational, other columns passed to the rewards), :func:`char_tokenizer_fast`.
- Before training: :func:`probe_sigma` (how far members move from the centre per σ, and a
  recommended σ) and :func:`regime_report` (pass@k under sampling: does GRPO get a signal?).

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
from .datasets_prompts import DatasetPrompts, DatasetSampler, dataset_prompts
from .decoding import generate, is_transformers_model
from .hf_tokenizer import PLAIN_CHAT_TEMPLATE, char_tokenizer_fast
from .inplace import perturbed_in_place
from .member_noise import (
    member_deltas,
    member_deltas_of,
    member_values_of,
    population_members,
    population_noise,
)
from .objective import Prompts, TextReward
from .regime import RegimeReport, pass_at_k, regime_report
from .sigma_probe import SigmaProbe, SigmaProbeRow, probe_sigma, recommend_sigma
from .tokenizer import CharTokenizer
from .trl_objective import TRLReward
from .trl_rewards import RewardFunctions, reward_model_scores

__all__ = [
    "COVERED_MODULES",
    "PLAIN_CHAT_TEMPLATE",
    "CharTokenizer",
    "DatasetPrompts",
    "DatasetSampler",
    "DenseNoise",
    "LowRankNoise",
    "Prompts",
    "RegimeReport",
    "RewardFunctions",
    "SigmaProbe",
    "SigmaProbeRow",
    "TRLReward",
    "TextReward",
    "UncoveredModuleError",
    "batched_members",
    "char_tokenizer_fast",
    "dataset_prompts",
    "generate",
    "is_transformers_model",
    "member_deltas",
    "member_deltas_of",
    "member_values_of",
    "pass_at_k",
    "perturbed_in_place",
    "population_members",
    "population_noise",
    "probe_sigma",
    "recommend_sigma",
    "regime_report",
    "reward_model_scores",
]
