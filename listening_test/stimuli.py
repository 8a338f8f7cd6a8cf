"""Stimuli for the listening test: excerpts of real music processed by the systems under test.

For every track (an *item*) the loudest ``clip_s``-second excerpt is cut (short raised-cosine
fades), and every system under test processes it once per semantic target. Every stimulus, the
unprocessed ``original`` included, is then normalised to the same integrated loudness (ITU-R
BS.1770-4 with gating, measured by :mod:`mastering.dsp.loudness`; -23 LUFS as in EBU R 128) so
that loudness differences, which listeners readily mistake for timbre, cannot bias the ratings.
The result is::

    out_dir/manifest.csv
    out_dir/original/<item>.wav
    out_dir/<condition>/<target>/<item>.wav

A *system* is a callable ``system(audio, sample_rate, target) -> audio`` on ``[1, channels,
samples]`` tensors, optionally wrapped in :class:`StimulusSystem` with a description and a
``placeholder`` flag. The real conditions come from the semantic EQ
(``listening_test.systems:stimulus_systems``, what ``make listening-test-stimuli`` and notebook 12
use); :func:`placeholder_systems` stands in for them with simple EQ (pedalboard's biquad shelves
and peaks) for a pipeline check where no semantic model is at hand (``--systems placeholder``, and the
app's own tests); every stimulus it makes is marked ``placeholder=1`` in the manifest and in every exported
rating. :func:`generate_study_stimuli` makes the set a run profile asks for (notebook 12).

The conditions, targets and manifest format are the study design's
(:mod:`mastering.evaluation.listening_design`, :mod:`mastering.evaluation.listening_manifest`).
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from mastering.data import manifest as track_manifest
from mastering.dsp.loudness import loudness
from mastering.evaluation.listening_design import TARGETS
from mastering.evaluation.listening_manifest import MANIFEST_NAME, write_manifest
from mastering.io import AudioError, audio_info, check_finite, iter_audio, read_audio_span, save_audio
from mastering.paths import build_dir, data_dir
from mastering.profiles import get_profile

__all__ = [
    "System",
    "StimulusSystem",
    "AUDIO_SUFFIXES",
    "PLACEHOLDER_SYSTEMS_SPEC",
    "integrated_lufs",
    "normalize_loudness",
    "loudest_excerpt",
    "loudest_clip",
    "select_tracks",
    "split_tracks",
    "generate_stimuli",
    "generate_study_stimuli",
    "placeholder_systems",
    "REAL_SYSTEMS_SPEC",
    "load_systems",
    "adaptive_gain_db",
    "band_share_db",
    "MANIFEST_COLUMNS",
]

System = Callable[[torch.Tensor, int, str], torch.Tensor]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
MANIFEST_COLUMNS = [
    "item", "condition", "target", "path", "placeholder", "system", "source", "source_offset_s",
    "integrated_lufs", "sample_peak_dbfs", "sample_rate", "duration_s",
]
#: The ``--systems`` default: the real systems under test (they need a local semantic EQ bundle).
REAL_SYSTEMS_SPEC = "listening_test.systems:stimulus_systems"
#: The stand-ins of :func:`placeholder_systems` (``--systems placeholder``).
PLACEHOLDER_SYSTEMS_SPEC = "listening_test.stimuli:placeholder_systems"
#: K-weighting of :func:`integrated_lufs`: pyloudnorm's default filters, so that the stimuli keep
#: the loudness they were normalised to when pyloudnorm measured it.
_K_WEIGHTING = "rbj"


@dataclass(frozen=True)
class StimulusSystem:
    """A system under test as the stimuli generator uses it.

    Attributes:
        process: ``process(audio [1, channels, samples], sample_rate, target) -> same shape``.
        description: one line stored in the manifest's ``system`` column.
        placeholder: ``True`` when this is a stand-in, not the system the condition names.
    """

    process: System
    description: str = ""
    placeholder: bool = False


# -- loudness ----------------------------------------------------------------------------------
def integrated_lufs(audio: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness (LUFS) of ``[channels, samples]`` audio, ITU-R BS.1770-4.

    Measured by :func:`mastering.dsp.loudness.loudness` with pyloudnorm's default K-weighting
    filters (``design="rbj"``), in float64, and -inf for silence (``floor_lufs=None``): the
    readings of ``pyloudnorm.Meter(sample_rate).integrated_loudness`` on whole 100 ms steps.

    Raises:
        AudioError: audio that is not ``[channels, samples]`` or is shorter than one 400 ms
            gating block.
    """
    if audio.ndim != 2:
        raise AudioError(f"expected [channels, samples] audio, got shape {tuple(audio.shape)}")
    if audio.shape[-1] < 0.4 * sample_rate:
        raise AudioError("audio shorter than 0.4 s has no BS.1770 loudness (one gating block)")
    x = audio.detach().to(device="cpu", dtype=torch.float64)[None]
    return float(loudness(x, sample_rate, floor_lufs=None, design=_K_WEIGHTING))


