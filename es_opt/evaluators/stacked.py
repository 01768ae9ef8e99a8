"""Evaluating many members of a population in one call with ``torch.func``.

:class:`StackedModel` stacks the selected parameters of several members (``[B, *shape]`` each),
shares everything else (non-selected and frozen parameters, buffers), and applies the net to a
batch of inputs with ``torch.func.vmap`` over ``torch.func.functional_call``: a population of 200
MLPs becomes a handful of batched matrix products. A plain MLP (an ``nn.Linear``, or an
``nn.Sequential`` of ``nn.Linear`` layers and element-wise activations) skips ``vmap`` altogether:
its forward pass is a chain of ``matmul``/``baddbmm`` calls on the stacked weights, planned once
per :class:`StackedModel`, with the layers before the first perturbed one computed once for all
members. That is the same arithmetic at a fraction of ``vmap``'s fixed cost per call (hundreds of
µs), which matters when a rollout calls the population once per time step. With low-rank
perturbations (:class:`~es_opt.perturbations.LowRank`) the MLP path stacks no weights at all: each
layer is one product with the shared center weight over every member's inputs plus a rank-r
correction per member (:func:`~es_opt.perturbations.low_rank_linear`).

Some modules cannot run under ``vmap`` (recurrent layers, BatchNorm or Dropout in training mode,
modules with data-dependent Python control flow or ``.item()``). Calling a :class:`StackedModel`
on such a net raises :class:`VectorizationError`, which names the module and explains how to fall
back to evaluating members one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..model import Model
from ..perturbations import LowRank
from ..population import Population
from ._low_rank_plan import low_rank_linear_step

__all__ = ["ACTIVATION_BUDGET", "StackedModel", "VectorizationError", "mlp_layers"]

ONE_AT_A_TIME_HINT = (
    "evaluate members one at a time instead: set `vectorize = False` on the objective (the "
    "ready-made objectives take `vectorize=False`), and es_opt calls `objective(model, samples)` "
    "once per member"
)


ACTIVATION_BUDGET = 1 << 20
"""Elements of module outputs (all modules, all stacked members) one batched call may produce
(4 MiB of float32): beyond it a :class:`StackedModel` call is split into several. Measured on a
2-core CPU (200 digits MLPs, 1 thread): 1M elements ran 1.03–1.20× the one-at-a-time speed on the
full 1,438-image batch where 4M ran 0.87–1.11× (activations that stay in cache), and 2.3–4.2× on
64 images where 4M gave 2.1–3.4×."""


class VectorizationError(RuntimeError):
    """The net (or one of its modules) cannot be applied to a stacked population with
    ``torch.func.vmap``.

    Attributes:
        module_name: the qualified name of the failing module in the net (``""`` for the net
            itself).
        module_type: its class name.

    Example:
        >>> err = VectorizationError("lstm", "LSTM", "no batching rule")
        >>> err.module_name, err.module_type
        ('lstm', 'LSTM')
    """

    def __init__(self, module_name: str, module_type: str, reason: str, hint: str = ""):
        where = (
            f"module {module_name!r} ({module_type})" if module_name else f"the net ({module_type})"
        )
        advice = f"{hint}; or {ONE_AT_A_TIME_HINT}" if hint else ONE_AT_A_TIME_HINT
        super().__init__(
            f"{where} cannot be evaluated for a stacked population with torch.func.vmap: "
            f"{reason.strip()}\nTo fix it, {advice}."
        )
        self.module_name = module_name
        self.module_type = module_type

    def __reduce__(self):  # keep the attributes across pickling (worker -> main process)
        return (_rebuild_vectorization_error, (self.args[0], self.module_name, self.module_type))


def _rebuild_vectorization_error(message: str, module_name: str, module_type: str):
    err = VectorizationError.__new__(VectorizationError)
    RuntimeError.__init__(err, message)
    err.module_name, err.module_type = module_name, module_type
    return err


ACTIVATIONS: dict[type, Callable[[torch.Tensor], torch.Tensor]] = {
    nn.Tanh: torch.tanh,
    nn.ReLU: torch.relu,
    nn.Sigmoid: torch.sigmoid,
    nn.Identity: lambda x: x,
}
"""Element-wise modules the direct MLP path applies (as these functions)."""


def mlp_layers(net: nn.Module) -> list[tuple[str, nn.Module]] | None:
    """``[(prefix, module)]`` when ``net`` is an ``nn.Linear`` or an ``nn.Sequential`` of
    ``nn.Linear`` layers and the activations of :data:`ACTIVATIONS` (exact types, so a subclass
    with its own ``forward`` is never mistaken for one), else ``None``.

    Example:
        >>> [prefix for prefix, _ in mlp_layers(nn.Sequential(nn.Linear(2, 3), nn.Tanh()))]
        ['0.', '1.']
        >>> mlp_layers(nn.Sequential(nn.Linear(2, 3), nn.Dropout())) is None
        True
    """
    if type(net) is nn.Linear:
        return [("", net)]
    if type(net) is not nn.Sequential:
        return None
    layers = [(f"{name}.", module) for name, module in net.named_children()]
    if layers and all(type(m) is nn.Linear or type(m) in ACTIVATIONS for _, m in layers):
        return layers
    return None


class _MLPPlan:
    """The forward pass of a plain MLP for stacked members, planned once: each step maps
    ``(x, members)`` to the next activations, where ``x`` is ``[N, d]`` while no perturbed layer
    has been applied (computed once for every member) and ``[B, N, d]`` after."""

    def __init__(
        self,
        layers: list[tuple[str, nn.Module]],
        linear_step: Callable[[str, nn.Module], Callable[[torch.Tensor, slice], torch.Tensor]],
        container: bool,
    ):
        self.steps: list[Callable[[torch.Tensor, slice], torch.Tensor]] = []
        self.widths: list[int] = []  # output elements per input row of each module
        for prefix, module in layers:
            if type(module) is nn.Linear:
                self.steps.append(linear_step(prefix, module))
                self.widths.append(module.out_features)
            else:
                act = ACTIVATIONS[type(module)]
                self.steps.append(lambda x, members, act=act: act(x))
                self.widths.append(self.widths[-1] if self.widths else 0)
        if container:
            self.widths.append(self.widths[-1])  # the Sequential's own output

    def __call__(self, inputs: torch.Tensor, members: slice, count: int) -> torch.Tensor:
        x = inputs
        for step in self.steps:
            x = step(x, members)
        if x.dim() == inputs.dim() and x.dim() == 2:  # nothing perturbed: broadcast
            x = x.unsqueeze(0).expand(count, *x.shape)
        return x


def _linear_step(prefix: str, module: nn.Linear, stacked: dict, shared: dict):
    name_w, name_b = prefix + "weight", prefix + "bias"
    weight = stacked.get(name_w, shared.get(name_w))
    bias = stacked.get(name_b, shared.get(name_b)) if module.bias is not None else None
    w_stacked, b_stacked = name_w in stacked, bias is not None and name_b in stacked
    weight_t = weight.detach().transpose(-1, -2)  # [in, out] or [B, in, out]
    if bias is not None:
        bias = bias.detach()
        bias = bias.unsqueeze(-2) if b_stacked else bias  # [B, 1, out] broadcasts over N

    def step(x: torch.Tensor, members: slice) -> torch.Tensor:
        w = weight_t[members] if w_stacked else weight_t
        b = bias[members] if b_stacked else bias
        if w_stacked and b is not None and b.dim() == 3:
            # A shared input [N, in] is expanded (a view): one product per member with the bias
            # added by the same call, the bits of matmul + b without a second pass over the
            # [B, N, out] output (the first layer of a digits MLP: ~25 % less time here).
            x = x.expand(w.shape[0], *x.shape) if x.dim() == 2 else x
            return torch.baddbmm(b, x, w)
        out = torch.matmul(x, w)  # a shared input broadcasts over the stacked weights
        return out if b is None else out + b

    return step


class StackedModel:
    """``B`` members of a population applied at once.

    Args:
        model: the wrapped net (its current parameters are the center).
        population: the generation.
        indices: which evaluations to stack (``B = len(indices)``).

    Calling it with ``inputs`` shared by every member (``per_member=False``, shape ``[N, ...]``)
    or one input batch per member (``per_member=True``, shape ``[B, N, ...]``) returns outputs of
    shape ``[B, N, ...]``; member ``b`` equals the net with ``population.parameters(indices[b])``
    loaded, to float round-off.

    Example:
        >>> net = nn.Linear(3, 2)
        >>> center = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
        >>> pop = Population(0, 0, 0.1, 4, ("weight", "bias"),
        ...                  (net.weight.shape, net.bias.shape), center)
        >>> stacked = StackedModel(Model(net), pop, range(4))
        >>> stacked(torch.zeros(5, 3)).shape, len(stacked), stacked.indices
        (torch.Size([4, 5, 2]), 4, [0, 1, 2, 3])
    """

    def __init__(self, model: Model, population: Population, indices: Sequence[int]):
        self.model = model
        self.population = population
        self.indices = list(indices)
        net = model.net
        selected = set(population.names)
        # members are built from the population's centre (a low-precision net's float32 master
        # weights) and computed in the net's dtype
        self._dtype = next(
            (p.dtype for n, p in net.named_parameters() if n in selected), population.center.dtype
        )
        self.shared = {
            name: param.detach() for name, param in net.named_parameters() if name not in selected
        }
        self.shared.update(dict(net.named_buffers()))
        self._stacked: dict[str, torch.Tensor] | None = None
        layers = mlp_layers(net)
        container = type(net) is nn.Sequential
        if layers is None:
            self._plan = None
        elif isinstance(population.family, LowRank):  # shared base, no stacked weights
            for index in self.indices:
                population.check_index(index)
            center = population.unflatten(population.center.to(self._dtype))
            pairs = sorted({index // 2 for index in self.indices})
            row_of = {pair: row for row, pair in enumerate(pairs)}
            drawn = [noise.to(self._dtype) for noise in population.noise(pairs)]
            noise = dict(zip(population.names, drawn, strict=True))
            rows = [row_of[index // 2] for index in self.indices]
            scale = torch.tensor(
                [population.sign(i) * population.sigma for i in self.indices],
                dtype=self._dtype,
                device=population.center.device,
            )

            def step(prefix: str, module: nn.Module):
                return low_rank_linear_step(
                    prefix, module, population.family, center, self.shared, noise, rows, scale
                )

            self._plan = _MLPPlan(layers, step, container)
        else:
            stacked, shared = self.stacked, self.shared
            self._plan = _MLPPlan(
                layers, lambda prefix, m: _linear_step(prefix, m, stacked, shared), container
            )

    @property
    def stacked(self) -> dict[str, torch.Tensor]:
        """The members' selected parameters, ``[B, *shape]`` each (built on first use: the
        low-rank MLP path never needs them)."""
        if self._stacked is None:
            flat = self.population.stacked_parameters(self.indices)
            self._stacked = self.population.unflatten(flat.to(self._dtype))
        return self._stacked

    def __len__(self) -> int:
        return len(self.indices)

    def member_parameters(self) -> dict[str, torch.Tensor]:
        """Every trainable parameter of the members as a ``[B, *shape]`` tensor, in the net's
        order: the stacked (perturbed) ones, and the others broadcast (a view, no copy). Frozen
        parameters are left out.

        Example:
            >>> net = nn.Linear(2, 1)
            >>> pop = Population(0, 0, 0.1, 2, ("bias",), (net.bias.shape,), net.bias.detach())
            >>> {k: tuple(v.shape) for k, v in StackedModel(Model(net), pop, [0, 1])
            ...     .member_parameters().items()}
            {'weight': (2, 1, 2), 'bias': (2, 1)}
        """
        out = {}
        for name, param in self.model.named_trainable_parameters().items():
            if name in self.stacked:
                out[name] = self.stacked[name]
            else:
                out[name] = param.detach().unsqueeze(0).expand(len(self), *param.shape)
        return out

    def _call(self, stacked: dict[str, torch.Tensor], inputs: Any) -> Any:
        return functional_call(self.model.net, {**self.shared, **stacked}, (inputs,))

    def __call__(self, inputs: Any, *, per_member: bool = False) -> Any:
        if (
            self._plan is not None
            and isinstance(inputs, torch.Tensor)
            and inputs.dim() == (3 if per_member else 2)
        ):
            return self._mlp_call(inputs, per_member)
        in_dims = (0, 0 if per_member else None)
        with torch.no_grad():
            try:
                step = self._members_per_call(inputs, in_dims)
                if step >= len(self):
                    return vmap(self._call, in_dims=in_dims)(self.stacked, inputs)
                parts = []
                for start in range(0, len(self), step):
                    stacked = {k: v[start : start + step] for k, v in self.stacked.items()}
                    part_inputs = inputs[start : start + step] if per_member else inputs
                    parts.append(vmap(self._call, in_dims=in_dims)(stacked, part_inputs))
                return torch.cat(parts)
            except Exception as exc:
                culprit = self._vmap_culprit(inputs, in_dims)
                if culprit is None:  # the net fails without vmap too: not our error to explain
                    raise
                name, module = culprit
                raise VectorizationError(
                    name, type(module).__name__, str(exc).split("\n")[0], _hint(module, exc)
                ) from exc

    def _mlp_call(self, inputs: torch.Tensor, per_member: bool) -> torch.Tensor:
        plan, count = self._plan, len(self)
        if per_member and inputs.shape[0] != count:
            raise ValueError(
                f"per_member inputs must have one batch per member ({count}), got shape "
                f"{tuple(inputs.shape)}"
            )
        rows = inputs.shape[-2]
        step = max(1, min(count, ACTIVATION_BUDGET // max(1, rows * sum(plan.widths))))
        with torch.no_grad():
            if step >= count:
                return plan(inputs, slice(None), count)
            parts = []
            for start in range(0, count, step):
                members = slice(start, min(count, start + step))
                part = inputs[members] if per_member else inputs
                parts.append(plan(part, members, members.stop - start))
            return torch.cat(parts)

    def _members_per_call(self, inputs: Any, in_dims: tuple) -> int:
        """How many members one ``vmap`` call may stack so that their activations stay within
        :data:`ACTIVATION_BUDGET` elements, from one member's forward pass (1/B of the work).

        Measured on a 2-core CPU: 64 members of a 64-128-10 MLP on 1,438 images (47 MB of
        activations) ran at 0.5x the one-at-a-time speed, because nothing stays in cache."""
        if len(self) <= 1 or not isinstance(inputs, torch.Tensor):
            return len(self)
        sizes: list[int] = []

        def count(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor):
                sizes.append(output.numel())

        member = {name: value[0] for name, value in self.stacked.items()}
        one_input = inputs[0] if in_dims[1] == 0 else inputs
        buffers = {name: b.clone() for name, b in self.model.net.named_buffers()}
        handles = [m.register_forward_hook(count) for m in self.model.net.modules()]
        try:
            output = functional_call(
                self.model.net, {**self.shared, **buffers, **member}, (one_input,)
            )
        except Exception:  # let the batched call raise (and explain) the error
            return len(self)
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(output, torch.Tensor):  # only tensor outputs are re-assembled
            return len(self)
        return max(1, min(len(self), ACTIVATION_BUDGET // max(1, sum(sizes))))

    def _vmap_culprit(self, inputs: Any, in_dims: tuple) -> tuple[str, nn.Module] | None:
        """The innermost module that was running when ``vmap`` failed, or ``None`` when the net
        also fails for a single member without ``vmap`` (then the error is the net's own)."""
        member = {name: value[0] for name, value in self.stacked.items()}
        one_input = inputs[0] if in_dims[1] == 0 else inputs
        # Cloned buffers: a module in training mode would update the real ones in place.
        buffers = {name: b.clone() for name, b in self.model.net.named_buffers()}
        try:
            functional_call(self.model.net, {**self.shared, **buffers, **member}, (one_input,))
        except Exception:
            return None
        running: list[tuple[str, nn.Module]] = []
        handles = []
        for name, module in self.model.net.named_modules():
            handles.append(module.register_forward_pre_hook(_push(running, name, module)))
            handles.append(module.register_forward_hook(_pop(running)))
        try:
            vmap(self._call, in_dims=in_dims)(self.stacked, inputs)
        except Exception:
            return running[-1] if running else ("", self.model.net)
        finally:
            for handle in handles:
                handle.remove()
        return None  # it did not fail a second time: nothing certain to report


def _push(running: list, name: str, module: nn.Module):
    def hook(mod: nn.Module, args: Any) -> None:
        running.append((name, module))

    return hook


def _pop(running: list):
    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        running.pop()

    return hook


def _hint(module: nn.Module, exc: Exception) -> str:
    text = str(exc)
    if module.training and isinstance(module, nn.modules.batchnorm._BatchNorm):
        return "call net.eval() so BatchNorm uses its running statistics instead of updating them"
    if "random" in text and module.training:
        return "call net.eval() so the module draws no random numbers (e.g. Dropout)"
    if isinstance(module, nn.RNNBase):
        return "torch.func has no batching rule for recurrent layers"
    return ""
