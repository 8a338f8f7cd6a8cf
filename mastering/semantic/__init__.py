"""Semantic EQ: SAFE-DB equaliser data, the β-VAE semantic latent space and an audio encoder into it.

* :mod:`mastering.semantic.safedb`: load and clean the SAFE equaliser data, normalize descriptors,
  convert settings to biquad bands (:mod:`mastering.dsp.eq`) and to dasp-pytorch's layout.
* :mod:`mastering.semantic.datasets`: ``SafeEQPairs``, pink noise or music processed by SAFE settings.
* :mod:`mastering.semantic.vae`: the flowEQ-style β-VAE over SAFE settings, descriptor embeddings
  and reconstruction error in dB.
* :mod:`mastering.semantic.encoder`: an audio encoder (log-mel CNN or transformer) trained on
  pink noise processed by SAFE settings to predict their latent codes.
* :mod:`mastering.semantic.adaptive`: input-adaptive semantic EQ (``adaptive_semantic_eq``), the
  static and flowEQ-style baselines, ``semantic_scores``, and the trained bundle
  (``build_semantic_eq`` / ``load_semantic_eq``; ``python -m mastering.semantic build``).
* :mod:`mastering.semantic.evaluate`: the objective evaluation on held-out real music.
* :mod:`mastering.semantic.report`: the paper figures and tables of notebooks 07-09.
* :mod:`mastering.semantic.e2e`: the semantic-consistency end-to-end stage (training through a
  differentiable EQ, dasp-pytorch or the exact IIR cascade, judged by a frozen encoder);
  :mod:`mastering.semantic.refine`: per-file inference-time refinement; report: ``report_e2e``
  (notebook 10).
* :mod:`mastering.semantic.clap`: the frozen LAION-CLAP HTS-AT audio branch built offline with a
  trainable projection; :mod:`mastering.semantic.ablation`: the encoder ablation (notebook 11,
  report: ``report_clap``).
"""

from .adaptive import (
    EQSettings,
    SemanticEQ,
    adaptive_semantic_eq,
    build_semantic_eq,
    floweq_eq,
    load_semantic_eq,
    semantic_scores,
    static_eq,
)
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
