"""Small training tasks that score an update rule in well under two seconds on one CPU core.

Each task builds its network from a seed, draws minibatches as a pure function of (seed, step),
and measures the loss on a fixed evaluation set. The suite covers four kinds of landscape:

* ``digits_mlp``: a 64-32-10 ReLU network on scikit-learn's 8x8 digits (cross-entropy);
* ``digits_logistic``: multinomial logistic regression on the same digits (convex);
* ``ngram_lm``: a character-level language model (embeddings of the previous three symbols, one
  hidden layer) on text from a fixed random second-order Markov source over 16 symbols;
* ``ill_conditioned``: least squares whose design has condition number 1000 (noisy minibatches).

``sine_regression`` (a 1-32-32-1 tanh network fitting a sum of sines) is held out of the suite to
test a found rule on a task the search never saw.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import skip_init

__all__ = ["HELD_OUT", "SUITE", "Task", "TaskRun", "make_task"]


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits  # imported here: scikit-learn is optional

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    return x, torch.tensor(data.target, dtype=torch.long)


@functools.lru_cache(maxsize=4)
def _markov_text(seed: int, length: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = 16
    # sparse-ish transition table: each context prefers a few symbols
    logits = torch.randn(n, n, n, generator=gen) * 2.5
    probs = torch.softmax(logits, dim=-1)
    text = torch.empty(length, dtype=torch.long)
    text[:2] = torch.randint(n, (2,), generator=gen)
    uniform = torch.rand(length, generator=gen)
    cdf = probs.cumsum(-1)
    for i in range(2, length):
        row = cdf[text[i - 2], text[i - 1]]
        text[i] = min(int(torch.searchsorted(row, uniform[i])), n - 1)
    return text


def _mlp(sizes: tuple[int, ...], activation: type[nn.Module], gen: torch.Generator) -> nn.Module:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(activation())
        linear = skip_init(nn.Linear, a, b)  # no draw from the global generator
        with torch.no_grad():
            bound = 1 / math.sqrt(a)
            linear.weight.copy_((torch.rand(b, a, generator=gen) * 2 - 1) * bound)
            linear.bias.zero_()
        layers.append(linear)
    return nn.Sequential(*layers)


class TaskRun:
    """One network being trained on a task: ``train(n)`` steps, ``loss()`` on the eval set.

    Args:
        model: the network.
        batch_loss: ``step -> loss`` of the minibatch of that step (a pure function of the step).
        eval_loss: the loss on the fixed evaluation set.
    """

    def __init__(
        self,
        model: nn.Module,
        batch_loss: Callable[[int], Tensor],
        eval_loss: Callable[[], Tensor],
    ) -> None:
        self.model = model
        self.batch_loss = batch_loss
        self.eval_loss = eval_loss
        self.steps_done = 0
        self.failed = False

    def train(self, optimizer: torch.optim.Optimizer, n_steps: int) -> None:
        """Run ``n_steps`` optimizer steps. Stops for good once the loss is not finite or the
        optimizer raises (a searched rule may compute a constant too large for float32): the run
        has diverged and :meth:`loss` is ``inf``."""
        for _ in range(n_steps):
            if self.failed:
                return
            optimizer.zero_grad(set_to_none=True)
            with torch.enable_grad():  # callers such as ES evaluate under no_grad
                loss = self.batch_loss(self.steps_done)
            self.steps_done += 1
            if not torch.isfinite(loss):
                self.failed = True
                return
            with torch.enable_grad():
                loss.backward()
            try:
                optimizer.step()
            except (RuntimeError, ValueError, ArithmeticError):
                self.failed = True

    def loss(self) -> float:
        """The evaluation loss now (``inf`` when not finite or after a failure)."""
        if self.failed:
            return math.inf
        with torch.no_grad():
            value = float(self.eval_loss())
        return value if math.isfinite(value) else math.inf


@dataclass(frozen=True)
class Task:
    """A training task: its name, its number of steps, and how to build a run from a seed."""

    name: str
    steps: int
    kind: str

    def make(self, seed: int) -> TaskRun:
        """A fresh run: network weights and minibatches drawn from ``seed``."""
        return _BUILDERS[self.kind](seed)


def _classification(model: nn.Module, x: Tensor, y: Tensor, seed: int, batch: int) -> TaskRun:
    n_eval = 400
    x_train, y_train, x_eval, y_eval = x[n_eval:], y[n_eval:], x[:n_eval], y[:n_eval]
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed + 1))
    loss_fn = nn.functional.cross_entropy

    def batch_loss(step: int) -> Tensor:
        start = (step * batch) % (len(order) - batch)
        index = order[start : start + batch]
        return loss_fn(model(x_train[index]), y_train[index])

    return TaskRun(model, batch_loss, lambda: loss_fn(model(x_eval), y_eval))


def _digits_mlp(seed: int) -> TaskRun:
    x, y = _digits()
    gen = torch.Generator().manual_seed(seed)
    return _classification(_mlp((64, 32, 10), nn.ReLU, gen), x, y, seed, 64)


def _digits_logistic(seed: int) -> TaskRun:
    x, y = _digits()
    gen = torch.Generator().manual_seed(seed)
    return _classification(_mlp((64, 10), nn.ReLU, gen), x, y, seed, 64)


class _NGram(nn.Module):
    def __init__(self, gen: torch.Generator, n_symbols: int = 16, context: int = 3) -> None:
        super().__init__()
        self.embed = skip_init(nn.Embedding, n_symbols, 8)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(n_symbols, 8, generator=gen))
        self.head = _mlp((8 * context, 48, n_symbols), nn.Tanh, gen)

    def forward(self, contexts: Tensor) -> Tensor:
        return self.head(self.embed(contexts).flatten(1))


def _ngram_lm(seed: int) -> TaskRun:
    text = _markov_text(12345, 6000)
    contexts = torch.stack([text[0:-3], text[1:-2], text[2:-1]], dim=1)
    targets = text[3:]
    gen = torch.Generator().manual_seed(seed)
    return _classification(_NGram(gen), contexts, targets, seed, 64)


def _ill_conditioned(seed: int) -> TaskRun:
    data_gen = torch.Generator().manual_seed(777)
    dim, n = 32, 512
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=data_gen))
    singular = torch.logspace(0, -1.5, dim)  # condition number of X^T X: 10^3
    x = torch.randn(n, dim, generator=data_gen) @ (q * singular) @ q.T
    y = x @ torch.randn(dim, generator=data_gen) + 0.01 * torch.randn(n, generator=data_gen)
    gen = torch.Generator().manual_seed(seed)
    model = _mlp((dim, 1), nn.ReLU, gen)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))

    def batch_loss(step: int) -> Tensor:
        start = (step * 32) % (n - 32)
        index = order[start : start + 32]
        return (model(x[index]).squeeze(1) - y[index]).square().mean()

    return TaskRun(model, batch_loss, lambda: (model(x).squeeze(1) - y).square().mean())


def _sine_regression(seed: int) -> TaskRun:
    data_gen = torch.Generator().manual_seed(99)
    x = torch.rand(512, 1, generator=data_gen) * 6 - 3
    y = torch.sin(2 * x) + 0.5 * torch.sin(5 * x)
    gen = torch.Generator().manual_seed(seed)
    model = _mlp((1, 32, 32, 1), nn.Tanh, gen)
    order = torch.randperm(512, generator=torch.Generator().manual_seed(seed + 1))

    def batch_loss(step: int) -> Tensor:
        start = (step * 32) % (512 - 32)
        index = order[start : start + 32]
        return (model(x[index]) - y[index]).square().mean()

    return TaskRun(model, batch_loss, lambda: (model(x) - y).square().mean())


_BUILDERS: dict[str, Callable[[int], TaskRun]] = {
    "digits_mlp": _digits_mlp,
    "digits_logistic": _digits_logistic,
    "ngram_lm": _ngram_lm,
    "ill_conditioned": _ill_conditioned,
    "sine_regression": _sine_regression,
}

SUITE: tuple[Task, ...] = (
    Task("digits_mlp", 90, "digits_mlp"),
    Task("digits_logistic", 90, "digits_logistic"),
    Task("ngram_lm", 90, "ngram_lm"),
    Task("ill_conditioned", 90, "ill_conditioned"),
)
"""The search suite."""

HELD_OUT: tuple[Task, ...] = (Task("sine_regression", 300, "sine_regression"),)
"""Tasks kept out of the search, to test found rules on."""


def make_task(name: str, steps: int | None = None) -> Task:
    """A task of the suite or held out, by name, optionally with another number of steps."""
    for task in (*SUITE, *HELD_OUT):
        if task.name == name:
            return task if steps is None else Task(task.name, steps, task.kind)
    names = [t.name for t in (*SUITE, *HELD_OUT)]
    raise ValueError(f"name must be one of {names}, got {name!r}")
