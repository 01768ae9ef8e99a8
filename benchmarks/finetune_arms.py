"""The two arms of the fine-tuning comparisons: ES and TRL's GRPOTrainer, from the same inputs.

Imported by ``benchmarks/finetune.py`` (the carry task) and ``benchmarks/finetune_regimes.py``
(the sparse-reward task, the σ sweep). Both arms get the same pre-trained model (a copy each),
the same ``datasets.Dataset`` of training prompts (a ``"prompt"`` column and an ``"answer"``
column), the same TRL-signature reward function, the same ``transformers`` tokenizer (the
character vocabulary of ``sample_scripts/finetune.py``) and the same wall time; only the trainer
differs:

- ES: ``es_opt.ESOptimizer`` on ``es_opt.text.TRLReward`` (greedy decoding, population-batched
  members), prompts from ``es_opt.text.DatasetSampler``;
- GRPO: ``trl.GRPOTrainer`` on CPU (no vLLM, float32), ``G`` completions per prompt sampled at
  temperature 1, group-normalised advantages, no KL term (``beta=0``), constant learning rate.
"""

from __future__ import annotations

import copy
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import es_opt  # noqa: E402
from es_opt.text import (  # noqa: E402
    DatasetSampler,
    Prompts,
    TextReward,
    TRLReward,
    char_tokenizer_fast,
)
from es_opt.text.arithmetic import ALPHABET, answer, exact_match, has_carry, held_out  # noqa: E402


def sample_script():
    path = ROOT / "sample_scripts" / "finetune.py"
    spec = importlib.util.spec_from_file_location("finetune_sample", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_uptime() -> str:
    return open("/proc/loadavg").read().split()[0]


def exact_answer(prompts, completions, answer, **kwargs) -> list[float]:
    """TRL-signature exact match against the dataset's ``answer`` column."""
    return [float(c == a) for c, a in zip(completions, answer, strict=True)]


TASKS = ("carry", "chain")
"""``carry``: the sums whose units carry; ``chain``: those whose carry runs on into the hundreds
(units carry and the tens digits sum to 9, ``45+55=100``: every answer digit differs from the
carry-free habit)."""


def task_problems(task: str, split: str) -> list[str]:
    """Every two-digit sum of ``task`` in ``split`` ("train" or "test", the sample's fixed
    split)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")

    def wanted(a: int, b: int) -> bool:
        return has_carry(a, b) and (task == "carry" or a // 10 + b // 10 == 9)

    return [
        f"{a:02d}+{b:02d}="
        for a in range(100)
        for b in range(100)
        if wanted(a, b) and held_out(a, b) == (split == "test")
    ]


def carry_dataset(task: str = "carry"):
    """The task's training sums as a TRL-format dataset (``prompt``, ``answer``)."""
    from es_opt.errors import require

    datasets = require("datasets", "trl", "the fine-tuning benchmark")
    prompts = task_problems(task, "train")
    return datasets.Dataset.from_dict({"prompt": prompts, "answer": [answer(p) for p in prompts]})


def held_out_accuracy(net, char_tokenizer, task: str, eval_prompts: int) -> float:
    """Greedy exact match on held-out sums: for ``carry`` the sample script's ``eval_prompts``
    drawn carrying sums, for ``chain`` every held-out one."""
    if task == "carry":
        ft = sample_script()
        args = ft.Args(eval_prompts=eval_prompts, model="unused")
        return ft.held_out_accuracy(net, char_tokenizer, args)
    objective = TextReward(char_tokenizer, exact_match, max_new_tokens=4)
    return float(objective(net, Prompts(task_problems(task, "test"))))


def run_es(net, tokenizer, dataset, *, seconds, seed, sigma, lr, population=32, prompts=32):
    """ES for ``seconds``; returns the generations done."""
    objective = TRLReward(tokenizer, [exact_answer], max_new_tokens=4)
    es = es_opt.ESOptimizer(
        es_opt.Model(net),
        torch.optim.Adam(net.parameters(), lr=lr),
        objective_fn=objective,
        sigma=sigma,
        n_samples=population,
        seed=seed,
        perturbation="lowrank(1)",
        noise="philox",
    )
    start = time.perf_counter()
    with es:
        history = es.fit(
            DatasetSampler(dataset, tokenizer, batch_size=prompts, seed=seed),
            generations=10**6,
            stop_when=lambda result: time.perf_counter() - start > seconds,
        )
    return len(history)


def run_grpo(net, tokenizer, dataset, *, seconds, seed, lr, prompts=16, group=8, out="runs/grpo"):
    """TRL's GRPOTrainer for ``seconds`` (a callback stops it); returns the optimizer steps."""
    from es_opt.errors import require

    trl = require("trl", "trl", "the GRPO baseline")
    transformers = require("transformers", "trl", "the GRPO baseline")

    class StopAfter(transformers.TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - self.start > seconds:
                control.should_training_stop = True

    config = trl.GRPOConfig(
        output_dir=out,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to="none",
        per_device_train_batch_size=prompts * group,  # completions per step
        num_generations=group,
        max_completion_length=4,
        max_steps=10**6,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        temperature=1.0,
        beta=0.0,
        seed=seed,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = trl.GRPOTrainer(
        model=net,
        reward_funcs=[exact_answer],
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[StopAfter()],
    )
    trainer.train()
    net.eval()
    return trainer.state.global_step


def compare(base, char_tokenizer, args, *, label, sigma, seeds, out, task="carry") -> None:
    """ES against TRL's GRPO from ``base`` on ``task``'s sums, ``args.seconds`` each per seed;
    held-out exact match before and after; median and range of the gains."""
    tokenizer = char_tokenizer_fast(ALPHABET)
    dataset = carry_dataset(task)

    def accuracy(net) -> float:
        return held_out_accuracy(net, char_tokenizer, task, args.eval_prompts)

    before = accuracy(base)
    print(
        f"[{label}] held-out exact match on {task} sums before: {before:.3f}; load {load_uptime()}",
        flush=True,
    )
    rows = []
    for seed in seeds:
        for method in ("es", "grpo"):
            net = copy.deepcopy(base)
            start = time.perf_counter()
            if method == "es":
                steps = run_es(
                    net,
                    tokenizer,
                    dataset,
                    seconds=args.seconds,
                    seed=seed,
                    sigma=sigma,
                    lr=args.lr,
                )
                completions = steps * 32 * 32
            else:
                steps = run_grpo(
                    net,
                    tokenizer,
                    dataset,
                    seconds=args.seconds,
                    seed=seed,
                    lr=args.grpo_lr,
                    prompts=args.grpo_prompts,
                    group=args.group,
                    out=f"{out}/grpo{seed}",
                )
                completions = steps * args.grpo_prompts * args.group
            elapsed = time.perf_counter() - start
            after = accuracy(net)
            rows.append((method, seed, after))
            print(
                f"  {method:4s} seed {seed}: {before:.3f} -> {after:.3f} "
                f"({100 * (after - before):+.1f} pp) in {steps} steps, {completions} "
                f"completions, {elapsed:.0f} s; load {load_uptime()}",
                flush=True,
            )
    for method in ("es", "grpo"):
        gains = [100 * (r[2] - before) for r in rows if r[0] == method]
        print(
            f"{label} {method}: median {statistics.median(gains):+.1f} pp, range "
            f"[{min(gains):+.1f}, {max(gains):+.1f}] over seeds {list(seeds)}"
        )
