"""A frozen LAION-CLAP audio branch (HTS-AT) with a trainable projection into the semantic latent.

Used by the encoder ablation (:mod:`mastering.semantic.ablation`). Entry points:
:func:`load_clap_audio_encoder` (the frozen branch, with a LAION-CLAP checkpoint's weights or
randomly initialized), :class:`ClapLatentEncoder` (branch + trainable head) and
:func:`train_clap_projection` (fits the head); :func:`clap_available` says whether the optional
extra ``clap`` (:data:`CLAP_REQUIREMENTS`) is installed. Only the audio branch is built, from the
installed ``laion-clap`` package's HTS-AT sources, without network access.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
import types
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..io import resample
from .encoder import encoder_loss, render_batch
from .safedb import params_array
from .vae import SemanticVAE, encode_settings, single_thread

__all__ = [
    "CLAP_AMODELS",
    "CLAP_SAMPLE_RATE",
    "CLAP_CLIP_SAMPLES",
    "CLAP_REQUIREMENTS",
    "ClapUnavailableError",
    "clap_available",
    "clap_audio_config",
    "build_clap_audio_branch",
    "clap_audio_state_dict",
    "infer_clap_amodel",
    "load_clap_audio_encoder",
    "ClapAudioEmbedder",
    "ClapLatentEncoder",
    "embed_audio",
    "train_clap_projection",
]

#: The HTS-AT sizes of LAION-CLAP's model configurations (``HTSAT-base`` is the size of the
#: released music checkpoints, ``HTSAT-tiny`` of the general 630k checkpoints).
CLAP_AMODELS = ("HTSAT-tiny", "HTSAT-base")

#: CLAP's audio rate and clip length (10 s).
CLAP_SAMPLE_RATE = 48000
CLAP_CLIP_SAMPLES = 480000

#: The optional extra ``clap`` (install each with ``pip install --no-deps``): the exact pins this
#: module was tested with. ``laion-clap`` declares ``numpy<2`` (which would downgrade the stack)
#: and text-side dependencies (transformers, wandb, webdataset, ...) that the audio branch never
#: imports, and needs ``torchvision`` without declaring it; ``torchlibrosa`` is the STFT and mel
#: front end, ``h5py`` is imported by the package's ``utils``.
CLAP_REQUIREMENTS = ("laion-clap==1.1.7", "torchlibrosa==0.1.0", "torchvision==0.24.1", "h5py==3.16.0")

_PRIVATE_PACKAGE = "_mastering_laion_clap_audio"
_HTSAT: types.ModuleType | None = None


class ClapUnavailableError(ImportError):
    """The optional CLAP extra is not installed (or cannot be imported); the message says what to install."""


def _install_hint(missing: str) -> str:
    return (f"the CLAP audio branch needs the optional extra `clap` ({missing}); install it with "
            f"`pip install --no-deps {' '.join(CLAP_REQUIREMENTS)}` (--no-deps keeps numpy 2 and torch as they are)")  # fmt: skip


def _clap_module_dir() -> Path:
    """Folder of ``laion_clap/clap_module`` in the installed package, found without importing it."""
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise ClapUnavailableError(_install_hint("package laion-clap is not installed"))
    folder = Path(next(iter(spec.submodule_search_locations))) / "clap_module"
    if not (folder / "htsat.py").is_file():
        raise ClapUnavailableError(_install_hint(f"{folder / 'htsat.py'} is missing; laion-clap 1.1.7 is expected"))
    return folder


def _import_htsat() -> types.ModuleType:
    """Import ``laion_clap/clap_module/htsat.py`` (and its siblings ``utils``, ``feature_fusion``)
    as a private package, so that neither ``laion_clap/__init__.py`` nor
    ``clap_module/__init__.py`` (text tokenizers, transformers, the hub) runs.

    laion-clap 1.1.7's package ``__init__`` loads text tokenizers from the Hugging Face hub at
    import time (it hangs offline) and ``CLAP_Module`` builds the RoBERTa text branch from the hub;
    loading only the HTS-AT sources needs no network. ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``
    are set before the import all the same."""
    global _HTSAT
    if _HTSAT is not None:
        return _HTSAT
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    folder = _clap_module_dir()
    package = types.ModuleType(_PRIVATE_PACKAGE)
    package.__path__ = [str(folder)]
    package.__package__ = _PRIVATE_PACKAGE
    sys.modules[_PRIVATE_PACKAGE] = package
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(f"{_PRIVATE_PACKAGE}.htsat")
    except Exception as error:  # ImportError, or a torchvision built for another torch (RuntimeError)
        for name in [n for n in sys.modules if n == _PRIVATE_PACKAGE or n.startswith(_PRIVATE_PACKAGE + ".")]:
            del sys.modules[name]
        raise ClapUnavailableError(_install_hint(f"importing HTS-AT failed: {error}")) from error
    _HTSAT = module
    return module


def clap_available() -> tuple[bool, str]:
    """Whether the CLAP audio branch can be built here, and why not (``(True, "laion-clap ...")``)."""
    try:
        _import_htsat()
    except ClapUnavailableError as error:
        return False, str(error)
    from importlib.metadata import version

    return True, f"laion-clap {version('laion-clap')}, torchlibrosa {version('torchlibrosa')}"


def clap_audio_config(amodel: str = "HTSAT-tiny") -> dict[str, Any]:
    """The ``audio_cfg`` of LAION-CLAP's model configuration ``amodel`` (read from the package),
    plus its ``embed_dim`` (the joint text-audio space, not used by the audio branch alone)."""
    if amodel not in CLAP_AMODELS:
        raise ValueError(f"amodel must be one of {list(CLAP_AMODELS)}, got {amodel!r}")
    path = _clap_module_dir() / "model_configs" / f"{amodel}.json"
    config = json.loads(path.read_text())
    return {**config["audio_cfg"], "joint_embed_dim": int(config["embed_dim"])}


def build_clap_audio_branch(amodel: str = "HTSAT-tiny", seed: int = 0) -> nn.Module:
    """The HTS-AT audio branch of ``amodel`` (``create_htsat_model`` of the package, no fusion),
    randomly initialized with ``seed``, in evaluation mode. No network access.

    HTS-AT is a Swin Transformer over a 64-band log-mel spectrogram of 10 s of 48 kHz audio."""
    config = clap_audio_config(amodel)
    htsat = _import_htsat()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.meshgrid's indexing notice inside the Swin blocks
        torch.manual_seed(seed)
        branch = htsat.create_htsat_model(types.SimpleNamespace(**config), enable_fusion=False, fusion_type="None")
    return branch.eval()


def clap_audio_state_dict(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The audio-branch weights of a LAION-CLAP checkpoint, keyed as the branch's own state dict.

    Accepts a training checkpoint (weights under ``"state_dict"``) or a bare state dict, with keys
    ``audio_branch.*``, ``model.audio_branch.*`` or either behind one or more ``module.``
    prefixes (DataParallel / DDP); every other key (text branch, projections) is dropped.

    Raises:
        ValueError: no ``audio_branch.`` key in the checkpoint.
    """
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"expected a state dict (mapping of names to tensors), got {type(state).__name__}")
    out = {}
    for key, value in state.items():
        name = str(key)
        while name.startswith("module."):
            name = name[len("module."):]
        if name.startswith("model."):
            name = name[len("model."):]
        if name.startswith("audio_branch.") and isinstance(value, torch.Tensor):
            out[name[len("audio_branch."):]] = value
    if not out:
        sample = list(state)[:5]
        raise ValueError(f"no 'audio_branch.*' weights in the checkpoint (keys look like {sample}); "
                         "is it a LAION-CLAP checkpoint?")  # fmt: skip
    return out


