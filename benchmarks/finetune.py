"""ES fine-tuning of a small language model, side by side in one run (ratios within the run).

    python benchmarks/finetune.py                          # every part
    python benchmarks/finetune.py --part speed             # batched vs member-by-member
    python benchmarks/finetune.py --part learning --seconds 600 --seeds 0 1 2
    python benchmarks/finetune.py --part memory

**learning**: the model of ``sample_scripts/finetune.py`` (a small GPT-2 pre-trained here by
backprop on two-digit sums, few of which carry), then, from the same weights and for the same
wall time each: ES (es_opt.ESOptimizer on es_opt.text.TRLReward, exact-match reward, greedy
decoding, population-batched low-rank members) against TRL's ``GRPOTrainer`` (``G`` sampled
completions per prompt, advantages normalised within each prompt's group), the same dataset,
reward function and tokenizer (``benchmarks/finetune_arms.py``). Held-out exact-match accuracy on
carrying sums before and after, per seed; median and range. The sparse-reward task and the σ
sweep: ``benchmarks/finetune_regimes.py``.

**speed**: candidates (completions) per second at population 32: every member decoded in one
population-batched forward per token (rank-1 noise, es_opt.text.batched_members) against member by
member with the member's weights written into the model (the same noise, materialised).

**memory**: peak RSS above the model's resident size while evaluating 32 members, in a fresh
process each: in place (es_opt.text.perturbed_in_place, dense noise) and population-batched
(low-rank), for a larger GPT-2 (``--memory-layers``, ``--memory-width``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from finetune_arms import load_uptime, sample_script  # noqa: E402  (beside this file)

from es_opt.text import (  # noqa: E402
    batched_members,
    generate,
    member_deltas,
    perturbed_in_place,
    population_noise,
)
from es_opt.text.arithmetic import addition_problems  # noqa: E402


# -- ES against TRL's GRPOTrainer ---------------------------------------------------------------
def learning(args) -> None:
    from finetune_arms import compare

    ft = sample_script()
    torch.set_num_threads(args.threads)
    script_args = ft.Args(out=args.out, seed=0, model=args.model, pretrain_seconds=10**6)
    base, tokenizer, how = ft.load_model(script_args)
    print(f"[learning] {how}; load {load_uptime()}")
    compare(base, tokenizer, args, label="carry", sigma=args.sigma, seeds=args.seeds, out=args.out)


# -- batched vs member by member -----------------------------------------------------------------
def speed(args) -> None:
    ft = sample_script()
    torch.set_num_threads(args.threads)
    script_args = ft.Args(out=args.out, pretrain_steps=0)
    tokenizer = ft.CharTokenizer(ft.ALPHABET)
    net = ft.build_gpt2(script_args, tokenizer).eval()
    params = dict(net.named_parameters())
    for n_prompts in args.speed_prompts:
        prompts = [tokenizer.encode(p) for p in addition_problems(n_prompts, 0)]
        _speed_row(args, net, params, prompts)


def _speed_row(args, net, params, prompts) -> None:
    members = 32
    kwargs = dict(max_new_tokens=4, eos_token_id=None, pad_token_id=0)
    noise = population_noise(params, seed=0, generation=0, indices=range(members), sigma=0.01)

    def batched():
        with batched_members(net, noise, members):
            return generate(net, prompts, n_members=members, **kwargs)

    def one_by_one():
        out = []
        saved = {n: p.detach().clone() for n, p in params.items()}
        for m in range(members):
            with torch.no_grad():
                for name, p in params.items():
                    p.copy_(saved[name]).add_(noise[name].delta(m).reshape(p.shape))
            out.append(generate(net, prompts, **kwargs)[0])
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(saved[name])
        return torch.stack(out)

    def in_place():
        out = []
        for m in range(members):
            deltas = member_deltas(params, seed=0, generation=0, index=m, sigma=0.01, rank=1)
            with perturbed_in_place(net, deltas):
                out.append(generate(net, prompts, **kwargs)[0])
        return torch.stack(out)

    def shared_one_call():  # the ceiling: every row in one call, no perturbation at all
        return generate(net, prompts * members, **kwargs)

    def shared_per_member():  # the same rows in one call per member, no perturbation
        return [generate(net, prompts, **kwargs) for _ in range(members)]

    results = {}
    for name, fn in (
        ("batched", batched),
        ("member-by-member", one_by_one),
        ("in place", in_place),
        ("unperturbed, 1 call", shared_one_call),
        ("unperturbed, 32 calls", shared_per_member),
    ):
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            tokens = fn()
            times.append(time.perf_counter() - start)
        results[name] = (min(times), tokens)
    same = torch.equal(results["batched"][1], results["member-by-member"][1])
    print(
        f"[speed] population {members}, {len(prompts)} prompts, 4 new tokens, "
        f"{sum(p.numel() for p in params.values()):,} parameters, {args.threads} thread(s), "
        f"load {load_uptime()}; batched tokens equal member-by-member: {same}"
    )
    base = members * len(prompts) / results["member-by-member"][0]
    for name, (seconds, _) in results.items():
        rate = members * len(prompts) / seconds
        print(f"  {name:21s} {rate:9.0f} candidates/s  ({rate / base:.2f}x member-by-member)")
    ceiling = results["unperturbed, 32 calls"][0] / results["unperturbed, 1 call"][0]
    share = results["unperturbed, 1 call"][0] / results["batched"][0]
    print(
        f"  what batching can gain here (unperturbed, 32 calls / 1 call): {ceiling:.2f}x; the "
        f"batched members run at {share:.0%} of the unperturbed model's speed on the same rows"
    )


# -- memory --------------------------------------------------------------------------------------
MEMORY_CHILD = r"""
import json, sys, torch, transformers
sys.path.insert(0, sys.argv[1])
from es_opt.text import batched_members, generate, member_deltas, perturbed_in_place
from es_opt.text import population_noise
mode, layers, width = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
torch.manual_seed(0)
config = transformers.GPT2Config(
    n_layer=layers, n_embd=width, n_head=8, vocab_size=1000, n_positions=64
)
net = transformers.GPT2LMHeadModel(config).eval()
params = dict(net.named_parameters())
model_bytes = sum(p.numel() * p.element_size() for p in params.values())
largest = max(p.numel() * p.element_size() for p in params.values())
prompts = [[i % 1000 for i in range(j, j + 8)] for j in range(8)]
new_tokens = 2
generate(net, prompts[:1], max_new_tokens=2)  # warm up allocator and kernels
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
base = rss("VmRSS:")
with torch.no_grad():
    if mode == "none":  # the activations of decoding alone, unperturbed
        for m in range(32):
            generate(net, prompts, max_new_tokens=new_tokens)
    elif mode == "in_place":
        for m in range(32):
            deltas = member_deltas(params, seed=0, generation=0, index=m, sigma=1e-3, rank=None)
            with perturbed_in_place(net, deltas):
                generate(net, prompts, max_new_tokens=new_tokens)
    elif mode == "batched":
        for start in range(0, 32, 8):
            noise = population_noise(
                params, seed=0, generation=0, indices=range(start, start + 8), sigma=1e-3
            )
            with batched_members(net, noise, 8):
                generate(net, prompts, max_new_tokens=new_tokens, n_members=8)
    elif mode == "copy":
        for m in range(32):
            saved = {n: p.detach().clone() for n, p in params.items()}
            deltas = member_deltas(params, seed=0, generation=0, index=m, sigma=1e-3, rank=None)
            for n, p in params.items():
                p.add_(deltas[n]())
            generate(net, prompts, max_new_tokens=new_tokens)
            for n, p in params.items():
                p.copy_(saved[n])
            del saved
