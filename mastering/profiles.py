"""The two run profiles.

``smoke`` is tiny and runs on a 2-core CPU in minutes (tests and CI); ``full`` is the real run for
the paper (GPU where there is one). Both take the same code path: only these numbers differ.
Notebooks receive ``profile`` as a papermill parameter and read the rest from here, so a figure
or table can always say which profile made it.
"""

from __future__ import annotations

import copy
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
        "debian_packages": ["asc-music", "drascula-music"],
        "max_tracks_per_package": 4,
        "segment_seconds": 3.0,
        "min_track_seconds": 60.0,  # shorter files are sound effects / jingles
        "rendered_tracks": 2,  # music21 corpus pieces rendered with FluidSynth
        "split_fractions": {"train": 0.8, "valid": 0.1, "test": 0.1},
        "source_ratios": {"pink": 0.3, "real": 0.5, "rendered": 0.2},
        "pairs_per_epoch": 64,
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
        "max_tracks_per_package": None,
        "segment_seconds": 5.0,
        "min_track_seconds": 60.0,
        "rendered_tracks": 60,
        "split_fractions": {"train": 0.8, "valid": 0.1, "test": 0.1},
        "source_ratios": {"pink": 0.3, "real": 0.5, "rendered": 0.2},
        "pairs_per_epoch": 20000,
    },
}


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