def normalize_loudness(audio: torch.Tensor, sample_rate: int, target_lufs: float = -23.0) -> torch.Tensor:
    """Scale ``[channels, samples]`` audio to ``target_lufs`` integrated loudness (BS.1770-4).

    A gain is exact here: both BS.1770 gates move with the signal (the relative gate is relative,
    and the absolute -70 LUFS gate is far below any music at -23 LUFS).

    Raises:
        AudioError: silent audio (no block above the absolute gate).
    """
    measured = integrated_lufs(audio, sample_rate)
    if not math.isfinite(measured):
        raise AudioError("the excerpt is silent (no BS.1770 block above -70 LUFS); choose another track")
    return audio * (10.0 ** ((target_lufs - measured) / 20.0))


# -- excerpts and tracks -----------------------------------------------------------------------
def _clip_frames(sample_rate: int, clip_s: float, hop_s: float) -> tuple[int, int]:
    """``(window, hop)`` in samples of the loudest-excerpt search."""
    return int(round(clip_s * sample_rate)), max(1, int(round(hop_s * sample_rate)))


def _clip_starts(total: int, sample_rate: int, clip_s: float, hop_s: float) -> np.ndarray:
    """Start samples of the candidate windows in ``total`` samples (an AudioError when none fits)."""
    n, hop = _clip_frames(sample_rate, clip_s, hop_s)
    if total < n:
        raise AudioError(f"the track lasts {total / sample_rate:.2f} s, shorter than the {clip_s} s clip")
    return np.arange(0, total - n + 1, hop)


def loudest_excerpt(audio: torch.Tensor, sample_rate: int, clip_s: float, hop_s: float = 0.25) -> tuple[torch.Tensor, int]:
    """The ``clip_s``-second window of ``[channels, samples]`` audio with the most energy.

    Returns:
        ``(excerpt, start sample)``; the search steps by ``hop_s``.

    Raises:
        AudioError: audio shorter than ``clip_s``.
    """
    starts = torch.from_numpy(_clip_starts(audio.shape[-1], sample_rate, clip_s, hop_s))
    n = _clip_frames(sample_rate, clip_s, hop_s)[0]
    power = audio.double().pow(2).mean(dim=0)
    csum = torch.cat([torch.zeros(1, dtype=power.dtype), torch.cumsum(power, 0)])
    energy = csum[starts + n] - csum[starts]
    start = int(starts[int(torch.argmax(energy))])
    return audio[:, start:start + n], start


