"""Every differentiable DSP op, in one table: its gradient matches a central finite difference.

For each op and each differentiable argument, the derivative along a random direction from
autograd (``grad . v``) must equal ``(f(a + eps v) - f(a - eps v)) / (2 eps)`` of a random
projection of the output, in float64. Table-driven, so a new op is one row.
"""

import pytest
import torch

from mastering.dsp.dynamics import compressor, expander
from mastering.dsp.eq import parametric_eq
from mastering.dsp.loudness import block_loudness, loudness, normalize_loudness, true_peak
from mastering.dsp.weighting import a_weighting, k_weighting

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SR = 8000
KINDS = ("low_shelf", "peaking", "high_shelf")


def _audio(seconds=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    envelope = 0.2 + 0.8 * (torch.sin(2 * torch.pi * 3 * t) > 0).double()  # loud and quiet parts
    return (0.3 * torch.randn(1, 2, t.numel(), generator=g, dtype=torch.float64) * envelope)


def _eq(mode):
    return lambda x, freq_hz, gain_db, q: parametric_eq(x, SR, freq_hz, gain_db, q, kinds=KINDS, mode=mode,
                                                        backend="torch")


EQ_ARGS = {"freq_hz": torch.tensor([[150.0, 900.0, 2500.0]], dtype=torch.float64),
           "gain_db": torch.tensor([[4.0, -3.0, 5.0]], dtype=torch.float64),
           "q": torch.tensor([[0.8, 1.5, 0.7]], dtype=torch.float64)}
DYN_ARGS = {"threshold_db": torch.tensor([-20.0], dtype=torch.float64), "ratio": torch.tensor([4.0], dtype=torch.float64),
            "attack_ms": torch.tensor([5.0], dtype=torch.float64), "release_ms": torch.tensor([60.0], dtype=torch.float64),
            "knee_db": torch.tensor([6.0], dtype=torch.float64)}

# name, op(x, **params), params, seconds of audio
OPS = [
    ("parametric_eq exact", _eq("exact"), EQ_ARGS, 0.25),
    ("parametric_eq fast", _eq("fast"), EQ_ARGS, 0.25),
    ("compressor", lambda x, **p: compressor(x, SR, makeup_gain_db=torch.tensor([2.0], dtype=x.dtype), **p),
     DYN_ARGS, 0.25),
    ("expander", lambda x, **p: expander(x, SR, **p), {**DYN_ARGS, "threshold_db": torch.tensor([-12.0],
                                                                                               dtype=torch.float64)}, 0.25),
    ("a_weighting", lambda x: a_weighting(x, SR), {}, 0.25),
    ("k_weighting", lambda x: k_weighting(x, SR), {}, 0.25),
    ("loudness", lambda x: loudness(x, SR), {}, 1.0),
    ("block_loudness", lambda x: block_loudness(x, SR), {}, 1.0),
    ("normalize_loudness", lambda x: normalize_loudness(x, SR, -20.0)[0], {}, 1.0),
    ("true_peak", lambda x: true_peak(x, SR), {}, 0.25),
]


def _directional_check(op, x, params, name, eps=1e-6, seed=1):
    g = torch.Generator().manual_seed(seed)
    args = {"x": x, **params}
    inputs = {k: v.clone().requires_grad_(True) for k, v in args.items()}
    out = op(inputs["x"], **{k: v for k, v in inputs.items() if k != "x"})
    weights = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (out * weights).sum().backward()
    for key, value in args.items():
        direction = torch.randn(value.shape, generator=g, dtype=torch.float64)
        step = eps * max(1.0, float(value.abs().max()))

        def f(a):
            moved = {**args, key: a}
            return float((op(moved["x"], **{k: v for k, v in moved.items() if k != "x"}) * weights).sum())

        numeric = (f(value + step * direction) - f(value - step * direction)) / (2 * step)
        grad = inputs[key].grad
        assert grad is not None and bool(torch.isfinite(grad).all()), (name, key)
        analytic = float((grad * direction).sum())
        assert analytic == pytest.approx(numeric, rel=2e-3, abs=1e-6), (name, key, analytic, numeric)
        assert abs(analytic) > 1e-9, (name, key)  # the gradient reaches this argument


@pytest.mark.parametrize("name, op, params, seconds", OPS, ids=[row[0] for row in OPS])
def test_gradient_matches_finite_difference(name, op, params, seconds):
    _directional_check(op, _audio(seconds), params, name)
