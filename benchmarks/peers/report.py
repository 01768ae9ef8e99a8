"""The report of a peers run: per-task tables (median [min – max] over seeds), ratio tables,
the JIT compile column, the machine description, the settings section and the plot.

``run.py`` calls :func:`report` and :func:`plot` on the results it collected; both also work on a
saved results JSON (the list of per-run dicts ``run.py`` writes beside its markdown)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

from benchmarks.peers import pairs, tasks

PEERS = ("evotorch", "pytorch-optimize")
"""The peers of the classic ratio table ``es_opt / peer``."""


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "–"
    if x == float("inf"):
        return "∞"
    return f"{x:,.{digits}f}"


def _stats(values: list[float]) -> tuple[float, float, float] | None:
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def _cell(values: list[float], digits: int = 1, *, cap: float | None = None) -> str:
    """Median [min – max]; values of +inf (not reached) shown as ">cap"."""
    st = _stats(values)
    if st is None:
        return "–"

    def show(v: float) -> str:
        if v == float("inf"):
            return f">{cap:.0f}" if cap is not None else "not reached"
        return _fmt(v, digits)

    med, lo, hi = st
    return f"{show(med)} [{show(lo)} – {show(hi)}]"


def _ratio(ours: list[float], theirs: list[float], digits: int = 2) -> str:
    a, b = _stats(ours), _stats(theirs)
    if a is None or b is None:
        return "–"
    if b[0] in (0, float("inf")) or a[0] == float("inf"):
        return "n/a (not reached)"
    return f"{a[0] / b[0]:.{digits}f}"


def metrics(task: str, results: list[dict]) -> dict[str, list[float]]:
    """Per-metric value lists over the successful runs of one side."""
    ok = [r for r in results if "error" not in r and "skipped" not in r]
    if task == tasks.CARTPOLE:
        solved = [r for r in ok if r["solved"]]
        return {
            "time_s": [r["time_s"] if r["solved"] else float("inf") for r in ok],
            "steps": [float(r["steps"]) for r in solved],
            "episodes": [float(r["episodes"]) for r in solved],
            "solved": [float(r["solved"]) for r in ok],
        }
    if task == tasks.DIGITS:
        return {
            "final_test_acc": [100 * r["final_test_acc"] for r in ok],
            "time_to_96_s": [
                float("inf") if r["time_to_96_s"] is None else r["time_to_96_s"] for r in ok
            ],
        }
    return {"best_return": [r["best_return"] for r in ok]}


def task_table(task: str, by_side: dict[str, list[dict]]) -> str:
    sides = list(by_side)
    cap = max((r.get("budget_s", 0) for rs in by_side.values() for r in rs), default=None)
    m = {side: metrics(task, by_side[side]) for side in sides}
    lines = []
    if task == tasks.CARTPOLE:
        lines.append(
            f"### CartPole-v1 to a greedy mean ≥ {tasks.CARTPOLE_THRESHOLD:.0f} "
            f"over {tasks.N_EVAL_EPISODES} unseen episodes (cap {cap:.0f} s)"
        )
        lines += [
            "",
            "| side | solved | wall time to solve (s) | env steps | episodes |",
            "|---|---|---|---|---|",
        ]
        for s in sides:
            n_ok = len(m[s]["solved"])
            lines.append(
                f"| {s} | {int(sum(m[s]['solved']))}/{n_ok} | {_cell(m[s]['time_s'], cap=cap)} "
                f"| {_cell(m[s]['steps'], 0)} | {_cell(m[s]['episodes'], 0)} |"
            )
        ratio_keys = [("time_s", "time"), ("steps", "steps"), ("episodes", "episodes")]
    elif task == tasks.DIGITS:
        lines.append(
            f"### Digits, raw accuracy: test accuracy after {cap:.0f} s and time to "
            f"{100 * tasks.DIGITS_TARGET:.0f} %"
        )
        lines += [
            "",
            "| side | test accuracy at the deadline (%) | time to 96 % (s) | reached 96 % |",
            "|---|---|---|---|",
        ]
        for s in sides:
            t96 = m[s]["time_to_96_s"]
            reached = sum(v != float("inf") for v in t96)
            lines.append(
                f"| {s} | {_cell(m[s]['final_test_acc'])} "
                f"| {_cell(t96, cap=cap)} | {reached}/{len(t96)} |"
            )
        ratio_keys = [("final_test_acc", "accuracy"), ("time_to_96_s", "time to 96 %")]
    else:
        lines.append(
            f"### Pendulum-v1: best greedy mean return over {tasks.N_EVAL_EPISODES} "
            f"unseen episodes within {cap:.0f} s"
        )
        lines += ["", "| side | best mean return |", "|---|---|"]
        for s in sides:
            lines.append(f"| {s} | {_cell(m[s]['best_return'])} |")
        ratio_keys = [("best_return", "best return")]
    _add_compile_column(lines, by_side)
    lines.append("")
    lines.append("Cells: median [min – max] over seeds.")
    if "es_opt" in m and any(p in m for p in PEERS):
        lines += [
            "",
            "| ratio es_opt / peer (medians) | " + " | ".join(k[1] for k in ratio_keys) + " |",
            "|---|" + "---|" * len(ratio_keys),
        ]
        for p in PEERS:
            if p in m:
                row = [_ratio(m["es_opt"][k], m[p][k]) for k, _ in ratio_keys]
                lines.append(f"| es_opt / {p} | " + " | ".join(row) + " |")
    headline = pairs.HEADLINE[task][0]
    medians = {s: (_stats(m[s][headline]) or (None,))[0] for s in sides}
    pair_lines = pairs.ratio_rows(
        task, sides, lambda a, b, k: _ratio(m[a][k], m[b][k]), ratio_keys, medians
    )
    lines += pair_lines
    if task == tasks.PENDULUM and (pair_lines or ("es_opt" in m and any(p in m for p in PEERS))):
        lines.append("")
        lines.append("Returns are negative: a ratio below 1 means es_opt is better.")
    for s in sides:
        if by_side[s] and all("error" in r or "skipped" in r for r in by_side[s]):
            # Every run of this side failed: say so in its row rather than leave dashes.
            for k, line in enumerate(lines):
                if line.startswith(f"| {s} |"):
                    n_cols = line.count("|") - 2
                    lines[k] = f"| {s} | " + " | ".join(["failed (below)"] * n_cols) + " |"
    failures = [(s, r) for s in sides for r in by_side[s] if "error" in r or "skipped" in r]
    if failures:
        lines += ["", "Failed or skipped runs:", ""]
        for s, r in failures:
            what = r.get("skipped") or r["error"].strip().splitlines()[-1][:300]
            lines.append(f"- {s}, {task}, seed {r.get('seed')}: {what}")
    return "\n".join(lines) + "\n"


def _add_compile_column(lines: list[str], by_side: dict[str, list[dict]]) -> None:
    """Appends a "JIT compile (s)" column to the side table (in place) when a side reports
    ``compile_s``; the side's name says whether it was inside the clock (``-jit``) or not."""
    compile_s = {
        s: [r["compile_s"] for r in rs if r.get("compile_s") is not None]
        for s, rs in by_side.items()
    }
    if not any(compile_s.values()):
        return
    for k, line in enumerate(lines):
        if line.startswith("| side |"):
            lines[k] = line + " JIT compile (s) |"
            lines[k + 1] += "---|"
        elif line.startswith("| ") and line.split(" | ")[0][2:] in by_side:
            side = line.split(" | ")[0][2:]
            where = " (in clock)" if side.endswith("-jit") else ""
            cell = _cell(compile_s[side], 2) + where if compile_s[side] else "–"
            lines[k] = line + f" {cell} |"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_description(python: str) -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    probe = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for n in ['torch', 'numpy', 'gymnasium', 'scikit-learn', 'evotorch',"
        " 'pytorch-optimize', 'evosax', 'jax', 'evox', 'es_opt']:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    try:
        versions = json.loads(
            subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60).stdout
        )
    except Exception as exc:  # the description must not sink the report
        versions = {"error": str(exc)}
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} logical cores",
        f"- OS: {platform.platform()}",
        f"- Python: {platform.python_version()}",
    ]
    lines += [f"- {k}: {v}" for k, v in versions.items()]
    return "\n".join(lines)