def loudest_clip(track: str | os.PathLike, sample_rate: int, channels: int, clip_s: float,
                 hop_s: float = 0.25) -> tuple[torch.Tensor, int]:
    """:func:`loudest_excerpt` of a track read at ``sample_rate`` with ``channels``, in memory that
    does not grow with the track: the windows' energies are summed while it streams
    (:func:`mastering.io.iter_audio`), then only the chosen clip is read
    (:func:`mastering.io.read_audio_span`). The running sum continues block to block,
    so the energies, and the choice, are those of the whole track in memory.

    Returns:
        ``(excerpt, start sample)``.

    Raises:
        AudioError: an unreadable track or one shorter than ``clip_s``.
    """
    n, hop = _clip_frames(sample_rate, clip_s, hop_s)
    at_start, at_end = [np.zeros(1)], []  # cumulative energy at k * hop and at k * hop + n
    total, carry = 0, 0.0
    for x in iter_audio(track, sample_rate=sample_rate, channels=channels):
        power = np.mean(x.astype(np.float64) ** 2, axis=0)
        power[0] += carry
        csum = np.cumsum(power)  # csum[i]: the energy of samples [0, total + i + 1)
        carry = float(csum[-1])
        for marks, offset in ((at_start, 0), (at_end, n)):
            first = sum(m.size for m in marks) * hop + offset
            marks.append(csum[np.arange(first, total + x.shape[-1] + 1, hop) - total - 1])
        total += x.shape[-1]
    starts = _clip_starts(total, sample_rate, clip_s, hop_s)
    energy = np.concatenate(at_end)[: starts.size] - np.concatenate(at_start)[: starts.size]
    start = int(starts[int(np.argmax(energy))])
    return read_audio_span(track, start, start + n, sample_rate=sample_rate, channels=channels), start


def _fade(audio: torch.Tensor, sample_rate: int, fade_ms: float) -> torch.Tensor:
    n = min(int(round(fade_ms * 1e-3 * sample_rate)), audio.shape[-1] // 2)
    if n < 1:
        return audio
    ramp = 0.5 - 0.5 * torch.cos(torch.linspace(0.0, math.pi, n, dtype=audio.dtype))
    out = audio.clone()
    out[:, :n] *= ramp
    out[:, -n:] *= ramp.flip(0)
    return out


def select_tracks(
    folder: str | os.PathLike | None, n_items: int, seed: int = 0, min_duration_s: float = 0.0
) -> list[Path]:
    """Pick ``n_items`` audio files (recursively) from ``folder``, reproducibly from ``seed``.

    Args:
        folder: a folder of audio files; ``None`` means ``mastering.paths.data_dir()/tracks``.
        n_items: how many to pick.
        seed: seed of the choice (``numpy.random.default_rng``).
        min_duration_s: skip files shorter than this (per their header).

    Raises:
        AudioError: a missing folder or fewer usable files than ``n_items``.
    """
    if folder is None:
        folder = data_dir() / "tracks"
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f"{folder}: no such folder of tracks (run `make data` or pass --tracks DIR)")
    if n_items < 1:
        raise ValueError("n_items must be at least 1")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    usable = []
    for p in files:
        try:
            if audio_info(p).duration_s >= min_duration_s:
                usable.append(p)
        except AudioError:
            continue
    if len(usable) < n_items:
        raise AudioError(
            f"{folder}: {len(usable)} readable track(s) of at least {min_duration_s} s, {n_items} needed"
        )
    rng = np.random.default_rng(seed)
    return [usable[i] for i in sorted(rng.choice(len(usable), size=n_items, replace=False))]


def split_tracks(n_items: int, split: str = "test", seed: int = 0, min_duration_s: float = 0.0) -> list[Path]:
    """Pick ``n_items`` real-music tracks of one split of the prepared data (``make data``).

    Stimuli come from the ``test`` split by default, so that no system under test was trained on
    them; ``split`` may name several splits joined by ``+`` (e.g. ``"test+valid"``: the semantic EQ
    systems never saw the validation tracks either). The choice is reproducible from ``seed``
    (``numpy.random.default_rng``).

    Raises:
        AudioError: no prepared data, or fewer usable tracks in the split than ``n_items``.
    """
    try:
        splits = split.split("+")
        df = track_manifest.load_manifest(split=splits[0] if len(splits) == 1 else splits, kind="real")
    except FileNotFoundError as exc:
        raise AudioError(f"{exc}; or pass a folder of tracks (--tracks DIR)") from None
    df = df[df["duration_s"].astype(float) >= float(min_duration_s)].sort_values("path")
    if len(df) < n_items:
        raise AudioError(
            f"the {split!r} split holds {len(df)} real track(s) of at least {min_duration_s} s, {n_items} "
            "needed; prepare more data (`make data PROFILE=full`) or pass --tracks DIR"
        )
    rng = np.random.default_rng(seed)
    paths = list(df["path"])
    return [Path(paths[i]) for i in sorted(rng.choice(len(paths), size=n_items, replace=False))]


