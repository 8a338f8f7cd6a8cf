"""Shared test configuration: deterministic torch, no GPU, quiet plotting."""

import os

os.environ.setdefault("MPLBACKEND", "agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from mastering.dsp.eq import parametric_eq  # noqa: E402
from mastering.training import TensorPairs  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: recursive filters, small convolutions and HTS-AT forward
    passes run several times faster than on two threads on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def paper_dir(tmp_path, monkeypatch):
    """Redirect generated figures/tables to a temporary paper folder."""
    folder = tmp_path / "paper"
    monkeypatch.setenv("MASTERING_PAPER_DIR", str(folder))
    return folder


def shelf_pairs(n: int, seed: int, sample_rate: int, gain_db: float = 0.0):
    """``n`` half-second training pairs: tones + noise at random levels, and the same through a
    +6 dB high shelf at 3 kHz, ``gain_db`` louder (a correction a model can learn in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(sample_rate // 2) / sample_rate
    freqs = torch.rand(n, 1, 3, generator=g) * 4000 + 100
    x = (torch.sin(2 * torch.pi * freqs[..., None] * t).sum(dim=2) * 0.1).expand(n, 2, -1).clone()
    x += 0.05 * torch.randn(n, 2, t.numel(), generator=g)
    x *= 10 ** (torch.rand(n, 1, 1, generator=g) * -1)
    y = parametric_eq(x, sample_rate, torch.tensor([[3000.0]]), torch.tensor([[6.0]]), torch.tensor([[0.7071]]),
                      kinds=("high_shelf",), mode="exact") * 10 ** (gain_db / 20)
    return TensorPairs(x, y)

