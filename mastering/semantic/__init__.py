"""Semantic EQ: SAFE-DB equaliser data, the β-VAE semantic latent space and an audio encoder into it.

* :mod:`mastering.semantic.safedb`: load and clean the SAFE equaliser data, normalize descriptors,
  convert settings to biquad bands (:mod:`mastering.dsp.eq`) and to dasp-pytorch's layout.
* :mod:`mastering.semantic.vae`: the flowEQ-style β-VAE over SAFE settings, descriptor embeddings
  and reconstruction error in dB.
* :mod:`mastering.semantic.encoder`: an audio encoder (log-mel CNN or transformer) trained on
  pink noise processed by SAFE settings to predict their latent codes.
* :mod:`mastering.semantic.report`: the paper figures and tables of the semantic latent.
"""

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
