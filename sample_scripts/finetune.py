"""Fine-tune a language model with evolution strategies on a reward computed from its text.

    python sample_scripts/finetune.py                      # pre-train a small GPT-2, then ES
    python sample_scripts/finetune.py --smoke              # a tiny budget (seconds)
    python sample_scripts/finetune.py --model PATH         # a local Hugging Face checkpoint

No download happens. By default the script builds a small GPT-2 from a ``transformers``
``GPT2Config`` (character-level vocabulary), pre-trains it by backprop on two-digit additions
``"ab+cd="`` of which only ``--pretrain-carry`` carry in the units (so the model is weak on those),
saves it under ``--out``/pretrained, then fine-tunes every weight by ES on an exact-match reward
on the sums that carry — the shifted, harder distribution — with greedy decoding (Qiu et al. 2025,
arXiv 2509.24372), rank-1 perturbations and all members of a batch decoded in one forward per
token (EGGROLL, Sarkar et al. 2025, arXiv 2511.16652; ``--perturbation dense`` and
``--evaluation in_place`` for the alternatives). It prints the held-out exact-match accuracy on
carrying sums before and after (held-out problems are never trained on, by backprop or by ES).
``--model`` loads any local causal LM and its tokenizer (``from_pretrained(...,
local_files_only=True)``) and fine-tunes it on the same task; with a GPU, add ``--device cuda``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import es_opt
from es_opt.cli import OPTIMIZERS, arg, build_optimizer, parse_config, run_main
from es_opt.noise import derive_seed
from es_opt.text import CharTokenizer, Prompts, TextReward, probe_sigma, regime_report
from es_opt.text.arithmetic import ALPHABET, addition_problems, answer, exact_match
from es_opt.training.callbacks import Checkpoint, CSVLogger
from es_opt.training.checkpoint import load_checkpoint

CHAR_TOKENIZER = "char_tokenizer.json"


@dataclass
class Args:
    seed: int = arg(0, "seed of the run (initial weights, problems, noise)")
    model: str = arg("", "local Hugging Face checkpoint folder (default: pre-train one here)")
    out: str = arg("runs/finetune", "folder for the pre-trained model, log and checkpoint")
    device: str = arg("cpu", "torch device of the model")
    threads: int = arg(1, "torch threads (1 is fastest for a small model on a busy CPU)")
    layers: int = arg(2, "GPT-2 layers of the pre-trained model")
    width: int = arg(64, "embedding width")
    heads: int = arg(4, "attention heads")
    pretrain_steps: int = arg(1000, "backprop steps of pre-training at most")
    pretrain_seconds: float = arg(240.0, "pre-training wall-time cap")
    pretrain_carry: float = arg(0.01, "fraction of pre-training sums that carry")
    perturbation: str = arg("lowrank", "perturbation family", choices=("dense", "lowrank"))
    rank: int = arg(1, "rank of the low-rank family")
    noise: str = arg("philox", "noise scheme", choices=("philox", "mt19937"))
    evaluation: str = arg(
        "batched", "members: batched forward or in place", choices=("batched", "in_place")
    )
    sigma: float = arg(0.01, "perturbation standard deviation")
    probe_sigma: str = arg(
        "",
        "comma-separated sigmas to probe before ES (members changed, prompts with reward "
        "variance, reward drop); ES then trains with the recommended one instead of --sigma",
    )
    regime: bool = arg(False, "print the regime report (pass@k at temperature 1) before ES")
    n_samples: int = arg(32, "population: evaluations per generation (even)")
    lr: float = arg(2e-4, "learning rate of the inner optimizer")
    optimizer: str = arg("adam", "inner optimizer", choices=OPTIMIZERS)
    prompts: int = arg(32, "training prompts per generation")
    group_size: int = arg(0, "0: fitness = mean reward; k: per-group-of-k-prompts normalisation")
    shaping: str = arg("centered_ranks", "fitness shaping")
    generations: int = arg(1000, "ES generations at most")
    es_seconds: float = arg(300.0, "ES wall-time cap")
    eval_prompts: int = arg(400, "held-out carrying sums for the accuracy")
    backend: str = arg("serial", "where evaluations run", choices=("serial", "multiprocess", "ray"))
    workers: int = arg(0, "workers of the parallel backends (0: auto)")
    sync: str = arg(
        "replay",
        "parallel backends: replay (workers recompute each update; only scalars travel) or "
        "center (the new weights are sent each step)",
        choices=("replay", "center"),
    )
    resume: str = arg("", "continue the ES run saved in this checkpoint")
    checkpoint_every: int = arg(10, "save a checkpoint every N generations")
    record: str = arg("", "write a run record of the ES phase here (python -m es_opt.record)")
    smoke: bool = arg(False, "a tiny budget (seconds): for tests")

    def __post_init__(self) -> None:
        if self.smoke:
            self.pretrain_steps, self.pretrain_seconds = 30, 20.0
            self.generations, self.n_samples, self.prompts, self.eval_prompts = 2, 4, 8, 16
        if not 0.0 <= self.pretrain_carry <= 1.0:
            raise ValueError(f"--pretrain-carry must be in [0, 1], got {self.pretrain_carry}")


def build_gpt2(args: Args, tokenizer: CharTokenizer) -> torch.nn.Module:
    from es_opt.errors import require

    transformers = require("transformers", "text", "sample_scripts/finetune.py")
    config = transformers.GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=16,
        n_embd=args.width,
        n_layer=args.layers,
        n_head=args.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(args.seed)  # transformers draws the initial weights from the global generator
    return transformers.GPT2LMHeadModel(config)


def pretrain(net, tokenizer, *, steps: int, seconds: float, carry_fraction: float, seed: int):
    """Backprop on ``"ab+cd=" + answer + end`` sequences, loss on the answer and the end token.
    Returns the steps done."""
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.01)
    device = next(net.parameters()).device
    start, step = time.perf_counter(), 0
    net.train()
    while step < steps and time.perf_counter() - start < seconds:
        lr_scale = 0.5 * (1 + math.cos(math.pi * step / steps))
        for group in optimizer.param_groups:
            group["lr"] = 3e-3 * lr_scale
        prompts = addition_problems(128, derive_seed(seed, 7, step), carry_fraction=carry_fraction)
        rows = [tokenizer.encode(p + answer(p)) + [tokenizer.eos_token_id] for p in prompts]
        ids = torch.tensor(rows, device=device)
        logits = net(input_ids=ids[:, :-1]).logits
        targets = ids[:, 1:].clone()
        targets[:, : len(prompts[0]) - 1] = -100  # no loss on the prompt
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    net.eval()
    return step


def load_model(args: Args):
    """The model and tokenizer: ``--model``'s, or a small GPT-2 pre-trained here (and saved)."""
    if args.model:
        from es_opt.errors import require

        transformers = require("transformers", "text", "--model")
        path = Path(args.model)
        net = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        if (path / CHAR_TOKENIZER).exists():
            tokenizer = CharTokenizer.load(path / CHAR_TOKENIZER)
        else:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        return net.to(args.device).eval(), tokenizer, f"loaded {path}"
    tokenizer = CharTokenizer(ALPHABET)
    net = build_gpt2(args, tokenizer).to(args.device)
    start = time.perf_counter()
    steps = pretrain(
        net,
        tokenizer,
        steps=args.pretrain_steps,
        seconds=args.pretrain_seconds,
        carry_fraction=args.pretrain_carry,
        seed=args.seed,
    )
    saved = Path(args.out) / "pretrained"
    net.save_pretrained(saved)
    tokenizer.save(saved / CHAR_TOKENIZER)
    n_params = sum(p.numel() for p in net.parameters())
    what = f"pre-trained a {n_params:,}-parameter GPT-2 for {steps} steps"
    return net, tokenizer, f"{what}, {time.perf_counter() - start:.0f} s; saved to {saved}"