# -- the generator -----------------------------------------------------------------------------
def _as_system(name: str, system) -> StimulusSystem:
    if isinstance(system, StimulusSystem):
        return system
    if callable(system):
        return StimulusSystem(system, getattr(system, "__name__", name), False)
    raise TypeError(f"system {name!r} is neither callable nor a StimulusSystem")


def _db(x: float) -> float:
    return 20.0 * math.log10(x) if x > 0 else float("-inf")


def generate_stimuli(
    tracks: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    systems: Mapping[str, System | StimulusSystem],
    targets: Sequence[str] = TARGETS,
    *,
    sample_rate: int = 44100,
    channels: int = 2,
    clip_s: float = 8.0,
    target_lufs: float = -23.0,
    max_peak_dbfs: float = -1.0,
    fade_ms: float = 20.0,
    overwrite: bool = False,
) -> Path:
    """Write the stimuli set and its manifest; returns the manifest path.

    Args:
        tracks: one audio file per item (``item01``, ``item02``... in this order).
        out_dir: the stimuli folder (created).
        systems: ``{condition: system}`` for the processed conditions; ``original`` is added.
        targets: the semantic targets each system is asked for (and listeners rate).
        sample_rate: sample rate of the stimuli (tracks are resampled).
        channels: 1 or 2 channels in the stimuli.
        clip_s: excerpt length in seconds (the loudest window of each track).
        target_lufs: integrated loudness of every stimulus (BS.1770-4).
        max_peak_dbfs: refuse a stimulus whose sample peak exceeds this after normalisation
            (lower ``target_lufs`` then) rather than clip or limit it.
        fade_ms: raised-cosine fade in and out of each excerpt.
        overwrite: replace an existing manifest in ``out_dir``.

    Raises:
        ValueError: no tracks/targets/systems, a system named ``original``, a malformed target,
            or an existing manifest without ``overwrite``.
        AudioError: an unreadable or too short track, a system output of the wrong shape or with
            NaN/Inf, silence, or a peak above ``max_peak_dbfs``.
    """
    tracks = [Path(t) for t in tracks]
    targets = list(targets)
    _check_generate_args(tracks, targets, systems, clip_s)
    wrapped = {name: _as_system(name, s) for name, s in systems.items()}
    out = Path(out_dir)
    if (out / MANIFEST_NAME).exists() and not overwrite:
        raise ValueError(f"{out / MANIFEST_NAME} exists; pass overwrite=True (--overwrite) to replace it")
    out.mkdir(parents=True, exist_ok=True)
    writer = _StimulusWriter(out, sample_rate, target_lufs, max_peak_dbfs)
    records: list[dict] = []
    for k, track in enumerate(tracks, start=1):
        item = f"item{k:02d}"
        excerpt, start = loudest_clip(track, sample_rate, channels, clip_s)
        excerpt = _fade(excerpt, sample_rate, fade_ms)
        records += _item_records(writer, item, track, start / sample_rate, excerpt, wrapped, targets)
    return write_manifest(out, records, MANIFEST_COLUMNS)


def _check_generate_args(tracks: list[Path], targets: list[str], systems: Mapping, clip_s: float) -> None:
    """The argument checks of :func:`generate_stimuli` that need no file (ValueError)."""
    if not tracks:
        raise ValueError("no tracks given")
    if not targets:
        raise ValueError("no targets given")
    if not systems:
        raise ValueError("no systems given")
    if "original" in systems:
        raise ValueError("'original' is the unprocessed anchor and is added by the generator; do not pass it")
    for t in targets:
        if not t.replace(" ", "").replace("-", "").isalpha() or t != t.lower():
            raise ValueError(f"target {t!r} must be a lower-case adjective such as 'warm'")
    if clip_s < 1.0:
        raise ValueError("clip_s must be at least 1 s (BS.1770 gating needs several 400 ms blocks)")


_ORIGINAL = StimulusSystem(lambda x, sample_rate, target: x, "unprocessed excerpt", False)


