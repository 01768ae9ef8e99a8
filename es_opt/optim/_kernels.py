"""Element-wise update kernels: RAdam (two arithmetic variants), Ligi, ClipUp, the Lookahead pull.

Both RAdam variants reproduce ``torch.optim.RAdam`` operation by operation, so their results are
bitwise equal to torch's:

* ``torch_foreach_math=True`` follows torch's multi-tensor path (``foreach=True``)::

      b = 1 / ((sqrt(v) + eps) / c),   c = -sqrt(1 - beta2^t) * lr * r_t / (1 - beta1^t)
      theta += m * b

  (plus the un-adapted step while rho_t <= 5). Eight passes over memory, one temporary.
* ``torch_foreach_math=False`` follows torch's single-tensor path (``foreach=False``, torch's
  default on CPU)::

      theta -= ((m / (1 - beta1^t)) * lr) * (sqrt(1 - beta2^t) / (sqrt(v) + eps)) * r_t

  Twelve passes, two temporaries. On large CPU tensors all twelve run on one chunk before the next
  (``_single_tensor_radam``).

The two differ only in rounding. Temporaries of large CPU tensors live in reused scratch memory.

Why not call ``torch.optim.radam.radam``: it computes the same bits, but on torch's default CPU
path (single-tensor) this kernel was 3.5x faster on an MLP's parameters (1.07M in 6 tensors) and
1.2x faster on 100 tensors of 100x1000, measured in one run of ``benchmarks/optimizer_step.py``
(its last table; numbers in docs/optimizers.md). torch's single-tensor RAdam allocates
temporaries per tensor per step; this one reuses scratch memory and works in cache-sized chunks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._buckets import OWN_BUCKET_NUMEL, Scratch, buckets
from ._grads import global_grad_norm

# Elements per chunk of torch's single-tensor RAdam arithmetic on a large CPU tensor. Each
# operation costs a few microseconds of dispatch whatever its size, so chunks are large: the
# dozen passes over one chunk (six streams of 2 MiB in float32) stay in the last-level cache
# instead of streaming a huge tensor through main memory twelve times.
RADAM_CHUNK_NUMEL = 1 << 19


def _sqrt(bucket, tensors: list[Tensor], scratch: Scratch | None, slot: int) -> list[Tensor]:
    if bucket.single and scratch is not None:
        out = scratch.get(tensors[0], slot)
        torch.sqrt(tensors[0], out=out)
        return [out]
    return torch._foreach_sqrt(tensors)


def _div(bucket, tensors: list[Tensor], divisors: list[float], scratch, slot) -> list[Tensor]:
    if bucket.single and scratch is not None:
        out = scratch.get(tensors[0], slot)
        torch.div(tensors[0], divisors[0], out=out)
        return [out]
    return torch._foreach_div(tensors, divisors)


def radam_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    steps: list[int],
    *,
    beta1: float,
    beta2: float,
    lr: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    torch_foreach_math: bool,
    scratch: Scratch | None,
) -> None:
    """One RAdam step on every tensor (``steps`` already counts this step)."""
    if not params:
        return
    rho_inf = 2 / (1 - beta2) - 1
    bias_correction1, bias_correction2, rects = [], [], []
    for step in steps:
        bc2 = 1 - beta2**step
        rho_t = rho_inf - 2 * step * (beta2**step) / bc2
        rect = 0
        if rho_t > 5:
            rect = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            rect = rect**0.5
        bias_correction1.append(1 - beta1**step)
        bias_correction2.append(bc2)
        rects.append(rect)

    if not torch_foreach_math:
        # Large CPU tensors: every operation of the step per cache-sized chunk, in place.
        rest = []
        for i, p in enumerate(params):
            if scratch is None or p.device.type != "cpu" or p.numel() < OWN_BUCKET_NUMEL:
                rest.append(i)
                continue
            _single_tensor_radam(
                p,
                grads[i],
                exp_avgs[i],
                exp_avg_sqs[i],
                bias_correction1[i],
                bias_correction2[i] ** 0.5,
                rects[i],
                beta1=beta1,
                beta2=beta2,
                lr=lr,
                eps=eps,
                weight_decay=weight_decay,
                decoupled_weight_decay=decoupled_weight_decay,
                scratch=scratch,
            )
        if not rest:
            return
        if len(rest) < len(params):
            params, grads, exp_avgs, exp_avg_sqs = (
                [column[i] for i in rest] for column in (params, grads, exp_avgs, exp_avg_sqs)
            )
            bias_correction1, bias_correction2, rects = (
                [column[i] for i in rest] for column in (bias_correction1, bias_correction2, rects)
            )

    if weight_decay != 0:
        if decoupled_weight_decay:
            torch._foreach_mul_(params, 1 - lr * weight_decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)

    for bucket in buckets([params, grads, exp_avgs, exp_avg_sqs]):
        p, g, m, v = (bucket.column(k) for k in range(4))
        bc1 = [bias_correction1[i] for i in bucket.index]
        bc2 = [bias_correction2[i] for i in bucket.index]
        rect = [rects[i] for i in bucket.index]
        torch._foreach_lerp_(m, g, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g, g, 1 - beta2)
        if torch_foreach_math:
            _foreach_math_tail(bucket, p, m, v, bc1, bc2, rect, lr=lr, eps=eps, scratch=scratch)
        else:
            _single_math_tail(bucket, p, m, v, bc1, bc2, rect, lr=lr, eps=eps, scratch=scratch)


def _single_tensor_radam(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    bias_correction1: float,
    bias_correction2_sqrt: float,
    rect: float,
    *,
    beta1: float,
    beta2: float,
    lr: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    scratch: Scratch,
) -> None:
    """torch's single-tensor RAdam step on one CPU tensor, chunk by chunk.

    The same element-wise operations in the same order as ``torch.optim.RAdam(foreach=False)``::

        theta *= 1 - lr * wd                     (decoupled decay)  or  g = g + wd * theta (L2)
        m = lerp(m, g, 1 - beta1);  v = v * beta2 + (1 - beta2) * g * g
        u = (m / bc1) * lr
        u = u * (reciprocal(sqrt(v) + eps) * sqrt(bc2)) * r_t          (only when rho_t > 5)
        theta -= u

    but with the temporaries in scratch memory and all operations done on one chunk of
    ``RADAM_CHUNK_NUMEL`` elements before the next, so the data stays in cache. Element-wise
    results do not depend on the chunking: the result is torch's, bit for bit.
    """
    decay = 1 - lr * weight_decay if weight_decay != 0 and decoupled_weight_decay else None
    l2 = weight_decay if weight_decay != 0 and not decoupled_weight_decay else None
    rows = (param, grad, exp_avg, exp_avg_sq)
    size = RADAM_CHUNK_NUMEL
    if param.numel() > size and all(t.is_contiguous() for t in rows):
        flat = [t.view(-1) for t in rows]
        starts = range(0, flat[0].numel(), size)
        chunks = [[t[start : start + size] for t in flat] for start in starts]
    else:
        chunks = [rows]
    for p, g, m, v in chunks:
        update = scratch.get(m, 0)
        if decay is not None:
            p.mul_(decay)
        elif l2 is not None:
            g = torch.add(g, p, alpha=l2, out=scratch.get(g, 2))
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2)
        v.addcmul_(g, g, value=1 - beta2)
        torch.div(m, bias_correction1, out=update)
        update.mul_(lr)
        if rect > 0:
            adaptive = torch.sqrt(v, out=scratch.get(v, 1))
            adaptive.add_(eps)
            adaptive.reciprocal_()
            adaptive.mul_(bias_correction2_sqrt)
            update.mul_(adaptive)
            update.mul_(rect)
        p.sub_(update)


def _foreach_math_tail(bucket, p, m, v, bc1, bc2, rect, *, lr, eps, scratch) -> None:
    # The scalars are torch's own expressions: a rectified tensor divides by
    # -sqrt(bc2) * lr * r / bc1 and adds -0.0 (an exact no-op, so it is skipped); an un-rectified
    # one divides by -0.0 (giving -0 after the reciprocal) and adds -lr / bc1.
    unrectified = [0 if r > 0 else 1.0 for r in rect]
    unrect_step = [(lr * u / b) * -1 for u, b in zip(unrectified, bc1, strict=True)]
    divisor = [(b2**0.5) * (lr * r / b1) * -1 for b1, b2, r in zip(bc1, bc2, rect, strict=True)]
    buffer = _sqrt(bucket, v, scratch, 0)
    torch._foreach_add_(buffer, eps)
    torch._foreach_div_(buffer, divisor)
    torch._foreach_reciprocal_(buffer)
    if any(unrectified):
        torch._foreach_add_(buffer, unrect_step)
    torch._foreach_addcmul_(p, m, buffer)


def _single_math_tail(bucket, p, m, v, bc1, bc2, rect, *, lr, eps, scratch) -> None:
    update = _div(bucket, m, bc1, scratch, 0)
    torch._foreach_mul_(update, lr)
    rectified = [k for k, r in enumerate(rect) if r > 0]
    if rectified:
        # sqrt(bc2) / (sqrt(v) + eps) is computed by torch as reciprocal(...) * sqrt(bc2)
        adaptive = _sqrt(bucket, [v[k] for k in rectified], scratch, 1)
        torch._foreach_add_(adaptive, eps)
        torch._foreach_reciprocal_(adaptive)
        torch._foreach_mul_(adaptive, [bc2[k] ** 0.5 for k in rectified])
        rectified_update = [update[k] for k in rectified]
        torch._foreach_mul_(rectified_update, adaptive)
        torch._foreach_mul_(rectified_update, [rect[k] for k in rectified])
    torch._foreach_sub_(p, update)


def ligi_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    steps: list[int],
    *,
    beta1: float,
    beta2: float,
    gamma: float,
    lr: float,
    eps: float,
    weight_decay: float,
    scratch: Scratch | None,
) -> None:
    """One Ligi step on every tensor (``steps`` already counts this step)."""
    if not params:
        return
    corrections = [beta1 * (1 - beta2 ** (t - 1)) + (1 - beta1) for t in steps]
    if weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    for bucket in buckets([params, grads, exp_avgs]):
        p, g, m = (bucket.column(k) for k in range(3))
        if bucket.single and scratch is not None:
            c, abs_g, abs_c = (scratch.get(m[0], slot) for slot in range(3))
            torch.lerp(m[0], g[0], 1 - beta1, out=c)
            torch.abs(g[0], out=abs_g)
            c, abs_g, abs_c = [c], [abs_g], [abs_c]
        else:
            c = torch._foreach_lerp(m, g, 1 - beta1)
            abs_g = torch._foreach_abs(g)
            abs_c = None
        # c = (beta1 m + (1 - beta1) g) / bc, interpolated with one rounding less than mul + add
        torch._foreach_div_(c, [corrections[i] for i in bucket.index])
        torch._foreach_lerp_(m, g, 1 - beta2)
        if abs_c is None:
            abs_c = torch._foreach_abs(c)
        else:
            torch.abs(c[0], out=abs_c[0])
        # denominator = gamma |c| + (1 - gamma) |g| + eps, as one interpolation
        torch._foreach_lerp_(abs_g, abs_c, gamma)
        torch._foreach_add_(abs_g, eps)
        torch._foreach_addcdiv_(p, c, abs_g, value=-lr)


def clipup_update(
    params: list[Tensor],
    grads: list[Tensor],
    velocities: list[Tensor],
    *,
    lr: float,
    momentum: float,
    max_speed: float,
) -> None:
    r"""One ClipUp step on the tensors of one group, taken together as one vector.

    ``v ← clip(momentum·v − lr·g/‖g‖, max_speed)``, ``θ ← θ + v``, where a zero gradient gives
    no push (instead of 0/0) and ``clip`` rescales ``v`` to norm ``max_speed`` when it is longer.
    Norms are tensors: the step never waits for the device.
    """
    if not params:
        return
    grad_norm = global_grad_norm(grads)
    push = torch.where(grad_norm > 0, -lr / grad_norm, torch.zeros_like(grad_norm))
    torch._foreach_mul_(velocities, momentum)
    for v, g in zip(velocities, grads, strict=True):
        v.add_(g * push.to(device=g.device, dtype=g.dtype))
    speed = global_grad_norm(velocities)
    # rescale only when too fast (also keeps 0/0 out when lr = 0 makes max_speed = 0)
    ratio = torch.where(speed > max_speed, max_speed / speed, torch.ones_like(speed))
    for v in velocities:
        v.mul_(ratio.to(device=v.device, dtype=v.dtype))
    torch._foreach_add_(params, velocities)


def lookahead_sync(params: list[Tensor], slows: list[Tensor], alpha: float) -> None:
    r"""The Lookahead pull for every pair, in place: :math:`\theta \leftarrow \phi + \alpha
    (\theta - \phi)`, :math:`\phi \leftarrow \theta`."""
    if not params:
        return
    if alpha == 1.0:
        torch._foreach_copy_(slows, params)
        return
    torch._foreach_lerp_(slows, params, alpha)
    torch._foreach_copy_(params, slows)