def _read_checkpoint(checkpoint: str | os.PathLike, weights_only: bool) -> dict[str, torch.Tensor]:
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no CLAP checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:  # the unpickler's errors have no common type
        if weights_only:
            raise ValueError(f"{path} could not be read with torch.load(weights_only=True) ({error}); if you trust "
                             "the file, pass weights_only=False") from error  # fmt: skip
        raise
    return clap_audio_state_dict(payload)


#: Width of HTS-AT's patch embedding per size: how a checkpoint tells its size.
_PATCH_WIDTH = {96: "HTSAT-tiny", 128: "HTSAT-base"}


def infer_clap_amodel(checkpoint: str | os.PathLike, weights_only: bool = True) -> str:
    """The HTS-AT size (``HTSAT-tiny`` / ``HTSAT-base``) of a checkpoint, from its patch-embedding width."""
    state = _read_checkpoint(checkpoint, weights_only)
    weight = state.get("patch_embed.proj.weight")
    if weight is None or int(weight.shape[0]) not in _PATCH_WIDTH:
        raise ValueError(f"cannot tell the HTS-AT size of {checkpoint}: patch_embed.proj.weight is "
                         f"{None if weight is None else tuple(weight.shape)}")  # fmt: skip
    return _PATCH_WIDTH[int(weight.shape[0])]


