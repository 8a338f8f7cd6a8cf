"""Semantic EQ on files: the ``--style`` of ``mastering master`` and the scores of ``mastering analyze``."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from ..defaults import INTENSITY_RANGE
from ..master import MasterError, open_input
from ..pipeline import excerpt_starts
from .adaptive import SemanticEQ, load_semantic_eq, score_from_position, semantic_eq_settings, suggestion

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
        """The EQ settings for audio whose excerpts (``[channels, samples]``) are given, and a report."""
        codes = [self.bundle.encode(torch.from_numpy(x.astype(np.float32))[None], sample_rate)[0]
                 for x in excerpts if np.abs(x).max() > 1e-6]
        if not codes:
            raise MasterError("the processed excerpts are silent; cannot decide a semantic EQ")
        z_audio = np.mean(codes, axis=0, keepdims=True)
        settings = semantic_eq_settings(self.bundle, None, sample_rate, self.word, self.intensity, "adaptive",
                                        z_audio=z_audio)
        position = float(self.bundle.positions(z_audio, [self.word])[0, 0])
        freqs = np.array([f for f in _RESPONSE_FREQS_HZ if f < 0.49 * sample_rate])
        net = settings.response_db(freqs, sample_rate)[0]
        info = {"descriptor": self.word, "intensity": self.intensity, "method": "adaptive",
                "score_before": round(float(score_from_position(position)), 3), "excerpts": len(codes),
                "model": self.bundle.config.get("profile", "?") + " profile semantic EQ",
                "eq_bands": settings.bands(0),
                "net_response_db": {f"{f:g}": round(float(v), 2) for f, v in zip(freqs, net)}}
        return settings, info


@torch.no_grad()
def semantic_scores_file(path: str | os.PathLike, semantic_model: str | os.PathLike | None = None,
                         max_excerpts: int = 16) -> dict[str, Any]:
    """How much of each offered descriptor (:attr:`mastering.semantic.adaptive.SemanticEQ.descriptors`,
    e.g. warm, bright) a file already has, from evenly spread excerpts read one at a time.

    Returns:
        ``{"available": True, "model": ..., "scores": {descriptor: {"score", "suggested_intensity",
        "suggestion"}}}``, or ``{"available": False, "note": why}`` when no semantic model is built.
    """
    try:
        bundle = load_bundle(semantic_model)
    except MasterError as exc:
        return {"available": False, "note": str(exc)}
    with open_input(path) as src:
        n_ex = int(round(bundle.excerpt_s * src.sample_rate))
        codes = []
        for s in excerpt_starts(src.frames, n_ex, max_excerpts):
            x = src.read(s, min(s + n_ex, src.frames))
            x = x - x.mean(axis=1, keepdims=True)
            if np.abs(x).max() > 1e-6 and x.shape[-1] >= bundle.encoder.config["n_fft"]:
                codes.append(bundle.encode(torch.from_numpy(x)[None], src.sample_rate)[0])
    if not codes:
        return {"available": False, "note": "the file is silent or too short for semantic scores"}
    words = bundle.descriptors
    scores = {}
    for d, pos in zip(words, bundle.positions(np.mean(codes, axis=0), words)[0]):
        score = float(score_from_position(pos))
        text, suggested = suggestion(d, score)
        scores[d] = {"score": round(score, 3), "suggested_intensity": suggested, "suggestion": text}
    return {"available": True, "model": bundle.config.get("profile", "?") + " profile semantic EQ",
            "excerpts": len(codes), "scores": scores}