def held_out_accuracy(net, tokenizer, args: Args, *, carry: bool = True) -> float:
    prompts = addition_problems(args.eval_prompts, seed=args.seed + 1, carry=carry, split="test")
    objective = TextReward(tokenizer, exact_match, max_new_tokens=4)
    return float(objective(net, Prompts(prompts)))


def before_es(args: Args, net, tokenizer) -> None:
    """The regime report and the sigma probe on a batch of training prompts; a probe sets
    ``args.sigma`` to its recommendation."""
    objective = TextReward(tokenizer, exact_match, max_new_tokens=4)
    seed = derive_seed(args.seed, 13)
    samples = Prompts(addition_problems(args.prompts, seed, carry=True), seed=seed)
    if args.regime:
        print(regime_report(net, objective, samples, n_samples=8, ks=(1, 8)).summary())
    if args.probe_sigma:
        sigmas = [float(value) for value in args.probe_sigma.split(",")]
        probe = probe_sigma(net, objective, samples, sigmas, n_members=args.n_samples)
        print(f"sigma probe:\n{probe.table()}")
        args.sigma = probe.sigma


def build_es(args: Args, net, tokenizer) -> es_opt.ESOptimizer:
    group_size = args.group_size or None
    objective = TextReward(
        tokenizer, exact_match, max_new_tokens=4, group_size=group_size, evaluation=args.evaluation
    )
    family = f"lowrank({args.rank})" if args.perturbation == "lowrank" else "dense"
    return es_opt.ESOptimizer(
        es_opt.Model(net),
        build_optimizer(args.optimizer, net.parameters(), args.lr),
        objective_fn=objective,
        obj_weights=objective.obj_weights(args.prompts),
        sigma=args.sigma,
        n_samples=args.n_samples,
        seed=args.seed,
        shaping=args.shaping,
        backend=args.backend,
        n_workers=args.workers or None,
        perturbation=family,
        noise=args.noise,
        **({} if args.backend == "serial" else {"sync": args.sync}),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_config(Args, argv, description=__doc__)
    torch.set_num_threads(args.threads)
    net, tokenizer, how = load_model(args)
    print(how)
    before = held_out_accuracy(net, tokenizer, args)
    no_carry_before = held_out_accuracy(net, tokenizer, args, carry=False)
    print(
        f"held-out accuracy before ES: {before:.3f} on carrying sums "
        f"({no_carry_before:.3f} without)"
    )
    before_es(args, net, tokenizer)
    es = build_es(args, net, tokenizer)
    if args.resume:
        load_checkpoint(args.resume, es)

    def samples(generation: int) -> Prompts:
        seed = derive_seed(args.seed, 11, generation)
        return Prompts(addition_problems(args.prompts, seed, carry=True), seed=seed)

    out = Path(args.out)
    start = time.perf_counter()
    callbacks = [
        CSVLogger(out / "log.csv"),
        Checkpoint(out / "checkpoint.pt", every=args.checkpoint_every, config=args),
    ]
    if args.record:
        from es_opt.record import RunRecord

        callbacks.append(RunRecord(args.record, config=args))
    with es:
        history = es.fit(
            samples,
            generations=max(0, args.generations - es.generation),
            callbacks=callbacks,
            stop_when=lambda result: time.perf_counter() - start > args.es_seconds,
        )
    elapsed = time.perf_counter() - start
    after = held_out_accuracy(net, tokenizer, args)
    no_carry_after = held_out_accuracy(net, tokenizer, args, carry=False)
    evaluations = sum(result.n_evals for result in history)
    print(
        f"ES: {len(history)} generations, {evaluations} evaluations, {elapsed:.1f} s "
        f"(population {args.n_samples}, {args.perturbation}, {args.evaluation}, "
        f"sigma {args.sigma}, lr {args.lr})"
    )
    print(
        f"held-out accuracy after ES: {after:.3f} on carrying sums ({no_carry_after:.3f} without)"
    )
    print(f"change: {100 * (after - before):+.1f} percentage points")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
