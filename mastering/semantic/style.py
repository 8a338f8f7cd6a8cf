"""Semantic EQ on files: the ``--style`` of ``mastering master`` and the scores of ``mastering analyze``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..defaults import INTENSITY_RANGE
from ..master import MasterError, open_input
from ..pipeline import excerpt_starts
from .adaptive import STYLE_METHOD, SemanticEQ, load_semantic_eq, score_from_position, semantic_eq_settings, suggestion
from .axis import band_powers

__all__ = ["StyleEQ", "load_bundle", "semantic_scores_file"]

_RESPONSE_FREQS_HZ = (63.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0)


def load_bundle(semantic_model: str | os.PathLike | None) -> SemanticEQ:
    """The semantic EQ bundle (default: the newest built), with one-line errors as :class:`MasterError`."""
    try:
        return load_semantic_eq(semantic_model)
    except FileNotFoundError as exc:
        raise MasterError(str(exc)) from None
    except (ValueError, RuntimeError, OSError) as exc:
        raise MasterError(f"semantic EQ model: {exc}") from None


class StyleEQ:
    """The input-adaptive semantic EQ for one descriptor, as a ``post_eq`` of
    :func:`mastering.master.master_file`: decided on excerpts of the model's output.

    Args:
        style: a descriptor the bundle offers (:attr:`mastering.semantic.adaptive.SemanticEQ.descriptors`:
            at least :data:`mastering.semantic.descriptors.MIN_DESCRIPTOR_SETTINGS` SAFE-DB settings
            from the training contributors, e.g. "warm", "bright").
        intensity: 0 (no change) to 2; 1 = the descriptor.
        semantic_model: a semantic EQ bundle folder (default: the newest built).

    Raises:
        MasterError: no bundle, a descriptor that is not offered (the message lists those that
            are) or an intensity outside [0, 2].
    """

    def __init__(self, style: str, intensity: float = 1.0, semantic_model: str | os.PathLike | None = None):
        lo, hi = INTENSITY_RANGE
        if not lo <= float(intensity) <= hi:
            raise MasterError(f"style intensity must lie in [{lo:g}, {hi:g}], got {intensity}")
        self.bundle = load_bundle(semantic_model)
        try:
            self.word = self.bundle.offered(style)
        except ValueError as exc:
            raise MasterError(str(exc)) from None
        self.intensity = float(intensity)
        self.excerpt_s = self.bundle.excerpt_s

    @torch.no_grad()
    def decide(self, excerpts: list[np.ndarray], sample_rate: int) -> tuple[Any, dict[str, Any]]:
        """The EQ for audio whose excerpts (``[channels, samples]``) are given, and a report: the
        descriptor's curve (:mod:`mastering.semantic.axis`) at ``intensity`` times the amount read
        from the excerpts' pooled spectrum."""
        freqs = self.bundle.reference_freqs_hz
        powers = [band_powers(x[None].astype(np.float64), sample_rate, freqs)[0]
                  for x in excerpts if np.abs(x).max() > 1e-6]
        if not powers:
            raise MasterError("the processed excerpts are silent; cannot decide a semantic EQ")
        settings = semantic_eq_settings(self.bundle, None, sample_rate, self.word, self.intensity, STYLE_METHOD,
                                        powers=np.mean(powers, axis=0, keepdims=True))
        freqs_out = np.array([f for f in _RESPONSE_FREQS_HZ if f < 0.49 * sample_rate])
        net = settings.response_db(freqs_out, sample_rate)[0]
        info = {"descriptor": self.word, "intensity": self.intensity, "method": STYLE_METHOD,
                "score_before": round(float(score_from_position(settings.position_before[0])), 3),
                "position_before": round(float(settings.position_before[0]), 3),
                "amount": round(float(settings.amount[0]), 3), "gain": round(float(settings.gain[0]), 3),
                "excerpts": len(powers), "model": self.bundle.config.get("profile", "?") + " profile semantic EQ",
                "net_response_db": {f"{f:g}": round(float(v), 2) for f, v in zip(freqs_out, net)}}
        return settings, info


@torch.no_grad()
def semantic_scores_file(path: str | os.PathLike, semantic_model: str | os.PathLike | None = None,
                         max_excerpts: int = 16) -> dict[str, Any]:
    """How much of each offered descriptor (:attr:`mastering.semantic.adaptive.SemanticEQ.descriptors`,
    e.g. warm, bright) a file already has, read on each descriptor's axis from the spectrum of evenly
    spread excerpts (:meth:`mastering.semantic.adaptive.SemanticEQ.axis_positions`: the measure
    ``--style`` adapts to), one excerpt read at a time.

    Returns:
        ``{"available": True, "model": ..., "scores": {descriptor: {"score", "position",
        "suggested_intensity", "suggestion"}}}``, or ``{"available": False, "note": why}`` when no
        semantic model is built.
    """
    try:
        bundle = load_bundle(semantic_model)
    except MasterError as exc:
        return {"available": False, "note": str(exc)}
    freqs = bundle.reference_freqs_hz
    with open_input(path) as src:
        n_ex = int(round(bundle.excerpt_s * src.sample_rate))
        powers = []
        for s in excerpt_starts(src.frames, n_ex, max_excerpts):
            x = src.read(s, min(s + n_ex, src.frames))
            x = x - x.mean(axis=1, keepdims=True)
            if np.abs(x).max() > 1e-6 and x.shape[-1] >= 2048:
                powers.append(band_powers(x[None], src.sample_rate, freqs)[0])
    if not powers:
        return {"available": False, "note": "the file is silent or too short for semantic scores"}
    words = bundle.descriptors
    scores = {}
    for d, pos in zip(words, bundle.axis_positions(np.mean(powers, axis=0), words)[0]):
        score = float(score_from_position(pos))
        text, suggested = suggestion(d, score)
        scores[d] = {"score": round(score, 3), "position": round(float(pos), 3), "suggested_intensity": suggested,
                     "suggestion": text}
    return {"available": True, "model": bundle.config.get("profile", "?") + " profile semantic EQ",
            "measure": "the descriptor's axis, read from the spectrum (0 = typical music, 1 = with the full curve)",
            "excerpts": len(powers), "scores": scores}
