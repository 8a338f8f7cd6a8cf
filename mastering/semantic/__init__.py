"""Semantic EQ: SAFE-DB equaliser data, the β-VAE semantic latent space and an audio encoder into it.

Modules: ``safedb`` (the SAFE data), ``datasets`` (audio processed by SAFE settings), ``vae`` (the
latent space), ``encoder`` (audio to latent), ``axis`` (the descriptor's curve at an amount read from
the audio's spectrum: what ``--style`` applies), ``adaptive`` (the input-adaptive semantic EQ, its
baselines and the trained bundle: ``build_semantic_eq`` / ``load_semantic_eq``, ``python -m
mastering.semantic build``), ``release`` (the bundle released in ``weights/``), ``style``
(``mastering master --style``, ``mastering analyze``'s scores), ``evaluate`` (objective evaluation on real music), ``e2e`` and ``refine`` (end-to-end
stage, per-file refinement), ``clap`` and ``ablation`` (the CLAP encoder ablation); reports:
``report``, ``report_e2e``, ``report_clap``.
"""

from .adaptive import (
    EQSettings,
    SemanticEQ,
    adaptive_semantic_eq,
    axis_semantic_eq,
    build_semantic_eq,
    floweq_eq,
    load_semantic_eq,
    semantic_scores,
    static_eq,
)
from .axis import AxisEQ, axis_measure, warmth_measures
from .datasets import SafeEQPairs
from .safedb import (
    PARAM_NAMES,
    PARAM_RANGES,
    SHELF_Q,
    denormalize_params,
    descriptor_counts,
    load_safedb,
    normalize_descriptor,
    normalize_params,
    params_array,
    safe_response_db,
    safe_to_bands,
    safe_to_dasp,
)

__all__ = [
    "EQSettings",
    "SemanticEQ",
    "adaptive_semantic_eq",
    "axis_semantic_eq",
    "AxisEQ",
    "axis_measure",
    "warmth_measures",
    "build_semantic_eq",
    "floweq_eq",
    "load_semantic_eq",
    "semantic_scores",
    "static_eq",
    "SafeEQPairs",
    "PARAM_NAMES",
    "PARAM_RANGES",
    "SHELF_Q",
    "denormalize_params",
    "descriptor_counts",
    "load_safedb",
    "normalize_descriptor",
    "normalize_params",
    "params_array",
    "safe_response_db",
    "safe_to_bands",
    "safe_to_dasp",
]
