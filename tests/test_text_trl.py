"""TRL's inputs: reward functions with TRL's signature (TRL's own helpers among them), weights,
dataset columns, reward models, conversational prompts, and the errors for bad rewards."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from es_opt.text import (
    PLAIN_CHAT_TEMPLATE,
    CharTokenizer,
    DatasetSampler,
    Prompts,
    RewardFunctions,
    TRLReward,
    char_tokenizer_fast,
    dataset_prompts,
    population_noise,
    reward_model_scores,
)

datasets = pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")
trl_rewards = pytest.importorskip("trl.rewards")

ALPHABET = "0123456789+=<>/abehiknrstuy"
ROLES = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


class Scripted(nn.Module):
    """A plain LM that writes a fixed completion (then the end token) after each known prompt."""

    def __init__(self, tokenizer, script: dict[str, str], vocab: int):
        super().__init__()
        self.vocab = vocab
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.script = {
            tuple(tokenizer.encode(p)): tokenizer.encode(c) + [tokenizer.eos_token_id]
            for p, c in script.items()
        }

    def forward(self, ids):
        nexts = []
        for row in ids.tolist():
            prompt = next(k for k in self.script if tuple(row[: len(k)]) == k)
            completion = self.script[prompt]
            nexts.append(completion[min(len(row) - len(prompt), len(completion) - 1)])
        hot = nn.functional.one_hot(torch.tensor(nexts), self.vocab).float() * 10 + self.bias
        return hot.unsqueeze(1).expand(-1, ids.shape[1], -1)


def test_trl_helpers_score_as_trl_does_with_weights_and_completion_ids():
    tokenizer = char_tokenizer_fast(ALPHABET, chat_template=PLAIN_CHAT_TEMPLATE)
    script = {"1+1=": "<think>a</think>b", "2+2=": "<think>a"}
    net = Scripted(tokenizer, script, len(tokenizer))
    data = datasets.Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": p}] for p in script]}
    )
    overlong = trl_rewards.get_soft_overlong_punishment(max_completion_len=10, soft_punish_cache=5)
    objective = TRLReward(
        tokenizer,
        [trl_rewards.think_format_reward, overlong],
        reward_weights=[1.0, 0.5],
        max_new_tokens=20,
    )
    samples = dataset_prompts(data, tokenizer)
    tokens = objective.generated_tokens(net, samples)[0]
    rewards = objective.score(samples, tokens)
    # TRL's functions on the completions in TRL's conversational form, and on the ids with the
    # end token (18 and 9 ids: over the limit, and 4 into the 5-token cache)
    completions = [[{"role": "assistant", "content": c}] for c in script.values()]
    assert trl_rewards.think_format_reward(completions) == [1.0, 0.0]
    assert overlong([[0] * 18, [0] * 9]) == [-1.0, -0.8]
    assert rewards.tolist() == pytest.approx([1.0 - 0.5, 0.0 - 0.4])
    assert objective(net, samples) == pytest.approx((0.5 - 0.4) / 2)
    per = objective.reward_functions.per_function(
        samples.raw_prompts, completions, completion_ids=[[1] * 18, [1] * 9]
    )
    assert per.tolist() == [[1.0, -1.0], [0.0, pytest.approx(-0.8)]]


def test_repetition_penalty_sees_the_generated_ids():
    tokenizer = CharTokenizer("ab=")
    net = Scripted(tokenizer, {"a=": "abab", "b=": "ab"}, tokenizer.vocab_size)
    penalty = trl_rewards.get_repetition_penalty_reward(ngram_size=2, max_penalty=-1.0)
    objective = TRLReward(tokenizer, penalty, max_new_tokens=6)
    samples = Prompts(["a=", "b="])
    rewards = objective.score(samples, objective.generated_tokens(net, samples)[0])
    # ids a b a b <eos>: bigrams ab ba ab b<eos>: 3 unique of 4; a b <eos>: none repeated
    assert rewards.tolist() == [-0.25, 0.0]


def test_columns_reach_the_reward_functions_row_by_row():
    tokenizer = CharTokenizer("0123456789+=")
    prompts = [f"{a}+{a}=" for a in range(6)]
    net = Scripted(tokenizer, {p: str(2 * int(p[0])) for p in prompts}, tokenizer.vocab_size)
    answers = [str(2 * a) if a % 2 else "x" for a in range(6)]  # only odd rows right
    data = datasets.Dataset.from_dict({"prompt": prompts, "answer": answers, "row": range(6)})
    seen = []

    def exact(prompts, completions, answer, row, completion_ids, **kwargs):
        seen.append((list(prompts), list(row), list(answer), kwargs))
        return [float(c == a) for c, a in zip(completions, answer, strict=True)]

    objective = TRLReward(tokenizer, exact, max_new_tokens=3)
    sampler = DatasetSampler(data, batch_size=4, seed=3)
    for generation in range(3):
        samples = sampler(generation)
        expected = [float(int(p[0]) % 2) for p in samples.prompts]
        assert objective(net, samples) == pytest.approx(sum(expected) / 4)
        prompts_seen, rows_seen, answers_seen, extra = seen[-1]
        assert [prompts[r] for r in rows_seen] == prompts_seen
        assert [answers[r] for r in rows_seen] == answers_seen
        assert extra == {}  # no trainer state, nothing but the columns and the generated ids


def test_sampler_visits_every_row_once_per_epoch_and_is_seeded():
    data = datasets.Dataset.from_dict({"prompt": [str(i) for i in range(10)]})
    sampler = DatasetSampler(data, batch_size=4, seed=0)
    rows = [r for g in range(5) for r in sampler.indices(g)]
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:20]) == list(range(10))
    assert rows[:10] != rows[10:20]  # a new permutation each epoch
    assert sampler(3).prompts == DatasetSampler(data, batch_size=4, seed=0)(3).prompts
    assert sampler(0).prompts != DatasetSampler(data, batch_size=4, seed=1)(0).prompts
    assert sampler(1).seed != sampler(2).seed
    in_order = DatasetSampler(data, batch_size=4, shuffle=False)
    assert in_order(2).prompts == ["8", "9", "0", "1"]


def test_conversational_prompts_use_the_chat_template():
    tokenizer = char_tokenizer_fast(ALPHABET, chat_template=ROLES)
    data = datasets.Dataset.from_dict(
        {"prompt": [[{"role": "user", "content": "12+3="}]], "answer": ["15"]}
    )
    samples = dataset_prompts(data, tokenizer)
    assert samples.conversational
    assert samples.prompts == ["<user>12+3=<assistant>"]
    assert samples.prompt_ids == [tokenizer.encode("<user>12+3=<assistant>")]
    assert samples.raw_prompts == [[{"role": "user", "content": "12+3="}]]
    assert samples.columns == {"answer": ["15"]}
    net = Scripted(tokenizer, {"<user>12+3=<assistant>": "15"}, len(tokenizer))
    got = []

    def record(prompts, completions, answer, **kwargs):
        got.append((prompts, completions))
        return [float(c[0]["content"] == a) for c, a in zip(completions, answer, strict=True)]

    assert TRLReward(tokenizer, record, max_new_tokens=3)(net, samples) == 1.0
    assert got == [
        ([[{"role": "user", "content": "12+3="}]], [[{"role": "assistant", "content": "15"}]])
    ]


def test_dataset_errors_name_the_problem():
    plain = datasets.Dataset.from_dict({"prompt": ["a"]})
    chat = datasets.Dataset.from_dict({"prompt": [[{"role": "user", "content": "a"}]]})
    with pytest.raises(ValueError, match=r"needs a 'prompt' column .* has \['text'\]"):
        dataset_prompts(datasets.Dataset.from_dict({"text": ["a"]}))
    with pytest.raises(TypeError, match="datasets.Dataset"):
        dataset_prompts({"prompt": ["a"]})
    with pytest.raises(ValueError, match="need a tokenizer with apply_chat_template"):
        dataset_prompts(chat)
    with pytest.raises(ValueError, match="no chat template"):
        dataset_prompts(chat, char_tokenizer_fast("a"))
    with pytest.raises(IndexError, match="row 3 is out of range for a dataset of 1 rows"):
        dataset_prompts(plain, indices=[3])
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        DatasetSampler(plain, batch_size=0)


def test_weights_none_and_unscorable_prompts():
    def first(completions, **kwargs):
        return [1.0, None, None, 4.0]

    def second(completions, **kwargs):
        return [None, 2.0, None, 1.0]

    rewards = RewardFunctions([first, second], weights=[2.0, 3.0])
    out = rewards(["p"] * 4, ["a", "b", "c", "d"])
    assert out[:2].tolist() == [2.0, 6.0] and math.isnan(out[2]) and out[3] == 11.0
    objective = TRLReward(CharTokenizer("a"), [first, second], reward_weights=[2.0, 3.0])
    assert objective.fitness(out).tolist() == [pytest.approx(19 / 3)]  # the NaN is left out
    grouped = TRLReward(CharTokenizer("a"), first, group_size=2)
    with pytest.raises(ValueError, match="returned None for every prompt of a group"):
        grouped.fitness(torch.tensor([1.0, 2.0, math.nan, math.nan]))


@pytest.mark.parametrize(
    ("returned", "error", "message"),
    [
        ([1.0], ValueError, "reward function 'bad' returned 1 rewards for 2 completions"),
        ([1.0, "1"], TypeError, "'bad' returned str '1' for completion 1: a reward is a real"),
        ([True, 0.0], TypeError, "'bad' returned bool True for completion 0"),
        (0.5, TypeError, "'bad' must return a list of rewards .* got float 0.5"),
        ([1.0, math.inf], ValueError, "'bad' returned inf for completion 1: return None"),
    ],
)
def test_bad_reward_values_raise_clear_errors(returned, error, message):
    def bad(completions, **kwargs):
        return returned

    with pytest.raises(error, match=message):
        RewardFunctions(bad)(["p", "q"], ["a", "b"])


def test_bad_arguments_raise_clear_errors():
    def ok(completions, **kwargs):
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match="weights has 1 values for 2 reward functions"):
        RewardFunctions([ok, ok], weights=[1.0])
    with pytest.raises(TypeError, match=r"weights\[0\] must be a real number, got '1'"):
        RewardFunctions(ok, weights=["1"])
    with pytest.raises(TypeError, match=r"reward_funcs\[0\] is the model name 'org/rm'"):
        RewardFunctions("org/rm")
    with pytest.raises(TypeError, match=r"reward_funcs\[1\] must be a callable"):
        RewardFunctions([ok, 3])
    with pytest.raises(ValueError, match="at least one"):
        RewardFunctions([])
    with pytest.raises(ValueError, match=r"reward_funcs\[0\] is a model: give its tokenizer"):
        RewardFunctions(nn.Linear(1, 1))
    with pytest.raises(ValueError, match="a column may not be named 'completions'"):
        RewardFunctions(ok)(["p"], ["a"], columns={"completions": ["x"]})
    with pytest.raises(ValueError, match="column 'answer' has 2 values for 1 completions"):
        RewardFunctions(ok)(["p"], ["a"], columns={"answer": ["x", "y"]})


def _reward_model():
    config = transformers.GPT2Config(
        vocab_size=len(ALPHABET) + 2, n_positions=32, n_embd=16, n_layer=1, n_head=2, num_labels=1
    )
    torch.manual_seed(0)  # transformers draws initial weights from the global generator
    model = transformers.GPT2ForSequenceClassification(config).eval()
    return model


def test_reward_model_scores_are_the_models_own_logits():
    tokenizer = char_tokenizer_fast(ALPHABET, chat_template=PLAIN_CHAT_TEMPLATE)
    model = _reward_model()
    rewards = RewardFunctions([model], weights=[2.0], processing_classes=[tokenizer])
    assert model.config.pad_token_id == tokenizer.pad_token_id  # set as GRPOTrainer sets it
    prompts, completions = ["1+1=", "12+34="], ["2", "46"]  # different lengths: padding
    alone = [
        model(tokenizer(p + c, return_tensors="pt")["input_ids"]).logits[0, 0].item()
        for p, c in zip(prompts, completions, strict=True)
    ]
    assert reward_model_scores(model, tokenizer, prompts, completions) == pytest.approx(alone)
    assert rewards(prompts, completions).tolist() == pytest.approx([2 * a for a in alone])
    chat = [[{"role": "user", "content": p}] for p in prompts]
    replies = [[{"role": "assistant", "content": c}] for c in completions]
    assert reward_model_scores(model, tokenizer, chat, replies) == pytest.approx(alone)
    model.config.pad_token_id = 5
    with pytest.raises(ValueError, match=r"config.pad_token_id \(5\) is not the tokenizer's"):
        reward_model_scores(model, tokenizer, prompts, completions)


def test_members_batched_equal_members_one_at_a_time_with_columns():
    tokenizer = CharTokenizer("01+=")
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Embedding(6, 8), nn.Linear(8, 6))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    data = datasets.Dataset.from_dict(
        {"prompt": ["0+1=", "1+1=", "1+0=", "0+0="], "answer": ["1", "10", "1", "0"]}
    )

    def matching(completions, answer, **kwargs):
        return [
            float(sum(x == y for x, y in zip(c, a, strict=False)))
            for c, a in zip(completions, answer, strict=True)
        ]

    objective = TRLReward(tokenizer, matching, max_new_tokens=2, members_per_batch=3)
    samples = DatasetSampler(data, batch_size=4, seed=0)(0)
    params = dict(net.named_parameters())
    noise = population_noise(params, seed=0, generation=0, indices=range(6), sigma=0.5)
    batched = objective.evaluate_members(net, samples, noise)
    for member in range(6):
        with torch.no_grad():
            saved = [p.clone() for p in params.values()]
            for name, p in params.items():
                p.add_(noise[name].delta(member).reshape(p.shape))
            alone = objective(net, samples)
            for p, s in zip(params.values(), saved, strict=True):
                p.copy_(s)
        assert batched[member, 0] == alone
    assert len(set(batched[:, 0].tolist())) > 1


def test_char_tokenizer_fast_has_the_char_tokenizers_ids():
    chars = CharTokenizer(ALPHABET)
    fast = char_tokenizer_fast(chars)
    text = "12+34=<think>"
    assert fast(text)["input_ids"] == chars.encode(text)
    assert (fast.pad_token_id, fast.eos_token_id, len(fast)) == (0, 1, chars.vocab_size)
    assert fast.decode(chars.encode(text)) == text


@pytest.mark.slow
def test_the_same_reward_function_runs_under_grpo_trainer(tmp_path):
    """One GRPOTrainer step and one TRLReward evaluation call the same function with the same
    arguments (TRL adds its trainer state and loggers)."""
    trl = pytest.importorskip("trl")
    tokenizer = char_tokenizer_fast("0123456789+=")
    config = transformers.GPT2Config(
        vocab_size=14,
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    net = transformers.GPT2LMHeadModel(config)
    data = datasets.Dataset.from_dict(
        {"prompt": ["12+34=", "50+50="] * 4, "answer": ["46", "100"] * 4}
    )
    calls = []

    def exact(prompts, completions, completion_ids, answer, **kwargs):
        calls.append((prompts, completions, completion_ids, answer, sorted(kwargs)))
        return [float(c == a) for c, a in zip(completions, answer, strict=True)]

    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=4,
        max_steps=1,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
    )
    trl.GRPOTrainer(
        model=net, reward_funcs=[exact], args=args, train_dataset=data, processing_class=tokenizer
    ).train()
    TRLReward(tokenizer, [exact], max_new_tokens=4)(net, DatasetSampler(data, batch_size=2)(0))
    (p1, c1, ids1, a1, extra1), (p2, c2, ids2, a2, extra2) = calls
    for prompts, completions, ids, answers in ((p1, c1, ids1, a1), (p2, c2, ids2, a2)):
        assert all(
            isinstance(p, str) and isinstance(c, str)
            for p, c in zip(prompts, completions, strict=True)
        )
        assert list(answers) == ["46" if p == "12+34=" else "100" for p in prompts]
        for completion, row in zip(completions, ids, strict=True):
            assert tokenizer.decode(row, skip_special_tokens=True) == completion
            assert 1 not in row[:-1]  # ids stop at (and include) the end token
    assert {"trainer_state", "log_extra", "log_metric"} <= set(extra1) and extra2 == []
