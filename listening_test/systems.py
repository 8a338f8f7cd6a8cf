"""The systems under test of the listening test, made by the semantic EQ of :mod:`mastering.semantic`.

``python -m listening_test stimuli --systems listening_test.systems:stimulus_systems`` (what
``make listening-test-stimuli`` and notebook 12 use) processes every clip with the three methods
of :mod:`mastering.semantic.adaptive`, one per processed condition of the design
(:data:`mastering.evaluation.listening_design.CONDITIONS`). The stand-ins for when no semantic
model is at hand are :func:`listening_test.stimuli.placeholder_systems`.
"""

from __future__ import annotations

import torch

from mastering.semantic.adaptive import SemanticEQ, load_semantic_eq, semantic_eq_settings

from .stimuli import StimulusSystem

__all__ = ["stimulus_systems"]

#: ``{condition: (method of mastering.semantic.adaptive, description)}``.
_METHODS = {"adaptive_semantic_eq": ("adaptive", "input-adaptive semantic EQ (VAE + audio encoder)"),
            "floweq_style": ("floweq", "flowEQ-style: decoded descriptor centroid"),
            "static_eq": ("static", "static EQ: the descriptor's medoid SAFE setting")}


def stimulus_systems(model: SemanticEQ | None = None, intensity: float = 1.0) -> dict[str, StimulusSystem]:
    """The listening test's three processed conditions made by the real systems
    (``listening_test.stimuli.load_systems("listening_test.systems:stimulus_systems")``).

    Args:
        model: the semantic EQ bundle (default: the newest local one,
            :func:`mastering.semantic.adaptive.load_semantic_eq` with ``local_only``; the released
            bundle lacks the research descriptors and the medoid baseline).
        intensity: the intensity every method is asked for (1: the descriptor).
    """
    model = load_semantic_eq(local_only=True) if model is None else model
    run = model.config.get("profile", "?")

    def make(method: str):
        def process(x: torch.Tensor, sample_rate: int, target: str) -> torch.Tensor:
            settings = semantic_eq_settings(model, x, sample_rate, target, intensity, method)
            return settings.apply(x, sample_rate)

        return process

    return {cond: StimulusSystem(make(m), f"{text}, intensity {intensity:g}, {run} profile", placeholder=False)
            for cond, (m, text) in _METHODS.items()}
