"""Audio encoder into the semantic latent: audio -> the β-VAE code of the EQ that shaped it.

:class:`AudioLatentEncoder` reads a level-normalised log-mel spectrogram (``"cnn"``: a 2-D CNN
pooled over time; ``"transformer"``: one token per frame, no positional encoding);
:func:`train_encoder` fits it on pink noise (or music, ``dry_pool``) processed by SAFE-DB settings,
with the settings' posterior means as targets and an MSE or InfoNCE objective
(:func:`encoder_loss`); :func:`fit_or_load_encoder` caches the run; :func:`evaluate_encoder` and
:func:`compare_encoders` measure it on held-out contributors' settings.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..dsp.eq import parametric_eq
from ..dsp.signals import pink_noise
from ..io import resample
from ..profiles import get_profile
from ..provenance import atomic_torch_save, atomic_write_text, stamp
from ..runs import run_folder, run_key
from ..training.loop import fit
from .bootstrap import bootstrap_ci
from .safedb import params_array, safe_to_bands
from .vae import SemanticVAE, descriptor_embeddings, encode_settings, single_thread, split_by_contributor

__all__ = [
    "AudioLatentEncoder",
    "encoder_loss",
    "render_batch",
    "train_encoder",
    "encode_audio",
    "evaluate_encoder",
    "axis_r2",
    "save_encoder",
    "load_encoder",
    "fit_or_load_encoder",
    "ENCODER_VARIANTS",
    "variant_settings",
    "compare_encoders",
]

ARCHS = ("cnn", "transformer", "ltas")
LOSSES = ("mse", "infonce")
CHECKPOINT_FORMAT = 1

#: The variants notebook 08 compares: changes to the profile's settings (``audio``: what the
#: examples are rendered on). ``cnn-mse`` is the main encoder (option A, the one the adaptive EQ uses).
ENCODER_VARIANTS: dict[str, dict[str, Any]] = {
    "cnn-mse": {"audio": "pink"},
    "cnn-infonce": {"audio": "pink", "train": {"loss": "infonce"}},
    "transformer-mse": {"audio": "pink", "model": {"arch": "transformer"}},
    "cnn-mse-music": {"audio": "music"},
    # The music encoder: the long-term average spectrum of the whole excerpt (power averaged over
    # time before the log, so a loud transient weighs what it weighs in the spectrum) read by an
    # MLP, trained and evaluated on excerpts as long as the music pool's clips.
    "ltas-mse-music": {"audio": "music", "model": {"arch": "ltas"}, "train": {"segment_seconds": "pool"}},
}


class AudioLatentEncoder(nn.Module):
    """Maps audio ``[batch, channels, samples]`` at ``sample_rate`` to latent codes ``[batch, latent_dim]``.

    Args:
        latent_dim: size of the VAE latent to predict.
        arch: ``"cnn"``, ``"transformer"`` or ``"ltas"`` (an MLP of width ``4 width`` on the
            long-term average log-mel spectrum: :meth:`features` averaged in power over the frames).
        sample_rate: the rate the model expects (use :func:`encode_audio` to resample).
        n_fft, hop_length, n_mels: the log-mel front end (Hann window, 20 Hz-Nyquist).
        width: channels of the CNN (``width``, ``2 width``) or the transformer's model dimension
            (``4 width``).
        n_layers: transformer layers (the CNN has three convolutions).
        n_heads: transformer attention heads.

    ``self.config`` holds these arguments; :func:`save_encoder` stores it with the weights.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        arch: str = "cnn",
        sample_rate: int = 44100,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mels: int = 64,
        width: int = 32,
        n_layers: int = 2,
        n_heads: int = 4,
    ):
        super().__init__()
        import torchaudio

        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {list(ARCHS)}, got {arch!r}")
        if not (isinstance(latent_dim, int) and 1 <= latent_dim <= 32):
            raise ValueError(f"latent_dim must be an integer in 1..32, got {latent_dim!r}")
        if n_mels < 8 or n_mels % 4:
            raise ValueError(f"n_mels must be a multiple of 4, at least 8, got {n_mels}")
        self.config = {
            "latent_dim": int(latent_dim), "arch": arch, "sample_rate": int(sample_rate), "n_fft": int(n_fft),
            "hop_length": int(hop_length), "n_mels": int(n_mels), "width": int(width), "n_layers": int(n_layers),
            "n_heads": int(n_heads),
        }  # fmt: skip
        self.sample_rate = int(sample_rate)
        self.latent_dim = int(latent_dim)
        self.arch = arch
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, f_min=20.0,
            f_max=sample_rate / 2, power=2.0, center=True,
        )  # fmt: skip
        if arch == "cnn":
            self.net = nn.Sequential(
                nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                nn.Conv2d(width, width, 3, stride=(2, 1), padding=1), nn.ReLU(),
                nn.Conv2d(width, 2 * width, 3, stride=(2, 1), padding=1), nn.ReLU(),
            )  # fmt: skip
            self.head = nn.Sequential(nn.Linear(2 * width * (n_mels // 4), 64), nn.ReLU(), nn.Linear(64, latent_dim))
        elif arch == "ltas":
            self.net = nn.Sequential(nn.Linear(n_mels, 4 * width), nn.ReLU(), nn.Linear(4 * width, 4 * width), nn.ReLU())
            self.head = nn.Linear(4 * width, latent_dim)
        else:
            d_model = 4 * width
            self.proj = nn.Linear(n_mels, d_model)
            layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, dropout=0.0, batch_first=True)
            self.net = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, latent_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Level-normalized log-mel spectrogram ``[batch, n_mels, frames]`` of mono-downmixed audio
        (``"ltas"``: ``[batch, n_mels, 1]``, the mel power averaged over the frames before the log).

        Power in dB minus its mean over bands and frames, over 10: a gain change of the input
        leaves the features unchanged, an EQ changes their shape.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise ValueError(f"expected audio [batch, channels, samples], got {getattr(x, 'shape', type(x))}")
        if x.shape[-1] < self.config["n_fft"]:
            raise ValueError(f"audio of {x.shape[-1]} samples is shorter than n_fft={self.config['n_fft']}")
        mono = x.mean(dim=1)
        power = self.mel(mono.float() if mono.dtype == torch.float16 else mono)
        if self.arch == "ltas":
            power = power.mean(dim=-1, keepdim=True)
        power_db = 10.0 * torch.log10(power + 1e-10)
        return (power_db - power_db.mean(dim=(-2, -1), keepdim=True)) / 10.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if self.arch == "ltas":
            return self.head(self.net(f[..., 0]))
        if self.arch == "cnn":
            h = self.net(f.unsqueeze(1)).mean(dim=-1)  # pool over time only
            return self.head(h.flatten(1))
        h = self.net(self.proj(f.transpose(1, 2)))
        return self.head(h.mean(dim=1))


def encoder_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "mse", temperature: float = 0.1) -> torch.Tensor:
    """Training objective of the encoder.

    ``"mse"``: mean squared error to the target codes. ``"infonce"``: cross-entropy of the
    logits ``-||pred_i - target_j||^2 / temperature`` over the batch with the matching target
    as the positive (InfoNCE, van den Oord et al. 2018), plus the MSE so the predictions keep the
    latent's scale (distances alone are translation invariant).
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"pred and target must both be [batch, latent_dim], got {tuple(pred.shape)} and {tuple(target.shape)}")
    mse = ((pred - target) ** 2).sum(-1).mean()
    if kind == "mse":
        return mse
    if kind != "infonce":
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {kind!r}")
    logits = -torch.cdist(pred, target) ** 2 / temperature
    labels = torch.arange(pred.shape[0], device=pred.device)
    return nn.functional.cross_entropy(logits, labels) + mse


def render_batch(
    params: np.ndarray,
    sample_rate: int,
    num_samples: int,
    seed: int,
    dry_pool: torch.Tensor | None = None,
) -> torch.Tensor:
    """SAFE settings ``[batch, 13]`` applied to dry audio: pink noise (seeded, -20 dBFS RMS) or
    random excerpts of ``dry_pool`` ``[n, channels, samples]`` (the real-music ablation).

    Returns:
        ``[batch, 1 or channels, num_samples]`` processed audio (exact IIR biquad cascade,
        :func:`mastering.dsp.eq.parametric_eq`).
    """

    batch = len(params)
    if dry_pool is None:
        dry = pink_noise(num_samples, channels=1, batch=batch, seed=seed)
    else:
        if dry_pool.ndim != 3 or dry_pool.shape[-1] < num_samples:
            raise ValueError(f"dry_pool must be [n, channels, samples >= {num_samples}], got {tuple(dry_pool.shape)}")
        rng = np.random.default_rng(seed)
        which = rng.integers(len(dry_pool), size=batch)
        start = rng.integers(dry_pool.shape[-1] - num_samples + 1, size=batch)
        dry = torch.stack([dry_pool[w, :, s : s + num_samples] for w, s in zip(which, start)])
    f, g, q, kinds = safe_to_bands(torch.tensor(np.asarray(params), dtype=torch.float64))
    return parametric_eq(dry.double(), sample_rate, f, g, q, kinds, mode="exact").float()


def train_encoder(
    vae_model: SemanticVAE,
    df: pd.DataFrame,
    train_index: Sequence[int] | None = None,
    *,
    model_kwargs: dict[str, Any] | None = None,
    loss: str = "mse",
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    segment_seconds: float = 0.75,
    temperature: float = 0.1,
    dry_pool: torch.Tensor | None = None,
    noise_pool_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    folder: str | os.PathLike | None = None,
) -> tuple[AudioLatentEncoder, dict[str, Any]]:
    """Train an :class:`AudioLatentEncoder` to predict the VAE code of the SAFE setting that
    processed the audio.

    Each step draws ``batch_size`` distinct training settings, renders them on random excerpts
    of a pink-noise pool (or of ``dry_pool``) with :func:`render_batch`, and fits the posterior means of the
    settings (``vae_model``, unconditional) with Adam.

    Args:
        vae_model: the trained β-VAE whose latent is the target.
        df: SAFE-DB frame.
        train_index: rows to train on (default: the contributor split of
            :func:`mastering.semantic.vae.split_by_contributor` with ``seed``, training side), so
            held-out contributors' settings stay unseen.
        model_kwargs: :class:`AudioLatentEncoder` arguments (``latent_dim`` is the VAE's).
        loss: ``"mse"`` or ``"infonce"`` (:func:`encoder_loss`).
        steps, batch_size, lr: optimisation.
        segment_seconds: length of each rendered example.
        dry_pool: music ``[n, channels, samples]`` at the model rate for the ablation.
        noise_pool_size: without ``dry_pool``: number of pink-noise signals (each four segments
            long, seeded) that the examples are excerpted from.
        seed: seeds the initialization and every batch (settings and noise).
        device: ``cpu`` or ``cuda``.
        progress: tqdm bar.
        folder: a run folder to checkpoint into and resume from (:func:`mastering.training.loop.fit`;
            one block is a twentieth of the steps).

    Returns:
        ``(encoder, history)`` with ``loss`` per step, ``train_index`` and ``settings``.
    """
    if vae_model.conditional:
        raise ValueError("train the encoder against an unconditional VAE (its codes do not depend on the word)")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {list(LOSSES)}, got {loss!r}")
    kwargs = {**(model_kwargs or {}), "latent_dim": vae_model.latent_dim}
    if train_index is None:
        train_index, _ = split_by_contributor(df, 0.2, seed)
    train_index = np.asarray(train_index)
    if len(train_index) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} training settings, got {len(train_index)}")
    params = params_array(df)
    targets = torch.as_tensor(encode_settings(vae_model, df), dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = AudioLatentEncoder(**kwargs)
    enc.to(device).train()
    opt = torch.optim.Adam(enc.parameters(), lr=lr)
    num_samples = int(round(segment_seconds * enc.sample_rate))
    rng = np.random.default_rng(seed)
    pool = dry_pool
    if pool is None:
        # A seeded pool of pink noise, excerpted at random offsets each step: generating fresh
        # noise per step cost more than the rest of the step.
        pool = pink_noise(4 * num_samples, channels=1, batch=noise_pool_size, seed=int(rng.integers(2**62)))
    history: dict[str, Any] = {"loss": []}

    def train_block(block: int) -> dict[str, float]:
        first = len(history["loss"])
        for _ in range(min(block_steps, steps - first)):
            rows = rng.choice(train_index, size=batch_size, replace=False)
            audio = render_batch(params[rows], enc.sample_rate, num_samples, seed=int(rng.integers(2**62)), dry_pool=pool)
            pred = enc(audio.to(device))
            value = encoder_loss(pred, targets[rows].to(device), loss, temperature)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            history["loss"].append(float(value.detach()))
        return {"loss": float(np.mean(history["loss"][first:])), "steps": len(history["loss"])}

    block_steps = max(1, math.ceil(steps / 20))
    with single_thread(device):
        fit(enc, opt, train_block, math.ceil(steps / block_steps), folder=folder, save_every_s=30.0,
            state=lambda: {"rng": rng.bit_generator.state, "loss": list(history["loss"])},
            load_state=lambda st: (setattr(rng.bit_generator, "state", st["rng"]), history.update(loss=list(st["loss"]))),
            desc=f"encoder {enc.arch}/{loss} ({steps} steps)", progress=progress)
    enc.eval()
    history.update(
        train_index=train_index.tolist(),
        settings={"model": enc.config, "loss": loss, "steps": steps, "batch_size": batch_size, "lr": lr,
                  "segment_seconds": segment_seconds, "temperature": temperature, "seed": seed,
                  "audio": "pink" if dry_pool is None else "music"},
    )  # fmt: skip
    return enc, history


@torch.no_grad()
def encode_audio(encoder: AudioLatentEncoder, audio: torch.Tensor, sample_rate: int) -> np.ndarray:
    """Latent codes ``[batch, latent_dim]`` of audio ``[batch, channels, samples]`` or
    ``[channels, samples]`` at ``sample_rate`` (resampled to the encoder's rate)."""

    if audio.ndim == 2:
        audio = audio[None]
    audio = resample(audio.float(), int(sample_rate), encoder.sample_rate)
    encoder.eval()
    device = next(encoder.parameters()).device
    return encoder(audio.to(device)).cpu().numpy().astype(np.float64)


@torch.no_grad()
def evaluate_encoder(
    encoder: AudioLatentEncoder,
    vae_model: SemanticVAE,
    df: pd.DataFrame,
    eval_index: Sequence[int],
    reference_index: Sequence[int],
    segment_seconds: float = 0.75,
    seed: int = 1,
    dry_pool: torch.Tensor | None = None,
    pair: tuple[str, str] = ("warm", "bright"),
    n_boot: int = 1000,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Encoder predictions for the settings ``eval_index`` rendered on fresh noise (or music).

    The descriptor centroids come from the VAE codes of ``reference_index`` (the training rows).

    Returns:
        ``(rows, summary)``: per setting ``descriptor``, ``contributor``, true and predicted codes
        and the squared error; ``summary`` with ``latent_mse``, ``r2`` (share of the codes'
        variance explained), and for the two descriptors of ``pair``: ``pair_accuracy`` (share of
        their held-out settings whose prediction is nearer their own centroid than the other's),
        ``pair_separation`` (distance between the predictions' centroids over their RMS spread)
        and ``r2_<word>`` with ``r2_<word>_lo`` / ``_hi`` (:func:`axis_r2`: the $R^2$ of the codes'
        position along the word's axis, with a 95 % bootstrap interval over contributors).
    """
    eval_index = np.asarray(eval_index)
    params = params_array(df)
    z_true = encode_settings(vae_model, df.iloc[eval_index])
    num_samples = int(round(segment_seconds * encoder.sample_rate))
    preds = []
    with single_thread(next(encoder.parameters()).device):
        for start in range(0, len(eval_index), 64):
            rows = eval_index[start : start + 64]
            audio = render_batch(params[rows], encoder.sample_rate, num_samples, seed=seed + start, dry_pool=dry_pool)
            preds.append(encode_audio(encoder, audio, encoder.sample_rate))
    z_pred = np.concatenate(preds)
    out = pd.DataFrame({"descriptor": df["descriptor"].iloc[eval_index].to_numpy()})
    if "contributor" in df.columns:
        out["contributor"] = df["contributor"].iloc[eval_index].astype(str).to_numpy()
    for i in range(z_true.shape[1]):
        out[f"z_{i}"] = z_true[:, i]
        out[f"pred_{i}"] = z_pred[:, i]
    out["sq_error"] = ((z_pred - z_true) ** 2).sum(1)
    summary = {
        "n": int(len(out)),
        "latent_mse": float(out["sq_error"].mean()),
        "r2": float(1 - out["sq_error"].sum() / ((z_true - z_true.mean(0)) ** 2).sum()),
    }
    ref = descriptor_embeddings(vae_model, df.iloc[np.asarray(reference_index)])
    a, b = pair
    if a in ref.index and b in ref.index:
        zc = [f"z_{i}" for i in range(z_true.shape[1])]
        ca, cb = ref.loc[a, zc].to_numpy(float), ref.loc[b, zc].to_numpy(float)
        hits, groups = [], {}
        for d, own, other in ((a, ca, cb), (b, cb, ca)):
            p = z_pred[out["descriptor"].to_numpy() == d]
            groups[d] = p
            hits.extend(np.linalg.norm(p - own, axis=1) < np.linalg.norm(p - other, axis=1))
        if len(groups[a]) and len(groups[b]):
            spread = np.mean([np.sqrt(((g - g.mean(0)) ** 2).sum(1).mean()) for g in groups.values()])
            summary["pair_accuracy"] = float(np.mean(hits))
            summary["pair_separation"] = float(np.linalg.norm(groups[a].mean(0) - groups[b].mean(0)) / spread)
        z_ref = encode_settings(vae_model, df.iloc[np.asarray(reference_index)])
        clusters = out["contributor"].to_numpy() if "contributor" in out else np.arange(len(out))
        for d, centroid in ((a, ca), (b, cb)):
            r2, lo, hi = axis_r2(z_true, z_pred, centroid - z_ref.mean(0), clusters, n_boot=n_boot, seed=seed)
            summary.update({f"r2_{d}": r2, f"r2_{d}_lo": lo, f"r2_{d}_hi": hi})
    return out, summary


def axis_r2(
    z_true: np.ndarray,
    z_pred: np.ndarray,
    direction: np.ndarray,
    clusters: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """$R^2$ of the predicted codes' position along ``direction`` (a descriptor's axis: from the
    training codes' mean to its centroid), with a 95 % percentile bootstrap interval that resamples
    ``clusters`` (the settings' contributors; default each setting alone).

    Returns:
        ``(r2, low, high)``; 1 is a perfect reading of the axis, 0 no better than the mean position.
    """
    u = np.asarray(direction, float)
    norm = float(np.linalg.norm(u))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("the axis direction must be a finite non-zero vector")
    t, p = np.asarray(z_true, float) @ (u / norm), np.asarray(z_pred, float) @ (u / norm)
    if len(t) < 2:
        raise ValueError(f"need at least two settings, got {len(t)}")

    def r2(frame: pd.DataFrame) -> float:
        tt, pp = frame["t"].to_numpy(), frame["p"].to_numpy()
        return 1.0 - float(((pp - tt) ** 2).sum()) / max(float(((tt - tt.mean()) ** 2).sum()), 1e-12)

    frame = pd.DataFrame({"t": t, "p": p, "cluster": np.arange(len(t)) if clusters is None else np.asarray(clusters)})
    lo, hi = bootstrap_ci(frame, r2, groups="cluster", n_boot=n_boot, seed=seed) if n_boot else (np.nan, np.nan)
    return r2(frame), float(lo), float(hi)


def save_encoder(encoder: AudioLatentEncoder, path: str | os.PathLike, **extra: Any) -> Path:
    """Checkpoint with the constructor arguments, weights and JSON-compatible ``extra``."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": "AudioLatentEncoder",
        "config": copy.deepcopy(encoder.config),
        "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
        "extra": json.loads(json.dumps(extra, default=str)),
    }
    return atomic_torch_save(payload, path)


def load_encoder(path: str | os.PathLike, device: str = "cpu", return_extra: bool = False):
    """Rebuild an :class:`AudioLatentEncoder` from :func:`save_encoder`'s checkpoint (eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no encoder checkpoint at {path}")
    payload = torch.load(path, map_location=device, weights_only=True)
    if not isinstance(payload, dict) or payload.get("kind") != "AudioLatentEncoder":
        raise ValueError(f"{path} is not an AudioLatentEncoder checkpoint (written by save_encoder)")
    enc = AudioLatentEncoder(**payload["config"])
    enc.load_state_dict(payload["state_dict"])
    enc.to(device).eval()
    return (enc, payload.get("extra", {})) if return_extra else enc


def fit_or_load_encoder(
    vae_model: SemanticVAE,
    vae_folder: str | os.PathLike,
    df: pd.DataFrame,
    train_index: Sequence[int],
    eval_index: Sequence[int],
    settings: dict[str, Any],
    profile: str,
    dry_pool: torch.Tensor | None = None,
    dry_pool_id: str | None = None,
    name: str = "semantic_encoder",
    progress: bool = True,
) -> tuple[AudioLatentEncoder, dict[str, Any], Path]:
    """Train an encoder (:func:`train_encoder`) or reuse the checkpoint of an identical earlier run.

    The run folder ``runs/<name>/<profile>-<hash>`` is named by the VAE run it targets, the
    training ``settings`` (``{"model": ..., "train": ...}``, a profile's ``encoder`` section), the
    music pool's id for the real-music ablation and the code version, so a change to any of them
    trains afresh. The folder holds ``encoder.pt`` (weights, config, history, evaluation) and
    ``evaluation.csv`` (per held-out setting predictions of :func:`evaluate_encoder`).

    Args:
        vae_model, vae_folder: the trained VAE and its run folder.
        df: SAFE-DB frame; ``train_index`` / ``eval_index`` its training and held-out rows.
        settings: ``{"model": AudioLatentEncoder kwargs, "train": train_encoder kwargs}``.
        profile: run profile.
        dry_pool: music for the real-music ablation (``None``: pink noise); evaluated on the same
            kind of audio it was trained on.
        dry_pool_id: a string identifying ``dry_pool`` (e.g. the tracks and offsets it holds).

    Returns:
        ``(encoder, record, folder)``; ``record`` has ``history`` (without per-step indices),
        ``evaluation`` (summary numbers) and ``provenance``.
    """
    if dry_pool is not None and not dry_pool_id:
        raise ValueError("pass dry_pool_id (what the music pool holds) with dry_pool, so runs are told apart")
    key = run_key(settings, [__name__], vae=Path(vae_folder).name, audio=dry_pool_id or "pink",
                  n_train=len(train_index), n_eval=len(eval_index))
    folder = run_folder(name, profile, key)
    ckpt = folder / "encoder.pt"
    if ckpt.is_file():
        enc, extra = load_encoder(ckpt, return_extra=True)
        return enc, extra, folder
    enc, history = train_encoder(vae_model, df, train_index, model_kwargs=settings.get("model"), dry_pool=dry_pool,
                                 progress=progress, folder=folder, **settings.get("train", {}))
    rows, summary = evaluate_encoder(enc, vae_model, df, eval_index, train_index,
                                     segment_seconds=settings.get("train", {}).get("segment_seconds", 0.75),
                                     dry_pool=dry_pool)
    history = {k: v for k, v in history.items() if k != "train_index"}
    record = {"history": history, "evaluation": summary, "key": key,
              "provenance": stamp(profile, run=folder.name)}
    folder.mkdir(parents=True, exist_ok=True)
    save_encoder(enc, ckpt, **record)
    atomic_write_text(folder / "evaluation.csv", rows.to_csv(index=False))
    return enc, json.loads(json.dumps(record, default=str)), folder


def variant_settings(profile: str, change: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """The profile's ``encoder`` settings with a variant's ``change`` (:data:`ENCODER_VARIANTS`) and ``seed``.

    ``segment_seconds: "pool"`` stands for the length of the profile's music-pool clips
    (``semantic_eval.pool_seconds``)."""
    P = get_profile(profile)
    base = P["encoder"]
    train = {**base["train"], **change.get("train", {}), "seed": seed}
    if train.get("segment_seconds") == "pool":
        train["segment_seconds"] = float(P["semantic_eval"]["pool_seconds"])
    return {"model": {**base["model"], **change.get("model", {})}, "train": train}


def compare_encoders(
    vae_model: SemanticVAE,
    vae_folder: str | os.PathLike,
    df: pd.DataFrame,
    history: dict[str, Any],
    profile: str,
    music_train: tuple[pd.DataFrame, torch.Tensor] | None,
    music_test: tuple[pd.DataFrame, torch.Tensor] | None,
    variants: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, tuple[AudioLatentEncoder, Path]]]:
    """Train (or reuse) every encoder variant and evaluate each on held-out SAFE settings rendered
    on pink noise and on held-out real music.

    Args:
        vae_model, vae_folder, history: the VAE, its run folder and training history
            (``train_index`` / ``val_index``: SAFE-DB rows split by contributor).
        df: SAFE-DB frame.
        profile: selects the profile's ``encoder`` section.
        music_train, music_test: ``(meta, audio)`` of
            :func:`mastering.semantic.evaluate.music_clips` for the training tracks (the
            ablation's pool) and the test tracks (evaluation); ``None`` skips music.
        variants: default :data:`ENCODER_VARIANTS`.
        seed: seeds every training.

    Returns:
        ``(table, encoders)``: one row per variant and evaluation audio (``variant``, ``arch``,
        ``loss``, ``trained_on``, ``evaluated_on``, ``n``, ``latent_mse``, ``r2``,
        ``pair_accuracy``, ``pair_separation``, ``run``), and ``{variant: (encoder, folder)}``.
    """
    tr, va = history["train_index"], history["val_index"]
    rows, encoders = [], {}
    for name, change in (variants or ENCODER_VARIANTS).items():
        audio = change.get("audio", "pink")
        if audio == "music" and music_train is None:
            continue
        settings = variant_settings(profile, change, seed)
        seg = settings["train"]["segment_seconds"]
        pool, pool_id = None, None
        if audio == "music":
            meta, pool = music_train
            pool_id = ",".join(meta["clip"])
        enc, record, folder = fit_or_load_encoder(vae_model, vae_folder, df, tr, va, settings, profile, dry_pool=pool,
                                                  dry_pool_id=pool_id, progress=progress)
        encoders[name] = (enc, folder)
        evals = [("pink", None)] + ([("music", music_test[1])] if music_test is not None else [])
        for where, eval_pool in evals:
            if where == audio == "pink" and "evaluation" in record:  # fit_or_load evaluated it the same way
                summary = record["evaluation"]
            else:
                _, summary = evaluate_encoder(enc, vae_model, df, va, tr, segment_seconds=seg, dry_pool=eval_pool)
            rows.append({"variant": name, "arch": settings["model"]["arch"], "loss": settings["train"]["loss"],
                         "trained_on": audio, "evaluated_on": where, **summary, "run": folder.name})
    return pd.DataFrame(rows), encoders
