"""Known update rules as programs: AdamW, Lion, Ligi, SGD with momentum, a RAdam-like rule.

Each text reproduces a reference, with the reference's default hyperparameters written as
constants (``lr`` and ``weight_decay`` stay the optimizer's arguments):

=============  ==============================================  ===============================
rule           reference                                       agreement
=============  ==============================================  ===============================
adamw          ``torch.optim.AdamW`` (betas 0.9, 0.999, eps    bit for bit (float32, CPU)
               1e-8; its CPU default, the for-loop path)
lion           Lion (Chen et al. 2023, Alg. 2) transcribed:    bit for bit
               ``c = beta1 m + (1 - beta1) g`` (betas 0.9,
               0.99)
ligi           ``es_opt.optim.Ligi`` (betas 0.9, 0.99, gamma   bit for bit
               0.9, eps 1e-15)
sgd_momentum   ``torch.optim.SGD(momentum=0.9)``               bit for bit
radam_like     RAdam (Liu et al. 2020) without branches: the   rule of its own (no reference)
               rectification ``r_t = sqrt(max(x_t, 0))`` is 0
               while rho_t <= 4, so early steps are skipped
               as in the authors' code
=============  ==============================================  ===============================

Example:
    >>> print(RULES["sgd_momentum"].strip())
    # SGD with momentum 0.9 (torch.optim.SGD, dampening 0)
    v1 = mul(v1, 0.9)
    v1 = add(v1, g)
    update = mul(v1, 1.0)
"""

from __future__ import annotations

from .program import Program, parse_program

__all__ = ["RULES", "load_rule"]

ADAMW = """
# AdamW (Loshchilov and Hutter 2019) as torch.optim.AdamW computes it; decay is the optimizer's
t0 = sub(1.0, 0.9)
v1 = lerp(v1, g, t0)
t1 = sub(1.0, 0.999)
t2 = mul(g, t1)
t3 = mul(v2, 0.999)
v2 = fma(t2, g, t3)
t4 = pow(0.9, step)
t4 = sub(1.0, t4)
t5 = pow(0.999, step)
t5 = sub(1.0, t5)
t5 = sqrt(t5)
t6 = sqrt(v2)
t6 = div(t6, t5)
t6 = add(t6, 1e-08)
t7 = div(v1, t6)
update = div(t7, t4)
"""

LION = """
# Lion (Chen et al. 2023): update = sign(beta1 m + (1 - beta1) g); m = beta2 m + (1 - beta2) g
t0 = mul(v1, 0.9)
t1 = sub(1.0, 0.9)
t1 = mul(g, t1)
t0 = add(t0, t1)
update = sign(t0)
v1 = mul(v1, 0.99)
t2 = sub(1.0, 0.99)
t2 = mul(g, t2)
v1 = add(v1, t2)
"""

LIGI = """
# Ligi (RLOS), as es_opt.optim.Ligi: c = lerp(m, g, 1 - beta1) / b_t,
# b_t = beta1 (1 - beta2^(t-1)) + 1 - beta1; update = c / (gamma |c| + (1 - gamma) |g| + eps)
t0 = sub(1.0, 0.9)
t1 = lerp(v1, g, t0)
t2 = sub(step, 1.0)
t2 = pow(0.99, t2)
t2 = sub(1.0, t2)
t2 = mul(0.9, t2)
t2 = add(t2, t0)
t1 = div(t1, t2)
t3 = sub(1.0, 0.99)
v1 = lerp(v1, g, t3)
t4 = abs(t1)
t5 = abs(g)
t5 = lerp(t5, t4, 0.9)
t5 = add(t5, 1e-15)
update = div(t1, t5)
"""

SGD_MOMENTUM = """
# SGD with momentum 0.9 (torch.optim.SGD, dampening 0)
v1 = mul(v1, 0.9)
v1 = add(v1, g)
update = mul(v1, 1.0)
"""

RADAM_LIKE = """
# RAdam-like (Liu et al. 2020), beta1 0.9, beta2 0.999: update = r_t m_hat / (sqrt(v_hat) + eps),
# rho_inf = 2 / (1 - beta2) - 1 = 1999, rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t),
# r_t = sqrt(max((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t), 0))
v1 = lerp(v1, g, 0.1)
t0 = mul(g, g)
v2 = lerp(v2, t0, 0.001)
t1 = pow(0.9, step)
t1 = sub(1.0, t1)
t2 = pow(0.999, step)
t3 = sub(1.0, t2)
t4 = mul(step, t2)
t4 = mul(t4, 2.0)
t4 = div(t4, t3)
t4 = sub(1999.0, t4)
t5 = sub(t4, 4.0)
t6 = sub(t4, 2.0)
t5 = mul(t5, t6)
t5 = mul(t5, 1999.0)
t6 = mul(t4, 3964050.0)
t5 = div(t5, t6)
t5 = max(t5, 0.0)
t5 = sqrt(t5)
t7 = sqrt(t3)
t8 = sqrt(v2)
t8 = div(t8, t7)
t8 = add(t8, 1e-08)
t9 = div(v1, t8)
t9 = mul(t9, t5)
update = div(t9, t1)
"""

RULES: dict[str, str] = {
    "adamw": ADAMW,
    "lion": LION,
    "ligi": LIGI,
    "sgd_momentum": SGD_MOMENTUM,
    "radam_like": RADAM_LIKE,
}
"""The shipped rules' texts, by name."""


def load_rule(name: str) -> Program:
    """The shipped rule ``name`` (one of :data:`RULES`) as a :class:`Program`."""
    if name not in RULES:
        raise ValueError(f"name must be one of {sorted(RULES)}, got {name!r}")
    return parse_program(RULES[name])
