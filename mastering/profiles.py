"""The run profiles: every size that depends on the profile, in one registry.

``smoke`` is tiny and runs on a 2-core CPU in minutes (tests and CI); ``cpu`` gives the paper's
numbers on a 2-core CPU in hours (all the real music, a narrow model); ``full`` is the design's
recipe (GPU where there is one). Both take the same code path: only these numbers differ.
Notebooks receive ``profile`` as a papermill parameter and read the rest from here, so a figure
or table can always say which profile made it.

Each profile is one dict: the data and notebook sizes at its top level, then one section per
consumer (:data:`SECTIONS`). Every profile has the same keys, recursively, except inside the
override dicts of :data:`OVERRIDE_PATHS`; profiles run from the smallest to the largest. A new
profile is one more entry here. :func:`key_value` reads the ``KEY=VALUE`` overrides of the command lines.
"""

from __future__ import annotations

import argparse
import copy
import json
from typing import Any

PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {
        "sample_rate": 44100,
        "seed": 0,
        "device": "cpu",
        # 01: literature demos
        "eq_fit_steps": 100,
        "eq_fit_seconds": 0.5,
        "unet_demo_steps": 80,
        "loudness_max_tracks": 4,
        # data
        "debian_packages": ["asc-music", "drascula-music", "fb-music-high"],
        # whole packages (games, albums) held out: no album on two sides; the rest trains
        "heldout_packages": {"valid": ["fb-music-high"], "test": ["drascula-music"]},
        "max_tracks_per_package": 4,
        "segment_seconds": 3.0,
        "min_track_seconds": 60.0,  # shorter files are sound effects / jingles
        "rendered_tracks": 2,  # music21 corpus pieces rendered with FluidSynth
        "split_fractions": {"train": 0.8, "valid": 0.1, "test": 0.1},
        "source_ratios": {"pink": 0.3, "real": 0.5, "rendered": 0.2},
        "pairs_per_epoch": 64,
        # what every table caption and figure footer says about the profile
        "note": "smoke profile: a tiny CPU run, not the paper's numbers",
        # Phase 1 training (mastering.training.config.train_config; other fields: TrainConfig's
        # defaults); ``model`` overrides the design's widths (here a narrow model)
        "train": {
            "device": "cpu",
            "segment_seconds": 1.5,
            "batch_size": 8,
            "epochs": 4,
            "lr": 2e-3,
            "lr_patience": 1,
            "model": {
                "latent_dim": 64,
                "encoder": {"stem_channels": 32, "block_channels": [32, 48, 64, 64]},
                "decoder_hidden": 64,
                "residual_channels": [8, 16, 24],
                "dynamics_hidden": 32,
            },
            "data": {"ratios": {"pink": 0.2, "real": 0.6, "rendered": 0.2}, "train_items": 96, "valid_items": 16,
                     "cache": True, "num_workers": 0},
        },
        # the thesis baseline (mastering.models.thesis, trained by mastering.training.thesis): MelUNetLSTM
        # arguments, ThesisLoss weights, overrides of Phase 1B's train_config (empty: Phase 1B's budget)
        "thesis": {
            "model": {"n_fft": 1024, "hop": 256, "n_mels": 48, "unet_channels": [8, 16], "lstm_hidden": 32,
                      "max_gain_db": 12.0, "max_global_gain_db": 24.0, "max_tilt_db": 3.0, "griffin_lim_iters": 8},
            "loss": {"w_log_mag": 1.0, "w_sc": 1.0},
            "train": {},
        },
        # 07: the semantic VAE (train_vae's arguments; the latent sizes of the reconstruction
        # table; descriptors with fewer examples are left off the map)
        "vae": {
            "train": {
                "latent_dim": 2, "hidden_sizes": [64, 64], "beta": 0.02, "spectral_weight": 0.01,
                "epochs": 150, "batch_size": 256, "lr": 1e-2, "patience": 30, "val_fraction": 0.2,
                "seed": 0,
            },
            "latent_dims": [2],
            "min_count": 5,
        },
        # 08: the audio encoder (AudioLatentEncoder arguments, train_encoder settings)
        "encoder": {
            "model": {"arch": "cnn", "sample_rate": 44100, "n_fft": 2048, "hop_length": 1024, "n_mels": 48,
                      "width": 16},
            "train": {"loss": "mse", "steps": 200, "batch_size": 16, "lr": 2e-3, "segment_seconds": 0.75, "seed": 0},
        },
        # 08-11: held-out music excerpts for the semantic EQ, bootstrap resamples, the encoder's
        # real-music pools
        "semantic_eval": {"clip_seconds": 6.0, "clips_per_track": 4, "max_tracks": None, "n_boot": 200,
                          "pool_seconds": 3.0, "pool_clips_per_track": 8},
        # 10: end-to-end semantic EQ training, evaluation and refinement
        "e2e": {
            "train": {"steps": 16, "batch_size": 4, "segment_seconds": 0.5, "lr_encoder": 3e-4, "lr_head": 1e-2,
                      "trainable": ["encoder", "head"], "intensity_range": [0.25, 1.5],
                      "weights": {"prior": 0.01, "loudness": 0.001, "cap": 0.01}, "cap_db": 6.0, "hidden": 32,
                      "seed": 0},
            "eval": {"intensities": [0.0, 0.5, 1.0, 1.5], "clip_seconds": 2.0, "clips_per_track": 3},
            "refine": {"steps": [0, 10, 50, 200], "lr": 0.05, "clips_per_track": 1, "clip_seconds": 0.75,
                       "descriptor": "warm", "intensity": 1.0},
        },
        # 11: the CLAP ablation (held-out settings, None: all; the CLAP projection's training examples
        # and optimisation; the embedding batch)
        "ablation": {"max_eval": 16, "n_train_examples": 32, "steps": 300, "batch_size": 16, "lr": 2e-3,
                     "hidden": 64, "embed_batch_size": 8},
        # 06: test tracks (None: all) and their length (None: whole), bootstrap resamples, static EQ
        # pairs, matchering's reference length (same-album and oracle), latency runs, the ceiling,
        # whether a missing Phase 1 run is trained; excerpts of max_seconds per test track (evenly
        # spaced, each its own pair; a whole track is one) and the degradation chains evaluated
        # ("demaster": training's; "simple": simple_degrade; the first is load_test_pairs' default).
        # The U-Net+LSTM baseline always trains on Phase 1B's pairs and budget (the ``thesis`` section)
        "evaluation": {"max_tracks": 2, "max_seconds": 8.0, "kind": "real", "n_boot": 200, "static_eq_items": 16,
                       "reference_seconds": 20.0, "latency_seconds": 5.0, "latency_repeats": 1,
                       "latency_warmup": False, "true_peak_dbtp": -1.0, "train_missing": True,
                       "excerpts_per_track": 1,
                       "chains": ["demaster"]},
        # 12: the power analysis grid and the objective stimuli set
        "listening": {"power_grid": [6, 12, 24], "power_sims": 40, "power_effect_d": 0.5,
                      "stimuli_items": 2, "stimuli_clip_s": 5.0, "stimuli_split": "test"},
    },
    "cpu": {
        # the paper's numbers on a 2-core CPU: all the real music and rendered pieces (as ``full``),
        # a narrow model with the spectral front end, pairs made once to disk, a CPU-sized budget
        "sample_rate": 44100,
        "seed": 0,
        "device": "cpu",
        "eq_fit_steps": 300,
        "eq_fit_seconds": 1.0,
        "unet_demo_steps": 200,
        "loudness_max_tracks": 24,
        "debian_packages": [
            "wesnoth-1.16-music",
            "fb-music-high",
            "asc-music",
            "planetblupi-music-ogg",
            "xblast-tnt-musics",
            "drascula-music",
            "ufoai-music",
        ],
        "heldout_packages": {"valid": ["asc-music", "fb-music-high"], "test": ["drascula-music"]},
        "max_tracks_per_package": None,
        "segment_seconds": 5.0,
        "min_track_seconds": 60.0,
        "rendered_tracks": 60,
        "split_fractions": {"train": 0.8, "valid": 0.1, "test": 0.1},
        "source_ratios": {"pink": 0.1, "real": 0.7, "rendered": 0.2},
        "pairs_per_epoch": 1024,
        "note": "cpu profile: all the real music on a 2-core CPU",
        "train": {
            "device": "cpu",
            "segment_seconds": 1.5,
            "batch_size": 8,
            "epochs": 6,
            "lr": 2e-3,
            "lr_patience": 1,
            "model": {
                "latent_dim": 64,
                "encoder": {"stem_channels": 32, "block_channels": [32, 48, 64, 64], "spectral_bands": 40},
                "decoder_hidden": 64,
                "residual_channels": [8, 16, 24],
                "dynamics_hidden": 32,
            },
            "data": {"ratios": {"pink": 0.1, "real": 0.7, "rendered": 0.2}, "train_items": 1024, "valid_items": 128,
                     "cache": "disk", "num_workers": 2},
        },
        "thesis": {
            "model": {"n_fft": 1024, "hop": 256, "n_mels": 64, "unet_channels": [8, 16, 32], "lstm_hidden": 64,
                      "max_gain_db": 12.0, "max_global_gain_db": 24.0, "max_tilt_db": 3.0, "griffin_lim_iters": 32},
            "loss": {"w_log_mag": 1.0, "w_sc": 1.0},
            "train": {},
        },
        "vae": {
            "train": {
                "latent_dim": 2, "hidden_sizes": [128, 128], "beta": 0.02, "spectral_weight": 0.01,
                "epochs": 1000, "batch_size": 128, "lr": 3e-3, "patience": 100, "val_fraction": 0.2,
                "seed": 0,
            },
            "latent_dims": [1, 2, 3, 8],
            "min_count": 5,
        },
        "encoder": {
            "model": {"arch": "cnn", "sample_rate": 44100, "n_fft": 2048, "hop_length": 1024, "n_mels": 64,
                      "width": 24},
            "train": {"loss": "mse", "steps": 2000, "batch_size": 32, "lr": 1e-3, "segment_seconds": 1.5, "seed": 0},
        },
        "semantic_eval": {"clip_seconds": 6.0, "clips_per_track": 4, "max_tracks": None, "n_boot": 1000,
                          "pool_seconds": 3.0, "pool_clips_per_track": 8},
        "e2e": {
            "train": {"steps": 200, "batch_size": 8, "segment_seconds": 1.0, "lr_encoder": 1e-4, "lr_head": 3e-3,
                      "trainable": ["encoder", "head"], "intensity_range": [0.25, 1.5],
                      "weights": {"prior": 0.01, "loudness": 0.001, "cap": 0.01}, "cap_db": 6.0, "hidden": 64,
                      "seed": 0},
            "eval": {"intensities": [0.0, 0.5, 1.0, 1.5], "clip_seconds": 4.0, "clips_per_track": 4},
            "refine": {"steps": [0, 10, 50, 200], "lr": 0.05, "clips_per_track": 1, "clip_seconds": 2.0,
                       "descriptor": "warm", "intensity": 1.0},
        },
        "ablation": {"max_eval": 200, "n_train_examples": 500, "steps": 600, "batch_size": 32, "lr": 2e-3,
                     "hidden": 64, "embed_batch_size": 16},
        # every test track, 30 s each
        "evaluation": {"max_tracks": None, "max_seconds": 30.0, "kind": "real", "n_boot": 2000,
                       "static_eq_items": 256, "reference_seconds": 30.0, "latency_seconds": 5.0,
                       "latency_repeats": 3, "latency_warmup": True, "true_peak_dbtp": -1.0, "train_missing": True,
                       "excerpts_per_track": 3, "chains": ["demaster", "simple"]},
        "listening": {"power_grid": [8, 16, 24, 32], "power_sims": 200, "power_effect_d": 0.5,
                      "stimuli_items": 6, "stimuli_clip_s": 8.0, "stimuli_split": "test"},
    },
    "full": {
        "sample_rate": 44100,
        "seed": 0,
        "device": "auto",
        "eq_fit_steps": 1500,
        "eq_fit_seconds": 5.0,
        "unet_demo_steps": 2000,
        "loudness_max_tracks": 200,
        "debian_packages": [
            "wesnoth-1.16-music",
            "fb-music-high",
            "asc-music",
            "planetblupi-music-ogg",
            "xblast-tnt-musics",
            "drascula-music",
            "ufoai-music",
        ],
        "heldout_packages": {"valid": ["asc-music", "fb-music-high"], "test": ["drascula-music"]},
        "max_tracks_per_package": None,
        "segment_seconds": 5.0,
        "min_track_seconds": 60.0,
        "rendered_tracks": 60,
        "split_fractions": {"train": 0.8, "valid": 0.1, "test": 0.1},
        "source_ratios": {"pink": 0.3, "real": 0.5, "rendered": 0.2},
        "pairs_per_epoch": 20000,
        "note": "full profile",
        "train": {
            "device": "auto",
            "segment_seconds": 5.0,
            "batch_size": 16,
            "epochs": 100,
            "lr": 1e-3,
            "lr_patience": 5,
            "model": {},  # the design's widths
            "data": {"ratios": {"pink": 0.3, "real": 0.5, "rendered": 0.2}, "train_items": 4000, "valid_items": 400,
                     "cache": False, "num_workers": 8},
        },
        "thesis": {
            "model": {"n_fft": 2048, "hop": 512, "n_mels": 128, "unet_channels": [16, 32, 64, 128, 256],
                      "lstm_hidden": 256, "max_gain_db": 12.0, "max_global_gain_db": 24.0, "max_tilt_db": 3.0,
                      "griffin_lim_iters": 64},
            "loss": {"w_log_mag": 1.0, "w_sc": 1.0},
            "train": {},
        },
        "vae": {
            "train": {
                "latent_dim": 2, "hidden_sizes": [128, 128], "beta": 0.02, "spectral_weight": 0.01,
                "epochs": 3000, "batch_size": 64, "lr": 1e-3, "patience": 300, "val_fraction": 0.2,
                "seed": 0,
            },
            "latent_dims": [1, 2, 3, 8, 16],
            "min_count": 5,
        },
        "encoder": {
            "model": {"arch": "cnn", "sample_rate": 44100, "n_fft": 2048, "hop_length": 512, "n_mels": 64, "width": 32},
            "train": {"loss": "mse", "steps": 8000, "batch_size": 64, "lr": 1e-3, "segment_seconds": 2.0, "seed": 0},
        },
        "semantic_eval": {"clip_seconds": 10.0, "clips_per_track": 8, "max_tracks": 200, "n_boot": 2000,
                          "pool_seconds": 4.0, "pool_clips_per_track": 16},
        "e2e": {
            "train": {"steps": 1000, "batch_size": 8, "segment_seconds": 1.5, "lr_encoder": 1e-4, "lr_head": 1e-3,
                      "trainable": ["encoder", "head"], "intensity_range": [0.25, 1.5],
                      "weights": {"prior": 0.01, "loudness": 0.001, "cap": 0.01}, "cap_db": 6.0, "hidden": 64,
                      "seed": 0},
            "eval": {"intensities": [0.0, 0.25, 0.5, 0.75, 1.0, 1.5], "clip_seconds": 10.0, "clips_per_track": 8},
            "refine": {"steps": [0, 10, 50, 200], "lr": 0.05, "clips_per_track": 2, "clip_seconds": 3.0,
                       "descriptor": "warm", "intensity": 1.0},
        },
        "ablation": {"max_eval": None, "n_train_examples": 4000, "steps": 3000, "batch_size": 64, "lr": 1e-3,
                     "hidden": 64, "embed_batch_size": 32},
        "evaluation": {"max_tracks": None, "max_seconds": None, "kind": "real", "n_boot": 10000,
                       "static_eq_items": 2000, "reference_seconds": None, "latency_seconds": 5.0,
                       "latency_repeats": 5, "latency_warmup": True, "true_peak_dbtp": -1.0, "train_missing": True,
                       "excerpts_per_track": 4, "chains": ["demaster", "simple"]},
        # test+valid: 10 tracks the systems never saw
        "listening": {"power_grid": [8, 16, 24, 32, 40, 48], "power_sims": 500, "power_effect_d": 0.5,
                      "stimuli_items": 10, "stimuli_clip_s": 8.0, "stimuli_split": "test+valid"},
    },
}  # fmt: skip

SECTIONS = ("train", "thesis", "vae", "encoder", "semantic_eval", "e2e", "ablation", "evaluation", "listening")
"""The consumers' sections of every profile."""

OVERRIDE_PATHS = (("train", "model"), ("thesis", "train"))
"""Override dicts (or ``None``) whose keys may differ between profiles: only what a profile changes."""


def get_profile(name: str, **overrides: Any) -> dict[str, Any]:
    """Return a copy of the named profile's parameters, with ``overrides`` applied.

    Raises:
        ValueError: for an unknown profile name or an override of a key the profile lacks.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    params = copy.deepcopy(PROFILES[name])
    unknown = set(overrides) - set(params)
    if unknown:
        raise ValueError(f"profile {name!r} has no parameter(s) {sorted(unknown)}")
    params.update(overrides)
    params["profile"] = name
    return params


def key_value(text: str) -> tuple[str, Any]:
    """argparse type for ``KEY=VALUE`` overrides: the value is read as JSON when it parses, else kept as text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value
