"""Frozen trajectories: RangerLite, Ligi and Lookahead give bit for bit what they gave before the
optim package was reorganised.

The reference values were produced by the code before the reorganisation (hex floats of a few
entries of each parameter, and the float64 sum of a tensor large enough for the chunked CPU path)
and are not to be regenerated: a difference is a behaviour change.
"""

from __future__ import annotations

import pytest
import torch

from es_opt.optim import Ligi, Lookahead, RangerLite


def _params(dtype):
    g = torch.Generator().manual_seed(11)
    return [
        torch.randn(4, 3, generator=g, dtype=dtype).requires_grad_(),
        torch.randn(3, generator=g, dtype=dtype).requires_grad_(),
        torch.randn(5, 4, generator=g, dtype=dtype).t().requires_grad_(),  # non-contiguous
        torch.randn(70_000, generator=g, dtype=dtype).requires_grad_(),  # own scratch bucket
    ]


# Built with the seed rangerlite names, as the references were; test_optim_rangerlite checks that
# the new names give the same optimizer.
CASES = {
    "rangerlite_default": lambda ps: RangerLite(ps, lr=0.05),
    "rangerlite_foreach": lambda ps: RangerLite(
        ps, lr=0.05, foreach=True, lookahead_steps=4, lookahead_alpha=0.3
    ),
    "rangerlite_l2_max_clip": lambda ps: RangerLite(
        ps,
        lr=0.03,
        weight_decay=0.1,
        decoupled_weight_decay=False,
        maximize=True,
        grad_clip_norm=1.5,
        grad_clip_value=0.7,
    ),  # fmt: skip
    "rangerlite_decay": lambda ps: RangerLite(
        ps, lr=0.02, weight_decay=0.05, betas=(0.9, 0.99), eps=1e-8
    ),
    "ligi": lambda ps: Ligi(ps, lr=0.01, weight_decay=0.1),
    "lookahead_adam": lambda ps: Lookahead(torch.optim.Adam(ps, lr=0.02), sync_period=3, alpha=0.6),
}


def _run(name, dtype):
    ps = _params(dtype)
    opt = CASES[name](ps)
    g = torch.Generator().manual_seed(12)
    for t in range(14):  # past RAdam's rectification (step 6) and several Lookahead syncs
        for k, p in enumerate(ps):
            missing = k == 1 and t % 3 == 2  # a parameter that misses every third step
            p.grad = None if missing else torch.randn(p.shape, generator=g, dtype=dtype)
        opt.step()
    values = [float(x) for p in ps[:3] for x in p.detach().reshape(-1)[:4]]
    big = ps[3].detach()
    return values + [float(big[0]), float(big[12_345]), float(big[-1]), float(big.double().sum())]


