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



@pytest.fixture(scope="module")
def tiny_semantic_bundle(tmp_path_factory):
    """An untrained semantic EQ bundle built like :func:`mastering.semantic.adaptive.build_semantic_eq`
    from the real SAFE-DB (centroids, medoids and reference curves of the VAE split's training
    contributors, descriptors with >= 5 training settings), saved to a folder: ``(bundle, folder)``.
    Its VAE and encoder are random, so it is only good for what does not depend on training
    (which words are offered, where centroids come from, the command line's checks). Skipped
    without SAFE-DB, like the other SAFE-DB tests."""
    from mastering import paths
    from mastering.semantic.adaptive import _REFERENCE_FREQS, SemanticEQ, medoid_settings
    from mastering.semantic.descriptors import descriptor_centroids, training_index
    from mastering.semantic.encoder import AudioLatentEncoder
    from mastering.semantic.safedb import SAFEDB_FILENAME, load_safedb
    from mastering.semantic.vae import SemanticVAE, response_freqs

    if not (paths.safedb_dir() / SAFEDB_FILENAME).is_file():
        pytest.skip("SAFE-DB not found (set MASTERING_SAFEDB_DIR or run `make data`)")
    df = load_safedb()
    train = training_index(df, "smoke")
    torch.manual_seed(0)
    vae = SemanticVAE(latent_dim=2, hidden_sizes=(8,)).eval()
    enc = AudioLatentEncoder(latent_dim=2, n_fft=1024, hop_length=512, n_mels=16, width=4).eval()
    centroids = descriptor_centroids(vae, df, train, min_count=5)
    static, curves = {}, {}
    for d in centroids.index:
        static[d], curves[d] = medoid_settings(df.iloc[train], d)
    bundle = SemanticEQ(vae, enc, centroids, static, curves, response_freqs(**_REFERENCE_FREQS), np.zeros(2),
                        config={"profile": "smoke"})
    return bundle, bundle.save(tmp_path_factory.mktemp("semantic") / "bundle")