print(json.dumps({"model": model_bytes, "largest": largest, "peak_above": rss("VmHWM:") - base}))
"""


def memory(args) -> None:
    print(
        f"[memory] GPT-2 {args.memory_layers} layers x {args.memory_width}, 32 members, 8 prompts, "
        f"2 new tokens; peak RSS above the loaded model; load {load_uptime()}"
    )
    for mode in ("none", "in_place", "batched", "copy"):
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                MEMORY_CHILD,
                str(ROOT),
                mode,
                str(args.memory_layers),
                str(args.memory_width),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"  {mode:9s} model {r['model'] / 2**20:7.1f} MiB, largest tensor "
            f"{r['largest'] / 2**20:5.1f} MiB, peak above model "
            f"{r['peak_above'] / 2**20:7.1f} MiB "
            f"({r['peak_above'] / r['model']:.2f}x model, "
            f"{r['peak_above'] / r['largest']:.2f}x largest tensor)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--part", choices=("all", "learning", "speed", "memory"), default="all")
    parser.add_argument(
        "--seconds", type=float, default=600.0, help="wall time per method and seed"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sigma", type=float, default=0.01)
    parser.add_argument("--lr", type=float, default=2e-4, help="ES inner Adam lr")
    parser.add_argument("--grpo-lr", type=float, default=1e-4)
    parser.add_argument("--grpo-prompts", type=int, default=16)
    parser.add_argument("--group", type=int, default=8, help="GRPO completions per prompt")
    parser.add_argument("--speed-prompts", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-prompts", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-layers", type=int, default=4)
    parser.add_argument("--memory-width", type=int, default=512)
    parser.add_argument("--out", default="runs/finetune_benchmark")
    parser.add_argument("--model", default="", help="a pre-trained model folder (default: train)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.part in ("all", "speed"):
        speed(args)
    if args.part in ("all", "memory"):
        memory(args)
    if args.part in ("all", "learning"):
        learning(args)


if __name__ == "__main__":
    main()
