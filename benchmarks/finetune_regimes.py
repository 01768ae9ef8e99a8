"""Where ES and GRPO stand apart: the sparse-reward task, and the σ probe against a σ sweep.

    python benchmarks/finetune_regimes.py --part sparse --seconds 300 --seeds 0 1 2
    python benchmarks/finetune_regimes.py --part sigma --seconds 120

**sparse**: the model of ``sample_scripts/finetune.py`` pre-trained on sums of which *none*
carry (``--pretrain-carry 0``), fine-tuned on the sums that carry: a rewarded answer needs the
units digit of a sum it never wrote (``9 + 6 → 5``) and the carried tens digit right at once.
Before training: the regime report (greedy pass, pass@k at temperature 1, the fraction of
prompt groups with any reward variance) and the σ probe; then ES (low-rank, population-batched,
at the probe's σ unless ``--sigma``) against TRL's ``GRPOTrainer`` at equal wall time
(``benchmarks/finetune_arms.py``), held-out exact match before and after.

**sigma**: on the sample's own pre-trained model (1 % of pre-training sums carry), the σ probe's
table and recommendation, then one ES run of ``--seconds`` per probed σ: held-out gain per σ.
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import torch
from finetune_arms import (
    TASKS,
    carry_dataset,
    compare,
    load_uptime,
    run_es,
    sample_script,
    task_problems,
)

from es_opt.text import Prompts, TextReward, probe_sigma, regime_report
from es_opt.text.arithmetic import addition_problems, exact_match
from es_opt.text.hf_tokenizer import char_tokenizer_fast


def pretrained(args, carry: float, path: str):
    """The sample's GPT-2 pre-trained with ``carry`` of its sums carrying (or loaded from
    ``path``); pre-training runs its full step count whatever the machine's load."""
    ft = sample_script()
    script_args = ft.Args(
        out=f"{args.out}/carry{carry:g}",
        model=path,
        pretrain_carry=carry,
        pretrain_seconds=10**6,
        eval_prompts=args.eval_prompts,
    )
    net, tokenizer, how = ft.load_model(script_args)
    print(f"{how}; load {load_uptime()}", flush=True)
    return net, tokenizer


def before_training(net, tokenizer, args, task="carry"):
    """The regime report and the σ probe on training prompts of ``task``; returns the probe."""
    objective = TextReward(tokenizer, exact_match, max_new_tokens=4)
    if task == "carry":
        prompts = addition_problems(args.probe_prompts, 12345, carry=True)
    else:
        problems = task_problems(task, "train")
        order = torch.randperm(len(problems), generator=torch.Generator().manual_seed(12345))
        prompts = [problems[i] for i in order[: args.probe_prompts].tolist()]
    samples = Prompts(prompts, seed=1)
    report = regime_report(net, objective, samples, n_samples=args.group, ks=(1, args.group))
    print(f"regime report ({args.probe_prompts} prompts): {report.summary()}", flush=True)
    start = time.perf_counter()
    probe = probe_sigma(net, objective, samples, args.sigmas, n_members=32)
    print(
        f"sigma probe ({args.probe_prompts} prompts, 32 members, "
        f"{time.perf_counter() - start:.0f} s):\n{probe.table()}",
        flush=True,
    )
    return probe


def sparse(args) -> None:
    net, tokenizer = pretrained(args, 0.0, args.sparse_model)
    probe = before_training(net, tokenizer, args, args.task)
    sigma = args.sigma or probe.sigma
    compare(
        net,
        tokenizer,
        args,
        label=f"sparse {args.task}",
        sigma=sigma,
        seeds=args.seeds,
        out=args.out,
        task=args.task,
    )


def sigma_sweep(args) -> None:
    ft = sample_script()
    net, char_tokenizer = pretrained(args, 0.01, args.model)
    probe = before_training(net, char_tokenizer, args)
    tokenizer = char_tokenizer_fast(char_tokenizer)
    dataset = carry_dataset()
    eval_args = ft.Args(eval_prompts=args.eval_prompts, model="unused")
    before = ft.held_out_accuracy(net, char_tokenizer, eval_args)
    print(f"held-out exact match before: {before:.3f}", flush=True)
    for sigma in args.sigmas:
        for seed in args.seeds:
            trained = copy.deepcopy(net)
            steps = run_es(
                trained,
                tokenizer,
                dataset,
                seconds=args.seconds,
                seed=seed,
                sigma=sigma,
                lr=args.lr,
            )
            after = ft.held_out_accuracy(trained, char_tokenizer, eval_args)
            print(
                f"  sigma {sigma:<8g} seed {seed}: {before:.3f} -> {after:.3f} "
                f"({100 * (after - before):+.1f} pp) in {steps} generations; "
                f"{probe.reasons[sigma]}; load {load_uptime()}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("all", "sparse", "sigma"), default="all")
    parser.add_argument("--seconds", type=float, default=300.0, help="wall time per run")
    parser.add_argument(
        "--task", choices=TASKS, default="carry", help="sparse part: carrying sums, or chained"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sigma", type=float, default=0.0, help="ES sigma (0: the probe's)")
    parser.add_argument(
        "--sigmas", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    )
    parser.add_argument("--probe-prompts", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4, help="ES inner Adam lr")
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--grpo-prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8, help="GRPO completions per prompt")
    parser.add_argument("--eval-prompts", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="", help="pre-trained carry-1%% model folder")
    parser.add_argument("--sparse-model", default="", help="pre-trained carry-0 model folder")
    parser.add_argument("--out", default="runs/finetune_regimes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    if args.part in ("all", "sparse"):
        sparse(args)
    if args.part in ("all", "sigma"):
        sigma_sweep(args)


if __name__ == "__main__":
    main()