def _item_records(writer: _StimulusWriter, item: str, track: Path, offset_s: float, excerpt: torch.Tensor,
                  systems: Mapping[str, StimulusSystem], targets: list[str]) -> list[dict]:
    """Write one item's stimuli (the original once, each system x target) and return their manifest rows.

    The original is written once and listed under every target (it is rated for each).
    """
    first = writer.write(excerpt, f"original/{item}.wav", item, "original", targets[0], _ORIGINAL, track, offset_s)
    records = [{**first, "target": target} for target in targets]
    batch = excerpt.unsqueeze(0)
    for condition, system in systems.items():
        for target in targets:
            y = _run_system(system, batch, writer.sample_rate, condition, target)
            records.append(writer.write(y[0].detach().float().cpu(), f"{condition}/{target}/{item}.wav", item,
                                        condition, target, system, track, offset_s))
    return records


def _run_system(system: StimulusSystem, batch: torch.Tensor, sample_rate: int, condition: str,
                target: str) -> torch.Tensor:
    """``system.process(batch, sample_rate, target)``, refused (AudioError) unless a tensor of ``batch``'s shape."""
    y = system.process(batch, sample_rate, target)
    if not isinstance(y, torch.Tensor) or tuple(y.shape) != tuple(batch.shape):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise AudioError(
            f"system {condition!r} returned {got} for target {target!r}; "
            f"expected a tensor of shape {tuple(batch.shape)}"
        )
    return y


@dataclass(frozen=True)
class _StimulusWriter:
    """Normalises, checks and saves stimuli under ``out`` (PCM_24 WAV) for :func:`generate_stimuli`."""

    out: Path
    sample_rate: int
    target_lufs: float
    max_peak_dbfs: float

    def write(self, x: torch.Tensor, rel: str, item: str, condition: str, target: str, system: StimulusSystem,
              source: Path, offset_s: float) -> dict:
        """Save ``x`` ([channels, samples]) at ``out/rel`` at the target loudness; returns its manifest row.

        Raises:
            AudioError: NaN/Inf, silence, or a sample peak above ``max_peak_dbfs`` after normalisation.
        """
        check_finite(x, f"{condition} output for {item}/{target}")
        y = normalize_loudness(x, self.sample_rate, self.target_lufs)
        peak_dbfs = _db(float(y.abs().max()))
        if peak_dbfs > self.max_peak_dbfs:
            raise AudioError(
                f"{condition} {item}/{target}: sample peak {peak_dbfs:.1f} dBFS at {self.target_lufs} LUFS exceeds "
                f"{self.max_peak_dbfs} dBFS; lower target_lufs for the whole set (e.g. {self.target_lufs - 3:g})"
            )
        path = self.out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        save_audio(path, y, self.sample_rate, subtype="PCM_24")
        return {
            "item": item, "condition": condition, "target": target, "path": rel,
            "placeholder": int(system.placeholder), "system": system.description, "source": source.name,
            "source_offset_s": f"{offset_s:.3f}",
            "integrated_lufs": f"{integrated_lufs(y, self.sample_rate):.3f}",
            "sample_peak_dbfs": f"{peak_dbfs:.2f}", "sample_rate": self.sample_rate,
            "duration_s": f"{y.shape[-1] / self.sample_rate:.3f}",
        }


# -- systems -----------------------------------------------------------------------------------
def _pedalboard_eq(x: torch.Tensor, sample_rate: int, bands: Sequence[tuple[str, float, float, float]]) -> torch.Tensor:
    """Apply biquads ``(kind, freq_hz, gain_db, q)`` (kind: low_shelf, high_shelf, peak) with pedalboard."""
    import pedalboard

    kinds = {
        "low_shelf": pedalboard.LowShelfFilter,
        "high_shelf": pedalboard.HighShelfFilter,
        "peak": pedalboard.PeakFilter,
    }
    board = pedalboard.Pedalboard([
        kinds[kind](cutoff_frequency_hz=freq_hz, gain_db=gain_db, q=q) for kind, freq_hz, gain_db, q in bands
    ])
    out = []
    for signal in x:  # [channels, samples], pedalboard's own layout
        arr = np.ascontiguousarray(signal.detach().cpu().numpy().astype(np.float32))
        out.append(torch.from_numpy(board(arr, float(sample_rate), reset=True)))
    return torch.stack(out).to(x.dtype)


