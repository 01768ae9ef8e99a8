"""Which sides run which algorithm, and the ratio tables built from that: every same-algorithm
pair of an es_opt side and a peer side, and the best side of es_opt against the best peer side
per task (best = the better median of the task's headline metric)."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.peers import tasks

OPENAI_ES, PGPE, SNES = "OpenAI-ES", "PGPE", "SNES"
CMA_ES, SEP_CMA_ES = "CMA-ES", "sep-CMA-ES"
# The algorithm of each side, per task where it differs (EvoTorch's main side runs PGPE on the
# RL tasks and SNES on digits; es_opt's main side runs the sample scripts' OpenAI-ES presets).
ALGORITHM: dict[str, str | dict[str, str]] = {
    "es_opt": OPENAI_ES,
    "es_opt-pgpe": PGPE,
    "es_opt-snes": SNES,
    "evotorch": {tasks.CARTPOLE: PGPE, tasks.PENDULUM: PGPE, tasks.DIGITS: SNES},
    "evotorch-pgpe": PGPE,
    "evotorch-snes": SNES,
    "evosax-openes": OPENAI_ES,
    "evosax-openes-jit": OPENAI_ES,
    "evosax-pgpe": PGPE,
    "evosax-pgpe-jit": PGPE,
    "evosax-snes": SNES,
    "evosax-snes-jit": SNES,
    "evox-openes": OPENAI_ES,
    "evox-snes": SNES,
    "es_opt-cma": CMA_ES,
    "es_opt-sep_cma": SEP_CMA_ES,
    "evotorch-cma": CMA_ES,
    "evotorch-sep_cma": SEP_CMA_ES,
}
# Side groups for ``run.py --sides``.
GROUPS = {
    "classic": ["es_opt", "evotorch", "pytorch-optimize"],
    "active": [
        "es_opt",
        "es_opt-pgpe",
        "es_opt-snes",
        "evotorch-pgpe",
        "evotorch-snes",
        "evosax-openes",
        "evosax-pgpe",
        "evosax-pgpe-jit",
        "evosax-snes",
        "evox-openes",
        "evox-snes",
    ],
    # the CMA-ES family against EvoTorch's, beside es_opt's default and SNES
    "cma": [
        "es_opt",
        "es_opt-snes",
        "es_opt-cma",
        "es_opt-sep_cma",
        "evotorch-cma",
        "evotorch-sep_cma",
    ],
}
# Headline metric per task and whether larger is better.
HEADLINE = {
    tasks.CARTPOLE: ("time_s", False),
    tasks.DIGITS: ("time_to_96_s", False),
    tasks.PENDULUM: ("best_return", True),
}


def is_es_opt(side: str) -> bool:
    return side == "es_opt" or side.startswith("es_opt-")


def algorithm(side: str, task: str) -> str | None:
    algo = ALGORITHM.get(side)
    return algo.get(task) if isinstance(algo, dict) else algo


def same_algorithm_pairs(sides: list[str], task: str) -> list[tuple[str, str, str]]:
    """``(algorithm, es_opt side, peer side)`` for every pair that ran the same algorithm."""
    out = []
    for ours in sides:
        if not is_es_opt(ours):
            continue
        for theirs in sides:
            if not is_es_opt(theirs) and algorithm(theirs, task) == algorithm(ours, task):
                out.append((algorithm(ours, task), ours, theirs))
    return out


def best_sides(medians: dict[str, float | None], task: str) -> tuple[str | None, str | None]:
    """(es_opt's best side, the peers' best side) by the median of the task's headline metric;
    ``None`` where no side of that kind has a median."""
    _, larger = HEADLINE[task]

    def best(candidates: list[str]) -> str | None:
        scored = [(medians[s], s) for s in candidates if medians.get(s) is not None]
        if not scored:
            return None
        return (max if larger else min)(scored)[1]

    ours = [s for s in medians if is_es_opt(s)]
    theirs = [s for s in medians if not is_es_opt(s)]
    return best(ours), best(theirs)


def ratio_rows(
    task: str,
    sides: list[str],
    ratio: Callable[[str, str, str], str],
    keys: list[tuple[str, str]],
    medians: dict[str, float | None],
) -> list[str]:
    """Markdown lines: the same-algorithm table and the best-against-best line."""
    lines: list[str] = []
    pairs = same_algorithm_pairs(sides, task)
    if pairs:
        lines += [
            "",
            "| same algorithm | ratio (medians) | " + " | ".join(k[1] for k in keys) + " |",
            "|---|---|" + "---|" * len(keys),
        ]
        for algo, ours, theirs in pairs:
            row = [ratio(ours, theirs, k) for k, _ in keys]
            lines.append(f"| {algo} | {ours} / {theirs} | " + " | ".join(row) + " |")
    ours, theirs = best_sides(medians, task)
    if ours and theirs:
        row = [ratio(ours, theirs, k) for k, _ in keys]
        lines += [
            "",
            "| best against best | ratio (medians) | " + " | ".join(k[1] for k in keys) + " |",
            "|---|---|" + "---|" * len(keys),
            f"| es_opt's best / peers' best | {ours} / {theirs} | " + " | ".join(row) + " |",
        ]
    return lines
