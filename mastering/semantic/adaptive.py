"""Input-adaptive semantic EQ: "warm" for this track, with an intensity knob.

What ``mastering master --style`` applies (:data:`STYLE_METHOD`, ``axis``): the descriptor's mean
SAFE curve at a gain read from the track's spectrum (:mod:`mastering.semantic.axis`; never the
opposite EQ, monotone in the intensity). The research arm ``adaptive``: the audio encoder places the track in the β-VAE's latent space relative to typical music
(``z_audio``); the step ``z_new = z_audio + intensity (z_target - z_audio)`` (one-sided by default:
never backwards along the descriptor's axis) is decoded into SAFE settings, and the EQ applied is
``decode(z_new)`` followed by the inverse of ``decode(z_audio)`` (a ten-band biquad cascade; the
identity at intensity 0). Baselines: the descriptor's medoid setting (``static``) and flowEQ's
decoded centroid (``floweq``). :class:`SemanticEQ` bundles the VAE, the encoder and what derives
from them; :func:`build_semantic_eq` trains or reuses them for a profile and saves the bundle (a run
folder of :mod:`mastering.runs`); :func:`load_semantic_eq` reads it; :func:`semantic_scores` says how
much of a quality a track already has. The method is described in ``paper/sections/method.tex``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .. import paths
from ..data import list_tracks
from ..dsp.eq import freq_response_db, parametric_eq
from ..dsp.signals import pink_noise
from ..io import AudioError, check_finite, load_audio
from ..profiles import PROFILES, get_profile
from ..runs import run_folder, run_key
from ..provenance import atomic_write_text, stamp
from ..weights import SEMANTIC_NAME, verified_files
from .axis import AxisEQ, axis_reference, band_powers, gain_for_target, AMOUNT_RANGE
from .axis import axis_measure_after
from .encoder import ENCODER_VARIANTS, encode_audio, fit_or_load_encoder, load_encoder, save_encoder, variant_settings
from .safedb import (
    BAND_KINDS,
    load_safedb,
    normalize_descriptor,
    params_array,
    safe_response_db,
    safe_to_bands,
)
from .descriptors import MIN_DESCRIPTOR_SETTINGS, descriptor_centroids, offered_from_centroids, unknown_style_message
from .vae import decode_settings, fit_or_load, load_vae, response_freqs, save_vae

__all__ = [
    "METHODS",
    "STYLE_METHOD",
    "DEFAULT_DESCRIPTORS",
    "axis_semantic_eq",
    "INTENSITY_MAX",
    "EQSettings",
    "SemanticEQ",
    "build_semantic_eq",
    "load_semantic_eq",
    "semantic_eq_settings",
    "adaptive_semantic_eq",
    "static_eq",
    "floweq_eq",
    "semantic_scores",
    "score_from_position",
    "suggestion",
]

#: The ways of turning a descriptor into an EQ that the evaluation compares: ``axis`` (the
#: descriptor's curve at an amount read from the audio's spectrum, :mod:`mastering.semantic.axis`;
#: what ``mastering master --style`` uses), ``adaptive`` (the latent traversal), and the fixed
#: baselines ``floweq`` (decoded centroid) and ``static`` (medoid setting).
METHODS = ("axis", "adaptive", "floweq", "static")
#: The method of ``mastering master --style``.
STYLE_METHOD = "axis"
#: Descriptors evaluated by default (the listening test's targets). Only some of them are offered
#: to users (:data:`mastering.semantic.descriptors.MIN_DESCRIPTOR_SETTINGS`): "clear" has too few
#: SAFE-DB settings and is evaluated as a research target only.
DEFAULT_DESCRIPTORS = ("warm", "bright", "clear")
#: Largest intensity accepted (1 = the descriptor's centroid; above 1 exaggerates).
INTENSITY_MAX = 2.0
#: Slope of the logistic that maps a latent position to a 0-1 score.
SCORE_SLOPE = 2.0
#: 2: centroids, counts, medoids and reference curves from the VAE's training contributors only;
#: 3: plus where typical music sits on each descriptor's axis (``axis_reference``).
BUNDLE_FORMAT = 3
_REFERENCE_FREQS = dict(n_freqs=256, f_min_hz=20.0, f_max_hz=20000.0)


# ------------------------------------------------------------------------------------------------
# EQ settings
# ------------------------------------------------------------------------------------------------


@dataclass
class EQSettings:
    """A semantic EQ decided for a batch of audio: biquad bands per item, and where they came from.

    Attributes:
        method: ``"adaptive"``, ``"floweq"`` or ``"static"``.
        descriptor: the (normalized) descriptor.
        intensity: the intensity used.
        freq_hz, gain_db, q: ``[batch, bands]`` band parameters (10 bands for ``adaptive``: the
            target setting then the inverse of the track's own, 5 for the baselines).
        kinds: the bands' filter kinds (:data:`mastering.dsp.eq.EQ_KINDS`).
        z_audio, z_target, z_new: latent codes ``[batch, latent]`` (``None`` where unused);
            ``z_audio`` is the music-relative code (:meth:`SemanticEQ.relative`).
    """

    method: str
    descriptor: str
    intensity: float
    freq_hz: np.ndarray
    gain_db: np.ndarray
    q: np.ndarray
    kinds: tuple[str, ...]
    z_audio: np.ndarray | None = None
    z_target: np.ndarray | None = None
    z_new: np.ndarray | None = None

    @property
    def batch(self) -> int:
        return int(self.freq_hz.shape[0])

    def response_db(self, freqs_hz: Any = None, sample_rate: int = 44100) -> np.ndarray:
        """Magnitude response ``[batch, freqs]`` in dB (default: 256 log-spaced 20 Hz-20 kHz)."""
        freqs = response_freqs(**_REFERENCE_FREQS) if freqs_hz is None else np.asarray(freqs_hz, dtype=float)
        return np.asarray(freq_response_db(self.freq_hz, self.gain_db, self.q, self.kinds, sample_rate, freqs_hz=freqs))

    def apply(self, audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Filter ``audio`` ``[batch, channels, samples]`` (same batch, or 1 item for batch 1)
        with the exact IIR cascade (:func:`mastering.dsp.eq.parametric_eq`), in float64."""

        x = _as_batch(audio)
        if x.shape[0] != self.batch:
            raise ValueError(f"settings for {self.batch} item(s), audio has {x.shape[0]}")
        f, g, q = (torch.as_tensor(a, dtype=torch.float64) for a in (self.freq_hz, self.gain_db, self.q))
        return parametric_eq(x.double(), sample_rate, f, g, q, self.kinds, mode="exact").to(x.dtype)

    def bands(self, item: int = 0) -> list[dict[str, Any]]:
        """The bands of one item as JSON-ready dicts (``kind``, ``freq_hz``, ``gain_db``, ``q``)."""
        return [{"kind": k, "freq_hz": round(float(f), 1), "gain_db": round(float(g), 2), "q": round(float(q), 3)}
                for k, f, g, q in zip(self.kinds, self.freq_hz[item], self.gain_db[item], self.q[item])]


def _as_batch(audio: Any) -> torch.Tensor:
    x = torch.as_tensor(audio)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"expected audio [batch, channels, samples] or [channels, samples], got {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"audio must be floating point, got {x.dtype}")
    return x


def _check_intensity(intensity: float) -> float:
    value = float(intensity)
    if not (math.isfinite(value) and 0.0 <= value <= INTENSITY_MAX):
        raise ValueError(f"intensity must lie in [0, {INTENSITY_MAX:g}] (0 = no change, 1 = the descriptor, "
                         f">1 exaggerates), got {intensity!r}")
    return value


def _bands_of(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    f, g, q, _ = safe_to_bands(np.asarray(params, dtype=np.float64))
    return np.asarray(f), np.asarray(g), np.asarray(q)


# ------------------------------------------------------------------------------------------------
# scores
# ------------------------------------------------------------------------------------------------


def score_from_position(t: Any) -> np.ndarray:
    """Map a latent position ``t`` (0 a typical master, 1 the descriptor's centroid) to a 0-1 score."""
    return 1.0 / (1.0 + np.exp(-SCORE_SLOPE * np.asarray(t, dtype=float)))


def suggestion(descriptor: str, score: float) -> tuple[str, float]:
    """A plain-language reading of a score and the intensity it suggests (``1 - score``, in 0.05 steps)."""
    intensity = float(np.clip(round((1.0 - score) / 0.05) * 0.05, 0.0, 1.0))
    if score >= 0.75:
        text = f"already {descriptor} ({score:.2f}): little to add; try intensity {intensity:.2f} or leave it"
    elif score >= 0.4:
        text = f"somewhat {descriptor} ({score:.2f}): a moderate step, intensity about {intensity:.2f}"
    else:
        text = f"not {descriptor} ({score:.2f}): '{descriptor}' will make a clear difference, intensity about {intensity:.2f}"
    return text, intensity


# ------------------------------------------------------------------------------------------------
# the bundle
# ------------------------------------------------------------------------------------------------


@dataclass
class SemanticEQ:
    """The trained semantic EQ: VAE, audio encoder and the per-descriptor quantities derived from them.

    Attributes:
        vae: the β-VAE (:class:`mastering.semantic.vae.SemanticVAE`, unconditional).
        encoder: the audio encoder (:class:`mastering.semantic.encoder.AudioLatentEncoder`).
        centroids: per word-like descriptor, its latent centroid ``z_0..`` plus ``count`` and
            ``spread`` over the VAE's training contributors' settings only
            (:func:`mastering.semantic.descriptors.descriptor_centroids`). Those with at least
            :data:`~mastering.semantic.descriptors.MIN_DESCRIPTOR_SETTINGS` are offered
            (:attr:`descriptors`); the rarer ones serve the research code only.
        static_settings: per descriptor, its medoid SAFE setting (13 physical parameters) among
            the training contributors' settings.
        reference_curves: per descriptor, the mean SAFE response in dB on :attr:`reference_freqs_hz`
            over the training contributors' settings.
        reference_freqs_hz: 256 log-spaced frequencies, 20 Hz-20 kHz.
        neutral_z: the encoder's code of pink noise (a flat spectral balance).
        music_reference_z: the encoder's mean code over real-music training excerpts (``None``:
            no music was available and codes are used uncalibrated).
        config: how it was built (profile, run folders, metrics, provenance).
        excerpt_s, max_excerpts: how :meth:`encode` reads long audio.
        axis_reference: per descriptor, where typical music sits on its axis
            (:func:`mastering.semantic.axis.axis_reference`: ``typical``, ``target``, ``excerpts``),
            from the same real-music training excerpts as ``music_reference_z`` (``None``: computed
            from pink noise on use, see :meth:`axis_ref`).
    """

    vae: Any
    encoder: Any
    centroids: pd.DataFrame
    static_settings: dict[str, np.ndarray]
    reference_curves: dict[str, np.ndarray]
    reference_freqs_hz: np.ndarray
    neutral_z: np.ndarray
    music_reference_z: np.ndarray | None = None
    config: dict[str, Any] = field(default_factory=dict)
    excerpt_s: float = 3.0
    max_excerpts: int = 16
    axis_reference: dict[str, dict[str, float]] | None = None

    @property
    def descriptors(self) -> list[str]:
        """The descriptors offered to users: word-like, with at least
        :data:`~mastering.semantic.descriptors.MIN_DESCRIPTOR_SETTINGS` training settings, most first."""
        return offered_from_centroids(self.centroids)

    @property
    def known_descriptors(self) -> list[str]:
        """Every descriptor with a centroid (offered or not), most training settings first."""
        return list(self.centroids.index)

    @property
    def latent_dim(self) -> int:
        return int(self.vae.latent_dim)

    def descriptor(self, word: str) -> str:
        """Normalize ``word`` and check that the bundle has its centroid (offered or not: the
        research code evaluates rare descriptors too; users get :meth:`offered`)."""
        d = normalize_descriptor(word)
        if d not in self.centroids.index:
            known = ", ".join(self.known_descriptors[:12])
            raise ValueError(f"unknown descriptor {word!r}; known descriptors (SAFE-DB, most examples first): {known}")
        return d

    def offered(self, word: str) -> str:
        """Normalize ``word`` and check that it is offered (:attr:`descriptors`).

        Raises:
            ValueError: "unknown style 'clear': available: bright, warm (descriptors with >= 50
                SAFE-DB settings ...)".
        """
        d = normalize_descriptor(word)
        if d not in self.descriptors:
            raise ValueError(unknown_style_message(word, self.descriptors, MIN_DESCRIPTOR_SETTINGS))
        return d

    def target_z(self, word: str) -> np.ndarray:
        """The descriptor's latent centroid ``[latent]``."""
        d = self.descriptor(word)
        return self.centroids.loc[d, [f"z_{i}" for i in range(self.latent_dim)]].to_numpy(float)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """SAFE settings ``[n, 13]`` of latent codes ``[n, latent]``."""
        return decode_settings(self.vae, np.atleast_2d(z))

    @torch.no_grad()
    def encode(self, audio: Any, sample_rate: int) -> np.ndarray:
        """Latent codes ``[batch, latent]`` of audio ``[batch, channels, samples]`` (or 2-D).

        Audio longer than :attr:`excerpt_s` is read as up to :attr:`max_excerpts` evenly spaced
        excerpts whose codes are averaged (one code per track, as the mastering chain does).

        Raises:
            AudioError: NaN/Inf or digitally silent items, or audio shorter than the encoder's FFT.
        """

        x = _as_batch(audio)
        check_finite(x)
        rms = x.double().pow(2).mean(dim=(1, 2)).sqrt()
        if bool((rms < 1e-7).any()):
            raise AudioError("silent audio (RMS below -140 dBFS) has no spectral balance to describe")
        n_fft_s = self.encoder.config["n_fft"] / self.encoder.sample_rate
        if x.shape[-1] < n_fft_s * sample_rate:
            raise AudioError(f"audio of {x.shape[-1] / sample_rate:.3f} s is too short (at least {n_fft_s:.3f} s)")
        n_ex = int(round(self.excerpt_s * sample_rate))
        if x.shape[-1] <= n_ex:
            return encode_audio(self.encoder, x.float(), sample_rate)
        count = max(1, min(self.max_excerpts, x.shape[-1] // n_ex))
        starts = np.linspace(0, x.shape[-1] - n_ex, count).round().astype(int)
        codes = [encode_audio(self.encoder, x[..., s: s + n_ex].float(), sample_rate) for s in starts]
        return np.mean(codes, axis=0)

    def axis_ref(self, word: str) -> dict[str, float]:
        """Where typical music sits on ``word``'s axis (:attr:`axis_reference`; without one, pink
        noise stands in for typical music and ``note`` says so)."""
        d = self.descriptor(word)
        if self.axis_reference is not None and d in self.axis_reference:
            return self.axis_reference[d]
        noise = pink_noise(int(3 * 44100), channels=1, batch=8, seed=12345)
        ref = axis_reference(band_powers(noise, 44100, self.reference_freqs_hz), self.reference_curves[d])
        return {**ref, "note": "pink noise stands in for typical music (no music reference in the bundle)"}

    def axis_positions(self, powers: np.ndarray, descriptors: Sequence[str]) -> np.ndarray:
        """Position ``[n, descriptors]`` of audio with band powers ``powers`` (on
        :attr:`reference_freqs_hz`) on each descriptor's axis, read from the spectrum without the
        encoder (:mod:`mastering.semantic.axis`): 0 where typical music sits, 1 where it sits with
        the descriptor's full mean curve."""
        powers = np.atleast_2d(powers)
        out = np.empty((powers.shape[0], len(descriptors)))
        for j, word in enumerate(descriptors):
            d = self.descriptor(word)
            ref = self.axis_ref(d)
            before = axis_measure_after(powers, self.reference_curves[d], 0.0)
            out[:, j] = (before - ref["typical"]) / max(ref["target"] - ref["typical"], 1e-9)
        return out

    def relative(self, z: np.ndarray) -> np.ndarray:
        """Music-relative codes: ``z - music_reference_z + neutral_z`` (unchanged without a reference)."""
        z = np.atleast_2d(np.asarray(z, dtype=float))
        if self.music_reference_z is None:
            return z
        return z - self.music_reference_z[None] + self.neutral_z[None]

    def positions(self, z: np.ndarray, descriptors: Sequence[str]) -> np.ndarray:
        """Position ``t`` ``[n, descriptors]`` of relative codes (:meth:`relative`) along flat ->
        centroid (0 flat, i.e. a typical master, 1 the centroid)."""
        z = self.relative(z)
        out = np.empty((z.shape[0], len(descriptors)))
        for j, d in enumerate(descriptors):
            axis = self.target_z(d) - self.neutral_z
            out[:, j] = (z - self.neutral_z) @ axis / max(float(axis @ axis), 1e-12)
        return out

    # -- persistence -------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``vae.pt``, ``encoder.pt`` and ``semantic_eq.json`` into ``folder`` (atomically each)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_vae(self.vae, folder / "vae.pt")
        save_encoder(self.encoder, folder / "encoder.pt")
        meta = {
            "format": BUNDLE_FORMAT,
            "centroids": json.loads(self.centroids.reset_index().to_json(orient="records")),
            "static_settings": {d: [float(v) for v in p] for d, p in self.static_settings.items()},
            "reference_freqs_hz": [float(v) for v in self.reference_freqs_hz],
            "reference_curves": {d: [round(float(v), 5) for v in c] for d, c in self.reference_curves.items()},
            "neutral_z": [float(v) for v in self.neutral_z],
            "music_reference_z": None if self.music_reference_z is None else [float(v) for v in self.music_reference_z],
            "excerpt_s": self.excerpt_s,
            "max_excerpts": self.max_excerpts,
            "axis_reference": self.axis_reference,
            "config": self.config,
        }
        atomic_write_text(folder / "semantic_eq.json", json.dumps(meta, indent=1, default=str) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str = "cpu") -> "SemanticEQ":
        """Read a bundle written by :meth:`save`."""
        folder = Path(folder)
        meta_path = folder / "semantic_eq.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"no semantic EQ bundle in {folder} (semantic_eq.json missing)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != BUNDLE_FORMAT:
            profile = meta.get("config", {}).get("profile", "smoke")
            raise ValueError(f"{meta_path}: bundle format {meta.get('format')!r}, this code reads {BUNDLE_FORMAT} "
                             "(descriptor centroids from training contributors only; where typical music sits "
                             "on each descriptor's axis); rebuild it with "
                             f"`python -m mastering.semantic build --profile {profile}`")
        centroids = pd.DataFrame(meta["centroids"]).set_index("descriptor")
        return cls(
            vae=load_vae(folder / "vae.pt", device=device),
            encoder=load_encoder(folder / "encoder.pt", device=device),
            centroids=centroids,
            static_settings={d: np.asarray(p, dtype=float) for d, p in meta["static_settings"].items()},
            reference_curves={d: np.asarray(c, dtype=float) for d, c in meta["reference_curves"].items()},
            reference_freqs_hz=np.asarray(meta["reference_freqs_hz"], dtype=float),
            neutral_z=np.asarray(meta["neutral_z"], dtype=float),
            music_reference_z=None if meta.get("music_reference_z") is None else np.asarray(meta["music_reference_z"], dtype=float),
            config=meta.get("config", {}),
            excerpt_s=float(meta.get("excerpt_s", 3.0)),
            max_excerpts=int(meta.get("max_excerpts", 16)),
            axis_reference=meta.get("axis_reference"),
        )


def medoid_settings(df: pd.DataFrame, descriptor: str, sample_rate: int = 44100) -> tuple[np.ndarray, np.ndarray]:
    """A descriptor's medoid SAFE setting and its mean response.

    Returns:
        ``(setting [13], mean_curve_db [256])``: the setting whose response is nearest (RMS dB over
        256 log-spaced frequencies, 20 Hz-20 kHz) to the mean response of all the descriptor's
        settings, and that mean response.
    """

    rows = df[df["descriptor"] == normalize_descriptor(descriptor)]
    if rows.empty:
        raise ValueError(f"no SAFE-DB settings for {descriptor!r}")
    params = params_array(rows)
    curves = np.asarray(safe_response_db(params, response_freqs(**_REFERENCE_FREQS), sample_rate))
    mean = curves.mean(0)
    best = int(np.argmin(np.sqrt(((curves - mean) ** 2).mean(1))))
    return params[best], mean


def build_semantic_eq(
    profile: str = "smoke",
    df: pd.DataFrame | None = None,
    progress: bool = True,
    min_count: int | None = None,
    save: bool = True,
    seed: int = 0,
) -> tuple[SemanticEQ, Path]:
    """Train (or reuse) the VAE and the pink-noise audio encoder of ``profile`` and bundle them.

    The VAE is :func:`mastering.semantic.vae.fit_or_load` with the profile's ``vae`` ``train``
    settings (the run notebook 07 makes), the encoder
    :func:`mastering.semantic.encoder.fit_or_load_encoder` with its ``encoder`` settings (notebook
    08's main encoder, ``cnn-mse``), trained on the VAE's training contributors. Centroids, medoid
    settings and reference curves are computed over the same training contributors' settings only
    (the VAE run's recorded ``train_index``: :mod:`mastering.semantic.descriptors`), for word-like
    descriptors with at least ``min_count`` training settings (default the profile's); of those,
    the ones with at least :data:`~mastering.semantic.descriptors.MIN_DESCRIPTOR_SETTINGS` are
    offered to users. ``seed`` seeds both trainings (notebooks 07-09 pass theirs, so the runs they
    made are reused).

    Returns:
        ``(bundle, folder)``; the bundle is saved to ``runs/semantic_eq/<profile>-<hash>/`` and
        recorded in ``runs/semantic_eq/latest-<profile>.json`` when ``save``.
    """

    V = get_profile(profile)["vae"]
    df = load_safedb() if df is None else df
    vae_model, vrec, vfolder = fit_or_load(df, {**V["train"], "seed": seed}, profile, progress=progress)
    history = vrec["history"]
    enc, erec, efolder = fit_or_load_encoder(vae_model, vfolder, df, history["train_index"], history["val_index"],
                                             variant_settings(profile, ENCODER_VARIANTS["cnn-mse"], seed), profile,
                                             progress=progress)
    train_index = np.asarray(history["train_index"], dtype=int)
    train_df = df.iloc[train_index]
    centroids = descriptor_centroids(vae_model, df, train_index, min_count=min_count or V["min_count"])
    static, curves = {}, {}
    for d in centroids.index:
        static[d], curves[d] = medoid_settings(train_df, d)
    sr = enc.sample_rate
    noise = pink_noise(int(3 * sr), channels=1, batch=8, seed=12345)

    neutral = encode_audio(enc, noise, sr).mean(0)
    music_ref, music_powers, music_info = _music_reference(enc, profile, response_freqs(**_REFERENCE_FREQS))
    if music_powers is None:
        music_powers = band_powers(noise.double(), sr, response_freqs(**_REFERENCE_FREQS))
        music_info["axis_reference"] = "pink noise (no real music prepared)"
    axis_refs = {d: axis_reference(music_powers, curves[d]) for d in centroids.index}
    config = {
        "profile": profile, "vae_run": vfolder.name, "encoder_run": efolder.name,
        "vae_metrics": vrec.get("metrics", {}), "encoder_evaluation": erec.get("evaluation", {}),
        "music_reference": music_info,
        "safedb": {k: v for k, v in df.attrs.get("cleaning", {}).items() if k != "source"},
        "descriptors": {
            "min_settings": MIN_DESCRIPTOR_SETTINGS, "rows": "the VAE run's training contributors",
            "train_rows": int(len(train_index)), "train_contributors": int(train_df["contributor"].nunique()),
            "offered": {d: int(centroids.loc[d, "count"]) for d in offered_from_centroids(centroids)},
        },
        "provenance": stamp(profile),
    }  # fmt: skip
    bundle = SemanticEQ(vae_model, enc, centroids, static, curves, response_freqs(**_REFERENCE_FREQS), neutral,
                        music_ref, config, axis_reference=axis_refs)
    key = run_key({"format": BUNDLE_FORMAT, "min_count": min_count or V["min_count"],
                   "min_settings": MIN_DESCRIPTOR_SETTINGS}, [__name__],
                  vae=vfolder.name, encoder=efolder.name, music=music_info)
    folder = run_folder("semantic_eq", profile, key)
    if save:
        bundle.save(folder)
        latest = {"folder": str(folder), "profile": profile, "date": config["provenance"]["date"]}
        atomic_write_text(folder.parent / f"latest-{profile}.json", json.dumps(latest, indent=2) + "\n")
    return bundle, folder


def _music_reference(encoder: Any, profile: str, freqs_hz: np.ndarray, clips_per_track: int = 4,
                     excerpt_s: float = 3.0, max_tracks: int = 200
                     ) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """Mean encoder code over evenly spaced excerpts of the profile's real-music training tracks,
    and the excerpts' band powers on ``freqs_hz`` (:func:`mastering.semantic.axis.band_powers`)."""
    try:
        tracks = [t for t in list_tracks(profile=profile, split="train", kind="real")][:max_tracks]
    except (FileNotFoundError, ValueError) as exc:
        return None, None, {"tracks": 0, "note": f"no real music available ({exc}); codes uncalibrated"}
    if not tracks:
        return None, None, {"tracks": 0, "note": "no real-music training tracks prepared (`make data`); codes uncalibrated"}
    codes, powers = [], []
    for t in tracks:
        for k in range(clips_per_track):
            offset = (k + 0.5) / clips_per_track * max(t.duration_s - excerpt_s, 0.0)
            audio, sr = load_audio(t.path, offset_s=offset, duration_s=excerpt_s)
            if audio.abs().max() > 0:
                codes.append(encode_audio(encoder, audio[None], sr)[0])
                powers.append(band_powers(audio[None].double(), sr, freqs_hz)[0])
    return np.mean(codes, axis=0), np.stack(powers), {
        "tracks": len(tracks), "excerpts": len(codes), "split": "train", "excerpt_s": excerpt_s,
        "track_ids": sorted(t.key for t in tracks)[:50]}


def load_semantic_eq(path: str | os.PathLike | None = None, device: str = "cpu", local_only: bool = False) -> SemanticEQ:
    """Load a bundle folder, or by default the newest local bundle of the largest profile that has
    one, where the released bundle in ``weights/`` (:mod:`mastering.semantic.release`) ranks as a
    bundle of its profile after a local one (so a local ``smoke`` bundle never hides a ``cpu`` release).

    ``local_only`` skips the release: the research code (listening-test systems, rare descriptors
    such as "clear", the medoid baseline) needs a full local bundle.

    Raises:
        FileNotFoundError: none has been built or released (the message says how to build one).
        mastering.weights.WeightsError: a release whose files differ from its card.
    """
    if path is not None:
        return SemanticEQ.load(path, device)
    root = paths.runs_dir() / "semantic_eq"
    release = None if local_only else verified_files(SEMANTIC_NAME)
    for profile in reversed(PROFILES):
        pointer = root / f"latest-{profile}.json"
        if pointer.is_file():
            folder = Path(json.loads(pointer.read_text())["folder"])
            if (folder / "semantic_eq.json").is_file():
                return SemanticEQ.load(folder, device)
        if release is not None and release[1].get("profile") == profile:
            return SemanticEQ.load(release[0], device)
    if release is not None:
        return SemanticEQ.load(release[0], device)
    raise FileNotFoundError(
        f"no semantic EQ model under {root} and none released in weights/; build one with "
        "`python -m mastering.semantic build --profile smoke` (about a minute on a CPU) or run notebooks 07-09")


# ------------------------------------------------------------------------------------------------
# the three methods
# ------------------------------------------------------------------------------------------------


def semantic_eq_settings(
    model: SemanticEQ,
    audio: Any,
    sample_rate: int,
    descriptor: str,
    intensity: float = 1.0,
    method: str = "adaptive",
    z_audio: np.ndarray | None = None,
    one_sided: bool = True,
    powers: np.ndarray | None = None,
) -> EQSettings | AxisEQ:
    """Decide the EQ that ``method`` gives ``audio`` for ``descriptor`` at ``intensity``.

    Args:
        model: the bundle.
        audio: ``[batch, channels, samples]`` (or ``[channels, samples]``) at ``sample_rate``; may
            be ``None`` when ``z_audio`` is given.
        descriptor: e.g. ``"warm"`` (normalized: case, inflections).
        intensity: 0 (no change) to :data:`INTENSITY_MAX`; 1 = the descriptor.
        method: ``"axis"`` (the descriptor's curve at an amount read from the audio's spectrum:
            :mod:`mastering.semantic.axis`), ``"adaptive"`` (from the audio's own code),
            ``"floweq"`` (the centroid's decoding) or ``"static"`` (the medoid SAFE setting).
        z_audio: the audio's raw codes when already computed (:meth:`SemanticEQ.encode`).
        one_sided: ``adaptive`` only: never step backwards along the descriptor's axis (see the
            module docstring).
        powers: ``axis`` only: the audio's band powers on :attr:`SemanticEQ.reference_freqs_hz`
            when already computed (:func:`mastering.semantic.axis.band_powers`); ``audio`` may then be ``None``.

    Returns:
        :class:`EQSettings` for every item (:class:`mastering.semantic.axis.AxisEQ` for ``axis``).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    d = model.descriptor(descriptor)
    intensity = _check_intensity(intensity)
    if method == "axis":
        return _axis_settings(model, audio, sample_rate, d, intensity, powers)
    if audio is None and z_audio is None:
        raise ValueError("pass the audio, or its codes as z_audio")
    x = _as_batch(audio) if audio is not None else None
    batch = x.shape[0] if x is not None else np.atleast_2d(z_audio).shape[0]
    z_t = model.target_z(d)
    if method == "adaptive":
        z_a = model.relative(model.encode(x, sample_rate) if z_audio is None else z_audio)
        if z_a.shape[0] != batch:
            raise ValueError(f"z_audio has {z_a.shape[0]} rows for {batch} item(s)")
        step = intensity * (z_t[None] - z_a)
        if one_sided:
            axis = z_t - model.neutral_z
            axis = axis / max(float(np.linalg.norm(axis)), 1e-12)
            along = step @ axis
            step = step - np.minimum(along, 0.0)[:, None] * axis[None]
        z_new = z_a + step
        f1, g1, q1 = _bands_of(model.decode(z_new))
        f0, g0, q0 = _bands_of(model.decode(z_a))
        return EQSettings(method, d, intensity, np.concatenate([f1, f0], 1), np.concatenate([g1, -g0], 1),
                          np.concatenate([q1, q0], 1), tuple(BAND_KINDS) * 2, z_a, np.repeat(z_t[None], batch, 0), z_new)
    params = model.decode(z_t[None])[0] if method == "floweq" else model.static_settings[d]
    f, g, q = _bands_of(np.repeat(np.asarray(params, dtype=float)[None], batch, 0))
    return EQSettings(method, d, intensity, f, g * intensity, q, tuple(BAND_KINDS),
                      z_target=np.repeat(z_t[None], batch, 0) if method == "floweq" else None)


def _axis_settings(model: SemanticEQ, audio: Any, sample_rate: int, d: str, intensity: float,
                   powers: np.ndarray | None) -> AxisEQ:
    if powers is None:
        if audio is None:
            raise ValueError("pass the audio, or its band powers as powers")
        x = _as_batch(audio)
        check_finite(x)
        powers = band_powers(x, sample_rate, model.reference_freqs_hz)
    powers = np.atleast_2d(powers)
    if not bool(np.all(powers.sum(-1) > 0)):
        raise AudioError("silent audio has no spectral balance to adapt to")
    curve, ref = model.reference_curves[d], model.axis_ref(d)
    before = axis_measure_after(powers, curve, 0.0)
    amount = np.clip(gain_for_target(powers, curve, ref["target"]), *AMOUNT_RANGE)
    position = model.axis_positions(powers, [d])[:, 0]
    return AxisEQ(d, intensity, np.asarray(curve, float), np.asarray(model.reference_freqs_hz, float),
                  intensity * amount, amount, before, position)


def _run(method: str, audio, sample_rate, descriptor, intensity, model):
    model = load_semantic_eq() if model is None else model
    x = _as_batch(audio)
    settings = semantic_eq_settings(model, x, sample_rate, descriptor, intensity, method)
    out = settings.apply(x, sample_rate)
    return (out if torch.as_tensor(audio).ndim == 3 else out[0]), settings


def adaptive_semantic_eq(
    audio: Any, sample_rate: int, descriptor: str, intensity: float = 1.0, model: SemanticEQ | None = None
) -> tuple[torch.Tensor, EQSettings]:
    """Input-adaptive semantic EQ (see the module docstring): ``z_audio -> z_audio + intensity
    (z_target - z_audio)``, decoded, applied relative to the track's own decoded setting.

    Args:
        audio: ``[batch, channels, samples]`` or ``[channels, samples]``, any rate.
        sample_rate: its rate in Hz.
        descriptor: e.g. ``"warm"``, ``"bright"``.
        intensity: 0 = no change (the identity), 1 = the descriptor, up to 2 to exaggerate.
        model: a :class:`SemanticEQ` (default :func:`load_semantic_eq`).

    Returns:
        ``(processed audio of the input's shape, EQSettings)``.
    """
    return _run("adaptive", audio, sample_rate, descriptor, intensity, model)


def axis_semantic_eq(
    audio: Any, sample_rate: int, descriptor: str, intensity: float = 1.0, model: SemanticEQ | None = None
) -> tuple[torch.Tensor, AxisEQ]:
    """The descriptor's mean SAFE curve at ``intensity`` times an amount read from the audio's
    spectrum (:mod:`mastering.semantic.axis`): what ``mastering master --style`` applies.

    Returns:
        ``(processed audio of the input's shape, AxisEQ)``.
    """
    return _run("axis", audio, sample_rate, descriptor, intensity, model)


def static_eq(audio: Any, sample_rate: int, descriptor: str, intensity: float = 1.0,
              model: SemanticEQ | None = None) -> tuple[torch.Tensor, EQSettings]:
    """Baseline: the descriptor's medoid SAFE setting, gains times ``intensity``, for every input."""
    return _run("static", audio, sample_rate, descriptor, intensity, model)


def floweq_eq(audio: Any, sample_rate: int, descriptor: str, intensity: float = 1.0,
              model: SemanticEQ | None = None) -> tuple[torch.Tensor, EQSettings]:
    """Baseline (flowEQ's semantic mode): the decoded centroid, gains times ``intensity``, for every input."""
    return _run("floweq", audio, sample_rate, descriptor, intensity, model)


def semantic_scores(
    audio: Any, sample_rate: int, model: SemanticEQ | None = None, descriptors: Sequence[str] | None = None
) -> pd.DataFrame:
    """How warm/bright/... the audio already is (default: the offered descriptors, :attr:`SemanticEQ.descriptors`).

    Returns:
        One row per item and descriptor: ``item``, ``descriptor``, ``position`` (0 neutral, 1 the
        descriptor's centroid), ``score`` (0-1), ``suggested_intensity`` and ``suggestion`` (text).
    """
    model = load_semantic_eq() if model is None else model
    words = [model.descriptor(d) for d in descriptors] if descriptors else model.descriptors
    z = model.encode(audio, sample_rate)
    t = model.positions(z, words)
    rows = []
    for i in range(z.shape[0]):
        for j, d in enumerate(words):
            s = float(score_from_position(t[i, j]))
            text, suggested = suggestion(d, s)
            rows.append({"item": i, "descriptor": d, "position": float(t[i, j]), "score": s,
                         "suggested_intensity": suggested, "suggestion": text})
    return pd.DataFrame(rows)