# Textbook single-move curves (static EQ) and five-band curves in flowEQ's parametrisation
# (low shelf, three peaks, high shelf) per target: placeholders, not the trained models.
_STATIC_CURVES = {
    "warm": [("low_shelf", 250.0, 4.0, 0.707), ("high_shelf", 6000.0, -2.0, 0.707)],
    "bright": [("high_shelf", 4000.0, 5.0, 0.707)],
    "clear": [("peak", 300.0, -3.0, 1.0), ("peak", 3000.0, 3.0, 1.0)],
}
_FIVE_BAND_CURVES = {
    "warm": [("low_shelf", 150.0, 3.0, 0.707), ("peak", 400.0, 2.0, 0.9), ("peak", 2500.0, -1.5, 1.0),
             ("peak", 5000.0, -2.0, 1.0), ("high_shelf", 9000.0, -2.5, 0.707)],
    "bright": [("low_shelf", 120.0, -1.5, 0.707), ("peak", 500.0, -1.0, 1.0), ("peak", 2500.0, 1.5, 1.0),
               ("peak", 6000.0, 2.5, 0.9), ("high_shelf", 10000.0, 4.0, 0.707)],
    "clear": [("low_shelf", 120.0, -1.0, 0.707), ("peak", 350.0, -3.0, 1.2), ("peak", 1800.0, 1.0, 1.0),
              ("peak", 4000.0, 2.5, 1.0), ("high_shelf", 10000.0, 1.0, 0.707)],
}
# Adaptive placeholder: boost a band by how far its share of the input's energy falls below a
# reference share, so that tracks already warm/bright/clear get less. (band_hz, filter, ref_db)
_ADAPTIVE_RULES = {
    "warm": ((20.0, 250.0), ("low_shelf", 250.0, 0.707), -6.0),
    "bright": ((4000.0, 16000.0), ("high_shelf", 4000.0, 0.707), -15.0),
    "clear": ((2000.0, 5000.0), ("peak", 3200.0, 0.9), -14.0),
}
_ADAPTIVE_MIN_DB, _ADAPTIVE_MAX_DB = 1.0, 8.0