REFERENCE = {
    ("rangerlite_default", "float32"): [
        "0x1.97b1fc0000000p-1",
        "0x1.023f9c0000000p+1",
        "-0x1.58b71c0000000p-1",
        "-0x1.5d5f1e0000000p+0",
        "-0x1.db766e0000000p-3",
        "-0x1.098cb00000000p+0",
        "0x1.5a7f9e0000000p-3",
        "-0x1.abe66a0000000p-3",
        "0x1.0b5f520000000p-1",
        "0x1.58686c0000000p-4",
        "-0x1.1ddf4a0000000p+0",
        "-0x1.fe4c300000000p-1",
        "0x1.7f3a600000000p-2",
        "0x1.5fe9dc0000000p+0",
        "-0x1.2dc993dd0ac00p+7",
    ],
    ("rangerlite_foreach", "float32"): [
        "0x1.8c5e500000000p-1",
        "0x1.fd08a80000000p+0",
        "-0x1.5dc7120000000p-1",
        "-0x1.5764540000000p+0",
        "-0x1.de7edc0000000p-3",
        "-0x1.0d28cc0000000p+0",
        "0x1.5750240000000p-3",
        "-0x1.b7ae9c0000000p-3",
        "0x1.0c557a0000000p-1",
        "0x1.68eebe0000000p-4",
        "-0x1.0f346a0000000p+0",
        "-0x1.e288fc0000000p-1",
        "0x1.704da00000000p-2",
        "0x1.62272c0000000p+0",
        "-0x1.431e3af92df50p+7",
    ],
    ("rangerlite_l2_max_clip", "float32"): [
        "0x1.727e980000000p-1",
        "0x1.ec3d9e0000000p+0",
        "-0x1.5f45d00000000p-1",
        "-0x1.48b6b80000000p+0",
        "-0x1.d179220000000p-3",
        "-0x1.0edf9c0000000p+0",
        "0x1.44bb100000000p-3",
        "-0x1.b9ceae0000000p-3",
        "0x1.0821200000000p-1",
        "0x1.5cf5160000000p-4",
        "-0x1.e9a9cc0000000p-1",
        "-0x1.b0c4ee0000000p-1",
        "0x1.4d95b40000000p-2",
        "0x1.60747a0000000p+0",
        "-0x1.5e940a33e7e00p+7",
    ],
    ("rangerlite_decay", "float32"): [
        "0x1.8569740000000p-1",
        "0x1.f488200000000p+0",
        "-0x1.5c42a40000000p-1",
        "-0x1.52ecf20000000p+0",
        "-0x1.dc54e60000000p-3",
        "-0x1.0dac1a0000000p+0",
        "0x1.58bcc20000000p-3",
        "-0x1.b6e35a0000000p-3",
        "0x1.0a33220000000p-1",
        "0x1.798f460000000p-4",
        "-0x1.061bd80000000p+0",
        "-0x1.cff56c0000000p-1",
        "0x1.68c12a0000000p-2",
        "0x1.60f0600000000p+0",
        "-0x1.4d051e2ab5b00p+7",
    ],
    ("ligi", "float32"): [
        "0x1.a97b8a0000000p-1",
        "0x1.e6b4e60000000p+0",
        "-0x1.4254fa0000000p-1",
        "-0x1.62add20000000p+0",
        "-0x1.d9bfee0000000p-3",
        "-0x1.0f75440000000p+0",
        "0x1.772ba80000000p-3",
        "-0x1.738a4c0000000p-3",
        "0x1.ffa8080000000p-2",
        "0x1.1a07b20000000p-3",
        "-0x1.034e560000000p+0",
        "-0x1.c688880000000p-1",
        "0x1.8213460000000p-2",
        "0x1.6ba1700000000p+0",
        "-0x1.6540275ee0000p+7",
    ],
    ("lookahead_adam", "float32"): [
        "0x1.ae0a040000000p-1",
        "0x1.f4ecb00000000p+0",
        "-0x1.4d6fac0000000p-1",
        "-0x1.68fd2e0000000p+0",
        "-0x1.e789bc0000000p-3",
        "-0x1.121f320000000p+0",
        "0x1.8a42240000000p-3",
        "-0x1.61b1d40000000p-3",
        "0x1.04aabc0000000p-1",
        "0x1.f98a5a0000000p-4",
        "-0x1.0df8e20000000p+0",
        "-0x1.ce9d1e0000000p-1",
        "0x1.a73f460000000p-2",
        "0x1.6b91780000000p+0",
        "-0x1.6430f18b42700p+7",
    ],
    ("rangerlite_default", "float64"): [
        "0x1.8340ad5ae9e1fp-1",
        "0x1.04517925cbcf8p+1",
        "-0x1.8248177fe2a02p-1",
        "-0x1.5e665398af639p+0",
        "-0x1.20907a9a9bac6p-2",
        "-0x1.005a91976a759p+0",
        "0x1.409970350a3a3p-3",
        "-0x1.e131fda52b6e1p-1",
        "0x1.c4c065cb38452p-1",
        "-0x1.f5a75fdc16408p-3",
        "0x1.447d216edbee7p+0",
        "-0x1.4ee2692cb327bp+0",
        "0x1.5ff9452033c2ap+0",
        "0x1.9149e7e98ec18p-2",
        "0x1.0ee7951b7ba53p+7",
    ],
    ("rangerlite_foreach", "float64"): [
        "0x1.7f5a5766b11f4p-1",
        "0x1.ffc9e7013946dp+0",
        "-0x1.77650fb75e9d5p-1",
        "-0x1.57b06b7733390p+0",
        "-0x1.0d25cb6ca2febp-2",
        "-0x1.07810b0744ebap+0",
        "0x1.474b5e4dc9ae1p-3",
        "-0x1.efe9000d2bb8ep-1",
        "0x1.d61488b48743ep-1",
        "-0x1.fc820730c3820p-3",
        "0x1.40971174ffb8fp+0",
        "-0x1.51039caa5ba3fp+0",
        "0x1.5b863d6bff7f0p+0",
        "0x1.8a1bed0da3abcp-2",
        "0x1.0ab4a089b01d4p+7",
    ],
    ("rangerlite_l2_max_clip", "float64"): [
        "0x1.729159fbfe7b9p-1",
        "0x1.ec3b2319d765dp+0",
        "-0x1.5f26afa077300p-1",
        "-0x1.48b5ea640f53cp+0",
        "-0x1.d14e880f1f9a8p-3",
        "-0x1.0ee64d2e91d6cp+0",
        "0x1.44caa702ba0cbp-3",
        "-0x1.fea547f2ed24fp-1",
        "0x1.e98eaf7b3718dp-1",
        "-0x1.f4c55c064e406p-3",
        "0x1.3631509826368p+0",
        "-0x1.4f0244da642cap+0",
        "0x1.4f6df76d31674p+0",
        "0x1.73c90ac51336fp-2",
        "0x1.ffe024195fc5fp+6",
    ],
    ("rangerlite_decay", "float64"): [
        "0x1.79f69ec3c623bp-1",
        "0x1.f7c73749a7c02p+0",
        "-0x1.6fef7b63eb02fp-1",
        "-0x1.5184194717451p+0",
        "-0x1.026a502aa045ep-2",
        "-0x1.08880001363b9p+0",
        "0x1.49b00c0c001bfp-3",
        "-0x1.f24829d02200ep-1",
        "0x1.d9aa3621d0e9dp-1",
        "-0x1.f70469d4c06a8p-3",
        "0x1.3bd29cc5a05d7p+0",
        "-0x1.503febe23f12fp+0",
        "0x1.57e69fe8dafcbp+0",
        "0x1.84ff2bb6e156bp-2",
        "0x1.059ab310600e8p+7",
    ],
    ("ligi", "float64"): [
        "0x1.7e05ed352f10ap-1",
        "0x1.fbd4535839edbp+0",
        "-0x1.760cb988a5929p-1",
        "-0x1.52d8c022f3402p+0",
        "-0x1.172efa3b0ff08p-2",
        "-0x1.091519b89d6d7p+0",
        "0x1.9ce99b3cb44aep-3",
        "-0x1.de3a365911d39p-1",
        "0x1.c15a1301e0abdp-1",
        "-0x1.f8484d6b288fap-3",
        "0x1.37121727e1e7bp+0",
        "-0x1.597811b5e5d49p+0",
        "0x1.68ca72f192e4bp+0",
        "0x1.75bee527aced0p-2",
        "0x1.eb68793455232p+6",
    ],
    ("lookahead_adam", "float64"): [
        "0x1.858930489d069p-1",
        "0x1.0336339c009a3p+1",
        "-0x1.7e030295db7efp-1",
        "-0x1.580b76079f162p+0",
        "-0x1.209f5493d8395p-2",
        "-0x1.00f2458c6376ap+0",
        "0x1.6501148bc854fp-3",
        "-0x1.d68632efffd90p-1",
        "0x1.c7325a00eeb37p-1",
        "-0x1.c208cf38ee3e5p-3",
        "0x1.42630f384534fp+0",
        "-0x1.572e23eac391dp+0",
        "0x1.6ef68bb8abfc9p+0",
        "0x1.a31b7d58d54e7p-2",
        "0x1.02d01be40adc8p+7",
    ],
}


@pytest.mark.parametrize(("name", "dtype"), sorted(REFERENCE))
def test_trajectory_is_bit_identical_to_the_frozen_reference(name, dtype):
    got = _run(name, getattr(torch, dtype))
    expected = [float.fromhex(x) for x in REFERENCE[(name, dtype)]]
    assert [x.hex() for x in got] == [x.hex() for x in expected]
