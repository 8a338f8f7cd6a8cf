"""Shared test configuration: deterministic torch, no GPU, quiet plotting."""

import os

os.environ.setdefault("MPLBACKEND", "agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

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