def band_share_db(x: torch.Tensor, sample_rate: int, low_hz: float, high_hz: float) -> float:
    """Energy in ``[low_hz, high_hz)`` relative to the total, in dB, of ``[..., samples]`` audio."""
    spec = torch.fft.rfft(x.double(), dim=-1).abs().pow(2).reshape(-1, x.shape[-1] // 2 + 1).sum(0)
    freqs = torch.fft.rfftfreq(x.shape[-1], d=1.0 / sample_rate, dtype=torch.float64)
    band = spec[(freqs >= low_hz) & (freqs < high_hz)].sum()
    return 10.0 * math.log10(max(float(band), 1e-30) / max(float(spec.sum()), 1e-30))


def _check_target(target: str, table: Mapping) -> None:
    if target not in table:
        raise ValueError(f"the placeholder systems know the targets {sorted(table)}, not {target!r}")


def _static(x: torch.Tensor, sample_rate: int, target: str) -> torch.Tensor:
    _check_target(target, _STATIC_CURVES)
    return _pedalboard_eq(x, sample_rate, _STATIC_CURVES[target])


def _five_band(x: torch.Tensor, sample_rate: int, target: str) -> torch.Tensor:
    _check_target(target, _FIVE_BAND_CURVES)
    return _pedalboard_eq(x, sample_rate, _FIVE_BAND_CURVES[target])


def adaptive_gain_db(x: torch.Tensor, sample_rate: int, target: str) -> float:
    """The adaptive placeholder's boost for ``target``: the band's shortfall, clipped to 1..8 dB."""
    _check_target(target, _ADAPTIVE_RULES)
    (lo, hi), _, ref_db = _ADAPTIVE_RULES[target]
    shortfall = ref_db - band_share_db(x, sample_rate, lo, min(hi, 0.49 * sample_rate))
    return float(min(max(shortfall, _ADAPTIVE_MIN_DB), _ADAPTIVE_MAX_DB))


def _adaptive(x: torch.Tensor, sample_rate: int, target: str) -> torch.Tensor:
    gain_db = adaptive_gain_db(x, sample_rate, target)  # checks the target
    _, (kind, freq_hz, q), _ = _ADAPTIVE_RULES[target]
    return _pedalboard_eq(x, sample_rate, [(kind, freq_hz, gain_db, q)])


def placeholder_systems() -> dict[str, StimulusSystem]:
    """Stand-ins for the three processed conditions, made of simple EQ and marked ``placeholder``.

    * ``adaptive_semantic_eq``: one filter whose gain depends on the input (the target band's
      energy share below a reference, 1..8 dB);
    * ``floweq_style``: a fixed five-band curve per target (flowEQ's parametrisation, chosen by
      hand rather than decoded from a trained model);
    * ``static_eq``: a fixed one- or two-filter textbook curve per target.

    Targets: ``warm``, ``bright``, ``clear``.
    """
    return {
        "adaptive_semantic_eq": StimulusSystem(
            _adaptive, "placeholder: one filter, gain from the input's band-energy shortfall (not the model)", True),
        "floweq_style": StimulusSystem(
            _five_band, "placeholder: fixed hand-set five-band curve per target (not a trained decoder)", True),
        "static_eq": StimulusSystem(
            _static, "placeholder: fixed textbook shelf/peak curve per target", True),
    }


def load_systems(spec: str) -> dict[str, StimulusSystem]:
    """Import ``"package.module:function"`` and call it for the ``{condition: system}`` mapping
    (``"placeholder"``: :data:`PLACEHOLDER_SYSTEMS_SPEC`).

    Raises:
        ValueError: a malformed spec, a function that does not return a non-empty mapping, or real
            systems whose semantic model is not built (the message says how to build it).
    """
    if spec == "placeholder":
        spec = PLACEHOLDER_SYSTEMS_SPEC
    if ":" not in spec:
        raise ValueError(f"systems must be given as MODULE:FUNCTION, got {spec!r}")
    module_name, func_name = spec.split(":", 1)
    factory = getattr(importlib.import_module(module_name), func_name, None)
    if not callable(factory):
        raise ValueError(f"{spec}: {func_name} is not a function of {module_name}")
    try:
        systems = factory()
    except FileNotFoundError as exc:
        raise ValueError(f"{spec}: {exc} (or `--systems placeholder` for marked stand-ins, a pipeline check "
                         "only)") from exc
    if not isinstance(systems, Mapping) or not systems:
        raise ValueError(f"{spec} must return a non-empty mapping {{condition: system}}")
    return {name: _as_system(name, s) for name, s in systems.items()}


def generate_study_stimuli(
    profile: str,
    systems: str = REAL_SYSTEMS_SPEC,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
    split: str | None = None,
) -> Path:
    """Generate a stimuli set from the real-music ``split`` for the objective analysis
    (:func:`mastering.evaluation.listening_analysis.objective_proxies`).

    Args:
        profile: a run profile (number of clips, clip length and split from its ``listening``
            section).
        systems: a ``"module:function"`` spec returning ``{condition: system}``
            (:func:`load_systems`; default the real systems, :data:`REAL_SYSTEMS_SPEC`) or
            ``"placeholder"`` (:func:`placeholder_systems`).
        seed: seed of the track choice.
        out_dir: the stimuli folder (default ``<build>/listening_test/<profile>/stimuli``); an
            existing set there is replaced.
        split: the split of the prepared data the tracks come from (default: the profile's; splits
            never trained on).

    Returns:
        The stimuli folder (with ``manifest.csv``).
    """
    sizes = get_profile(profile)["listening"]
    out = Path(out_dir) if out_dir is not None else build_dir() / "listening_test" / profile / "stimuli"
    split = split or sizes["stimuli_split"]
    tracks = split_tracks(sizes["stimuli_items"], split=split, seed=seed, min_duration_s=sizes["stimuli_clip_s"])
    manifest = generate_stimuli(tracks, out, load_systems(systems), clip_s=sizes["stimuli_clip_s"], overwrite=True)
    return manifest.parent