class ClapAudioEmbedder(nn.Module):
    """A frozen CLAP audio branch: audio ``[batch, channels, samples]`` at ``sample_rate`` to its
    clip embedding ``[batch, embedding_dim]`` (HTS-AT's pooled latent, before CLAP's projection).

    Input handling follows CLAP's inference path (``get_audio_embedding_from_data``): audio is
    downmixed to mono, resampled to 48 kHz (:func:`mastering.io.resample`) and repeat-padded to
    10 s (the clip is tiled, the remainder zero-padded; longer audio keeps its first 10 s). Unlike
    CLAP, each clip is first scaled to ``level_dbfs`` RMS, so the embedding, like the CNN's
    features, ignores the input gain. The branch always runs in evaluation mode.

    Args:
        branch: from :func:`build_clap_audio_branch`.
        amodel: its configuration name.
        sample_rate: the rate of the audio this module receives.
        level_dbfs: RMS level every clip is scaled to.
    """

    def __init__(self, branch: nn.Module, amodel: str, sample_rate: int = 44100, level_dbfs: float = -20.0):
        super().__init__()
        self.branch = branch
        for p in self.branch.parameters():
            p.requires_grad_(False)
        self.amodel = amodel
        self.sample_rate = int(sample_rate)
        self.level_dbfs = float(level_dbfs)
        self.embedding_dim = int(branch.num_features)
        self.branch.eval()

    def train(self, mode: bool = True) -> ClapAudioEmbedder:
        super().train(mode)
        self.branch.eval()  # frozen: no SpecAugment, dropout or stochastic depth
        return self

    def prepare(self, audio: torch.Tensor) -> torch.Tensor:
        """The branch's input ``[batch, 480000]``: mono, levelled, at 48 kHz, repeat-padded to 10 s."""
        if not isinstance(audio, torch.Tensor) or audio.ndim != 3:
            raise ValueError(f"expected audio [batch, channels, samples], got {getattr(audio, 'shape', type(audio))}")
        if audio.shape[-1] < 64:
            raise ValueError(f"audio of {audio.shape[-1]} samples is too short for CLAP")
        x = audio.float().mean(dim=1)
        x = x[:, : math.ceil(CLAP_CLIP_SAMPLES * self.sample_rate / CLAP_SAMPLE_RATE)]  # the first 10 s
        rms = x.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-8)
        x = x / rms * 10.0 ** (self.level_dbfs / 20.0)
        x = resample(x, self.sample_rate, CLAP_SAMPLE_RATE)
        n = x.shape[-1]
        if n >= CLAP_CLIP_SAMPLES:
            return x[:, :CLAP_CLIP_SAMPLES].contiguous()
        tiled = x.repeat(1, CLAP_CLIP_SAMPLES // n)
        return nn.functional.pad(tiled, (0, CLAP_CLIP_SAMPLES - tiled.shape[-1]))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = self.prepare(audio)
        with torch.no_grad():
            return self.branch({"waveform": x}, device=x.device)["embedding"]


def load_clap_audio_encoder(
    checkpoint: str | os.PathLike | None,
    amodel: str = "HTSAT-tiny",
    device: str = "cpu",
    seed: int = 0,
    sample_rate: int = 44100,
    weights_only: bool = True,
) -> tuple[ClapAudioEmbedder, dict[str, Any]]:
    """Build the frozen CLAP audio branch, with a LAION-CLAP checkpoint's weights or randomly initialized.

    Args:
        checkpoint: a LAION-CLAP checkpoint (e.g. ``music_audioset_epoch_15_esc_90.14.pt``, an
            ``HTSAT-base`` model; fusion checkpoints are not supported) or ``None`` for the seeded
            random initialization.
        amodel: ``"HTSAT-tiny"`` or ``"HTSAT-base"``; must match the checkpoint
            (:func:`infer_clap_amodel` reads it).
        device: where the module goes.
        seed: the random initialization's seed (also the starting point before loading).
        sample_rate: rate of the audio the embedder will receive.
        weights_only: ``torch.load``'s safe mode; pass ``False`` only for a checkpoint you trust.

    Returns:
        ``(embedder, info)``; ``info`` has ``amodel``, ``checkpoint`` (path or ``None``), ``init``
        (``"pretrained"`` or ``"random"``), ``seed``, ``loaded_keys``, ``missing_keys``,
        ``unexpected_keys``, ``embedding_dim``, ``parameters`` and ``clap_sample_rate``.

    Raises:
        ClapUnavailableError: the optional extra is missing.
        FileNotFoundError / ValueError: no such checkpoint, no audio-branch weights in it, or
            weights of another HTS-AT size.
    """
    state = _read_checkpoint(checkpoint, weights_only) if checkpoint is not None else None
    branch = build_clap_audio_branch(amodel, seed=seed)
    info: dict[str, Any] = {"amodel": amodel, "checkpoint": None, "init": "random", "seed": int(seed),
                            "loaded_keys": 0, "missing_keys": [], "unexpected_keys": []}  # fmt: skip
    if state is not None:
        own = branch.state_dict()
        wrong = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
        if wrong:
            width = state.get("patch_embed.proj.weight")
            hint = _PATCH_WIDTH.get(int(width.shape[0]), "another size") if width is not None else "another size"
            raise ValueError(f"checkpoint {checkpoint} does not fit {amodel} ({len(wrong)} tensors of other shapes, "
                             f"e.g. {wrong[0]}); it looks like {hint}: pass amodel={hint!r}")  # fmt: skip
        result = branch.load_state_dict(state, strict=False)
        info.update(checkpoint=str(checkpoint), init="pretrained", loaded_keys=len(set(state) & set(own)),
                    missing_keys=list(result.missing_keys), unexpected_keys=list(result.unexpected_keys))  # fmt: skip
    embedder = ClapAudioEmbedder(branch, amodel, sample_rate=sample_rate).to(device)
    info.update(embedding_dim=embedder.embedding_dim, parameters=int(sum(p.numel() for p in branch.parameters())),
                clap_sample_rate=CLAP_SAMPLE_RATE)  # fmt: skip
    return embedder, info


class ClapLatentEncoder(nn.Module):
    """Frozen CLAP embedder + trainable head: audio ``[batch, channels, samples]`` at
    :attr:`sample_rate` to latent codes ``[batch, latent_dim]``.

    The head standardizes the embedding (mean and standard deviation of the training embeddings,
    buffers set by :func:`train_clap_projection`) and maps it through ``Linear(embedding_dim,
    hidden) - ReLU - Linear(hidden, latent_dim)``. Has the attributes the encoder evaluation
    (:func:`mastering.semantic.encoder.evaluate_encoder`) uses: ``sample_rate``, ``latent_dim``.
    """

    def __init__(self, embedder: ClapAudioEmbedder, latent_dim: int, hidden: int = 64, seed: int = 0):
        super().__init__()
        if not (isinstance(latent_dim, int) and 1 <= latent_dim <= 32):
            raise ValueError(f"latent_dim must be an integer in 1..32, got {latent_dim!r}")
        self.backbone = embedder
        self.sample_rate = embedder.sample_rate
        self.latent_dim = int(latent_dim)
        dim = embedder.embedding_dim
        self.register_buffer("feature_mean", torch.zeros(dim))
        self.register_buffer("feature_std", torch.ones(dim))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim))
        self.config = {"amodel": embedder.amodel, "latent_dim": int(latent_dim), "hidden": int(hidden),
                       "sample_rate": self.sample_rate, "embedding_dim": dim}  # fmt: skip

    def train(self, mode: bool = True) -> ClapLatentEncoder:
        super().train(mode)
        self.backbone.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """Frozen CLAP embeddings ``[batch, embedding_dim]``."""
        return self.backbone(audio)

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """Latent codes of precomputed embeddings (the trainable part)."""
        return self.head((embedding - self.feature_mean) / self.feature_std)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.project(self.embed(audio))