def settings_section(results: list[dict]) -> str:
    seen: dict[tuple[str, str], dict] = {}
    for r in results:
        if "settings" in r:
            seen.setdefault((r["side"], r["task"]), r["settings"])
    lines = ["## Settings used", ""]
    for (side, task), cfg in sorted(seen.items()):
        body = ", ".join(f"{k}={v}" for k, v in cfg.items())
        lines.append(f"- **{side}**, {task}: {body}")
    return "\n".join(lines) + "\n"


def plot(results_by_task: dict[str, dict[str, list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for task in results_by_task:
        if task == tasks.CARTPOLE:
            panels.append((task, "time_s", "CartPole-v1: seconds to solve\n(lower is better)"))
        elif task == tasks.DIGITS:
            panels.append((task, "final_test_acc", "Digits: test accuracy (%) at deadline"))
            panels.append((task, "time_to_96_s", "Digits: seconds to 96 %\n(lower is better)"))
        else:
            title = "Pendulum-v1: best mean return\n(higher is better)"
            panels.append((task, "best_return", title))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    colors = {
        "es_opt": "tab:green",
        "evotorch": "tab:blue",
        "pytorch-optimize": "tab:orange",
        "es_opt-pgpe": "mediumseagreen",
        "es_opt-snes": "darkgreen",
        "evotorch-pgpe": "cornflowerblue",
        "evotorch-snes": "navy",
        **{s: "tab:red" for s in pairs.ALGORITHM if s.startswith("evosax")},
        **{s: "tab:purple" for s in pairs.ALGORITHM if s.startswith("evox")},
    }
    for ax, (task, key, title) in zip(axes[0], panels, strict=False):
        by_side = results_by_task[task]
        cap = max((r.get("budget_s", 0) for rs in by_side.values() for r in rs), default=0)
        names, meds, los, his, censored = [], [], [], [], []
        for side, rs in by_side.items():
            vals = metrics(task, rs)[key]
            if not vals:
                names.append(f"{side}\n(failed)")
                meds.append(0), los.append(0), his.append(0), censored.append(False)
                continue
            capped = [cap if v == float("inf") else v for v in vals]
            med, lo, hi = _stats(capped)
            names.append(side)
            meds.append(med), los.append(med - lo), his.append(hi - med)
            censored.append(any(v == float("inf") for v in vals))
        bars = ax.bar(
            names,
            meds,
            yerr=[los, his],
            capsize=6,
            color=[colors.get(n.split("\n")[0], "grey") for n in names],
        )
        for bar, cens in zip(bars, censored, strict=True):
            if cens:
                bar.set_hatch("//")
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Median and range over seeds (hatched: some runs hit the cap)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: list[dict], args, python: str, wall_s: float) -> tuple[str, dict]:
    by_task: dict[str, dict[str, list[dict]]] = {}
    for task in args.tasks:
        by_task[task] = {
            s: [r for r in results if r["side"] == s and r["task"] == task] for s in args.sides
        }
    mode = "quick (1 seed, short caps)" if args.quick else f"{args.seeds} seeds"
    parts = [
        "# es_opt against its peers",
        "",
        f"Mode: {mode}; suite wall time {wall_s / 60:.1f} min. Generated by "
        "`benchmarks/peers/run.py`; task definitions in `benchmarks/peers/tasks.py`.",
        "",
        "## Machine",
        "",
        machine_description(python),
        f"- torch threads per run (OMP/MKL_NUM_THREADS): {args.torch_threads or 'unset'}",
        f"- load average (1/5/15 min) before the suite: {args.load_before}, "
        f"after: {args.load_after} (other jobs share this machine: timings are noisy)",
        "",
        "## Results",
        "",
    ]
    parts += [task_table(task, by_side) for task, by_side in by_task.items()]
    parts.append(settings_section(results))
    return "\n".join(parts), by_task
