"""Draws docs/img/estimator.png, the figure of docs/concepts.md, with es_opt's own noise, shaping
and estimator. Run from the repository root: ``python docs/tools/concepts_figure.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from es_opt.estimator import estimate_gradient
from es_opt.noise import perturbations
from es_opt.shaping import centered_ranks

OUT = Path(__file__).resolve().parents[1] / "img" / "estimator.png"


def fitness(theta: torch.Tensor) -> torch.Tensor:
    """A tilted bowl with its top at (1.5, 1.0): f(θ) = −(θ − c)ᵀ A (θ − c)."""
    a = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=theta.dtype)
    d = theta - torch.tensor([1.5, 1.0], dtype=theta.dtype)
    return -((d @ a) * d).sum(-1)


def estimate(f, theta, sigma, n_samples, seed, generation, shaping):
    """One antithetic ES estimate at ``theta`` (rows of E drawn as es_opt draws them)."""
    dim = theta.numel()
    pairs = range(n_samples // 2)
    eps = perturbations(seed, generation, pairs, dim, dtype=torch.float64)
    members = torch.stack([theta + s * sigma * e for e in eps for s in (1.0, -1.0)])
    scores = shaping(f(members))
    rows = lambda r: eps[r.start : r.stop]  # noqa: E731
    return estimate_gradient(scores, rows, sigma=sigma, dim=dim, dtype=torch.float64), members


def panel_pairs(ax) -> None:
    xs, ys = np.meshgrid(np.linspace(-1.2, 2.6, 200), np.linspace(-1.5, 2.2, 200))
    grid = torch.tensor(np.stack([xs, ys], -1), dtype=torch.float64)
    ax.contour(xs, ys, fitness(grid).numpy(), levels=14, colors="0.75", linewidths=0.7)
    theta = torch.tensor([-0.3, -0.6], dtype=torch.float64)
    g, members = estimate(fitness, theta, 0.4, 8, seed=1, generation=0, shaping=centered_ranks)
    m = members.numpy()
    for j in range(0, len(m), 2):
        ax.plot(m[j : j + 2, 0], m[j : j + 2, 1], color="C0", alpha=0.35, linewidth=0.8)
    ax.scatter(m[0::2, 0], m[0::2, 1], s=18, color="C0", label="θ + σε_j")
    ax.scatter(m[1::2, 0], m[1::2, 1], s=18, color="C0", marker="x", label="θ − σε_j")
    true = torch.func.grad(lambda t: fitness(t))(theta)
    for vec, color, label in ((g, "C3", "ES estimate g"), (true, "k", "true gradient")):
        v = 0.6 * vec / vec.norm()
        ax.annotate(
            "", xy=(theta + v).tolist(), xytext=theta.tolist(),
            arrowprops=dict(arrowstyle="->", color=color, linewidth=2),
        )  # fmt: skip
        ax.plot([], [], color=color, linewidth=2, label=label)
    ax.scatter(*theta.tolist(), color="k", s=25, zorder=3)
    ax.annotate("θ", theta.tolist(), textcoords="offset points", xytext=(-12, -10))
    ax.set_title("4 antithetic pairs, σ = 0.4 (centered ranks)")
    ax.set_xlabel("θ₁")
    ax.set_ylabel("θ₂")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", fontsize="small", framealpha=0.9)


def panel_alignment(ax) -> None:
    """Cosine between the estimate and the true gradient of a noisy 100-D quadratic, against n."""
    dim, center = 100, torch.linspace(-1.0, 1.0, 100, dtype=torch.float64)
    scales = torch.linspace(0.2, 3.0, dim, dtype=torch.float64)
    theta = torch.zeros(dim, dtype=torch.float64)
    true = 2 * scales * center
    sizes = [4, 8, 16, 32, 64, 128, 256, 512]
    for sigma, style in ((0.003, "-o"), (0.03, "-s"), (0.3, "-^")):
        cos = []
        for n in sizes:
            values = []
            for seed in range(10):
                # evaluation noise (e.g. a random episode), drawn from its own seeded generator
                gen = torch.Generator().manual_seed(seed)

                def f(members, gen=gen):
                    clean = -(scales * (members - center).square()).sum(-1)
                    return clean + 0.5 * torch.randn(
                        len(members), generator=gen, dtype=torch.float64
                    )

                g = estimate(f, theta, sigma, n, seed, 0, centered_ranks)[0]
                values.append(float(torch.nn.functional.cosine_similarity(g, true, dim=0)))
            cos.append(np.mean(values))
        ax.plot(sizes, cos, style, markersize=4, label=f"σ = {sigma}")
    pairs = np.array(sizes) / 2
    ax.plot(sizes, np.sqrt(pairs / (pairs + dim + 1)), ":", color="0.4",
            label="√(P / (P + d + 1)): noise-free fitness")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 1)
    ax.set_xlabel("n_samples (evaluations per step, P = n_samples / 2 pairs)")
    ax.set_ylabel("cosine(estimate, true gradient)")
    ax.set_title(f"noisy fitness, d = {dim} parameters (mean of 10 seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")


def main() -> None:
    fig = Figure(figsize=(11.0, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    panel_pairs(left)
    panel_alignment(right)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