@torch.no_grad()
def embed_audio(embedder: ClapAudioEmbedder, audio: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """Embeddings ``[n, embedding_dim]`` of audio ``[n, channels, samples]`` in batches."""
    device = next(embedder.parameters()).device
    parts = [embedder(audio[i : i + batch_size].to(device)).cpu() for i in range(0, len(audio), batch_size)]
    return torch.cat(parts)


def train_clap_projection(
    encoder: ClapLatentEncoder,
    vae_model: SemanticVAE,
    df: pd.DataFrame,
    train_index: Sequence[int],
    *,
    n_examples: int = 256,
    segment_seconds: float = 0.75,
    steps: int = 500,
    batch_size: int = 32,
    lr: float = 2e-3,
    dry_pool: torch.Tensor | None = None,
    embed_batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
) -> tuple[ClapLatentEncoder, dict[str, Any]]:
    """Fit the head of a :class:`ClapLatentEncoder` on embeddings computed once.

    ``n_examples`` training settings (drawn from ``train_index`` with ``seed``) are rendered on
    pink noise (or on ``dry_pool``) by :func:`mastering.semantic.encoder.render_batch`, exactly as
    the CNN's training examples are; the frozen branch embeds each once, and the head is fitted by
    Adam on minibatches of the cached embeddings to the settings' VAE codes with the encoder's MSE
    objective (:func:`mastering.semantic.encoder.encoder_loss`). The backbone never changes, so this
    is the same optimisation as training the whole module with a frozen branch, at the cost of
    one forward pass per example instead of one per step.

    Returns:
        ``(encoder, history)`` with ``loss`` per step, ``embed_seconds`` and ``settings``.
    """
    import time

    from tqdm.auto import tqdm

    if vae_model.conditional:
        raise ValueError("train against an unconditional VAE (its codes do not depend on the word)")
    if vae_model.latent_dim != encoder.latent_dim:
        raise ValueError(f"encoder predicts {encoder.latent_dim} dimensions, the VAE has {vae_model.latent_dim}")
    train_index = np.asarray(train_index)
    if n_examples < 2 or len(train_index) < 2:
        raise ValueError(f"need at least 2 examples and 2 training settings, got {n_examples} and {len(train_index)}")
    rng = np.random.default_rng(seed)
    rows = rng.choice(train_index, size=n_examples, replace=n_examples > len(train_index))
    params = params_array(df)
    targets = torch.as_tensor(encode_settings(vae_model, df.iloc[rows]), dtype=torch.float32)
    num_samples = int(round(segment_seconds * encoder.sample_rate))
    device = next(encoder.head.parameters()).device
    start = time.perf_counter()
    embeddings = []
    with single_thread(device):
        for i in tqdm(range(0, n_examples, embed_batch_size), desc=f"CLAP embeddings ({encoder.backbone.amodel})",
                      disable=not progress, leave=False):  # fmt: skip
            chunk = rows[i : i + embed_batch_size]
            audio = render_batch(params[chunk], encoder.sample_rate, num_samples, seed=int(rng.integers(2**62)), dry_pool=dry_pool)
            embeddings.append(embed_audio(encoder.backbone, audio, embed_batch_size))
    embed_seconds = time.perf_counter() - start
    emb = torch.cat(embeddings).to(device)
    encoder.feature_mean.copy_(emb.mean(0))
    encoder.feature_std.copy_(emb.std(0).clamp_min(1e-6) if n_examples > 1 else torch.ones_like(emb[0]))
    encoder.train()
    opt = torch.optim.Adam(encoder.head.parameters(), lr=lr)
    targets = targets.to(device)
    history: dict[str, Any] = {"loss": []}
    batch = min(batch_size, n_examples)
    with single_thread(device):  # a head this small trains fastest on one thread
        for _ in range(steps):
            pick = torch.as_tensor(rng.choice(n_examples, size=batch, replace=False), device=device)
            value = encoder_loss(encoder.project(emb[pick]), targets[pick], "mse")
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            history["loss"].append(float(value.detach()))
    encoder.eval()
    history.update(
        embed_seconds=embed_seconds,
        settings={"model": encoder.config, "loss": "mse", "n_examples": int(n_examples), "steps": int(steps),
                  "batch_size": int(batch), "lr": lr, "segment_seconds": segment_seconds, "seed": int(seed),
                  "audio": "pink" if dry_pool is None else "music"},
    )  # fmt: skip
    return encoder, history

