"""Release the default mastering weights: choose a Phase 1 model on validation, write ``weights/``.

``make weights`` (``python -m mastering.evaluation.release --profile cpu``) trains every phase of
the profile that has no run yet, chooses on validation (never the test split) the simplest phase
whose loss is within :data:`EQUIVALENT_VALID_LOSS` of the lowest (:func:`release_choice`), and
writes ``weights/<name>.pt`` (float16 weights, the model's constructor arguments and training
configuration; no optimizer) and ``weights/<name>.json``, its model card. The loader and
the check live in :mod:`mastering.weights`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data import list_tracks
from ..profiles import PROFILES, get_profile
from ..provenance import atomic_torch_save, atomic_write_text, git_commit, safe_torch_load
from ..weights import DEFAULT_NAME, sha256, weights_dir
from .benchmark import phase_checkpoint

__all__ = ["MAX_BYTES", "EQUIVALENT_VALID_LOSS", "SIMPLEST_FIRST", "validation_record", "choose_phase",
           "release_choice", "data_card", "machine_card", "release_weights",
           "build_release", "main"]

MAX_BYTES = 10 * 1024 * 1024
"""The largest release file (10 MiB)."""

EQUIVALENT_VALID_LOSS = 0.002
"""Validation perceptual losses closer than this are not told apart when choosing the release: the
same run (same configuration, code and data) trained on two kinds of CPU ended 0.0018 apart
(Phase 1C of the ``cpu`` profile: 0.6314 on an AMD EPYC Zen 4, 0.6332 on an Intel Xeon), by float
rounding alone."""

SIMPLEST_FIRST = ("1a", "1b", "1c")
"""The phases from the lightest to the heaviest (1A: EQ and dynamics; 1B adds the Wave-U-Net
residual, 1C its gated bands): the release prefers the earlier among equivalent ones, since the
residual is most of a master's time on a CPU."""


def validation_record(checkpoint: str | Path) -> dict[str, Any]:
    """The validation losses of a training checkpoint at its best epoch, beside the identity's.

    Returns:
        ``{"epoch", "valid_perceptual", "valid_stft", "identity_perceptual",
        "identity_matched_perceptual", "epochs_trained"}`` (NaN where the run did not record it).
    """
    state = safe_torch_load(Path(checkpoint))
    history = state.get("history") or []
    if not history:
        raise ValueError(f"{checkpoint}: no validation history (not a finished training checkpoint)")
    best = min(history, key=lambda r: r.get("valid_total", math.inf))
    identity = state.get("identity") or {}
    nan = math.nan
    return {"epoch": int(best.get("epoch", 0)), "epochs_trained": int(state.get("epoch", len(history))),
            "valid_perceptual": float(best.get("valid_perceptual", nan)),
            "valid_stft": float(best.get("valid_stft", nan)),
            "identity_perceptual": float(identity.get("identity_perceptual", nan)),
            "identity_matched_perceptual": float(identity.get("identity_matched_perceptual", nan))}


def choose_phase(profile: str, phases: Sequence[str] = ("1a", "1b", "1c"), train_missing: bool = True,
                 progress: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """The phase with the lowest validation perceptual loss, and every candidate's record.

    All phases of a profile are validated on the same pairs (one seed, one mixture), so their
    losses compare directly.
    """
    rows = []
    for phase in phases:
        path, note = phase_checkpoint(phase, profile, seed=get_profile(profile)["seed"],
                                      train_missing=train_missing, progress=progress)
        rows.append({"phase": phase, "checkpoint": str(path), "run": note, **validation_record(path)})
    return release_choice(rows, tolerance=0.0), rows


def release_choice(candidates: Sequence[dict[str, Any]], tolerance: float = EQUIVALENT_VALID_LOSS) -> str:
    """The phase to ship: the simplest (:data:`SIMPLEST_FIRST`) whose validation perceptual loss is
    within ``tolerance`` of the lowest. With ``tolerance=0`` it is the lowest (:func:`choose_phase`).

    Raises:
        ValueError: no candidate has a finite validation loss.
    """
    finite = [r for r in candidates if math.isfinite(r["valid_perceptual"])]
    if not finite:
        raise ValueError("no candidate has a validation loss")
    lowest = min(r["valid_perceptual"] for r in finite)
    order = {p: i for i, p in enumerate(SIMPLEST_FIRST)}
    equivalent = [r for r in finite if r["valid_perceptual"] <= lowest + tolerance]
    return min(equivalent, key=lambda r: (order.get(r["phase"], len(order)), r["valid_perceptual"]))["phase"]


def data_card(profile: str) -> dict[str, Any]:
    """What the profile trains on: packages, the held-out ones, and tracks and hours per split."""
    params = get_profile(profile)
    splits = {}
    for split in ("train", "valid", "test"):
        tracks = list_tracks(profile=profile, split=split)
        splits[split] = {"tracks": len(tracks), "hours": round(sum(t.duration_s for t in tracks) / 3600.0, 2),
                         "packages": sorted({t.package for t in tracks if t.kind == "real"})}
    return {"debian_packages": list(params["debian_packages"]), "heldout_packages": params["heldout_packages"],
            "rendered_tracks": params["rendered_tracks"], "splits": splits,
            "source_ratios": params["train"]["data"]["ratios"]}


def machine_card() -> dict[str, Any]:
    """The machine the release step runs on: CPU model, the instruction set torch's CPU kernels use,
    cores and torch threads. Float results of training can differ between CPUs (kernels are chosen
    by instruction set at run time), so a card says where its weights were made."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "machine": platform.machine()}


def release_weights(checkpoint: str | Path, card: dict[str, Any], name: str = DEFAULT_NAME,
                    folder: str | Path | None = None) -> tuple[Path, Path]:
    """Write ``<folder>/<name>.pt`` (float16 weights) and ``<folder>/<name>.json`` (``card`` plus the
    file's name, size and SHA-256), both atomically.

    Raises:
        ValueError: not a mastering checkpoint, or a file over :data:`MAX_BYTES`.
    """
    state = safe_torch_load(Path(checkpoint))
    if "model_config" not in state or "model_state" not in state:
        raise ValueError(f"{checkpoint} is not a mastering-model checkpoint")
    weights = {k: (v.half() if v.is_floating_point() else v) for k, v in state["model_state"].items()}
    slim = {"model_config": state["model_config"], "model_state": weights, "config": state.get("config"),
            "format": "release-1"}
    folder = Path(folder or weights_dir())
    path = atomic_torch_save(slim, folder / f"{name}.pt")
    size = path.stat().st_size
    if size > MAX_BYTES:
        path.unlink()
        raise ValueError(f"{path.name} would be {size / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB limit")
    card = {**card, "name": name, "file": path.name, "bytes": size, "dtype": "float16", "sha256": sha256(path)}
    card_path = folder / f"{name}.json"
    atomic_write_text(card_path, json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path, card_path


def build_release(profile: str = "cpu", phases: Sequence[str] = ("1a", "1b", "1c"), name: str = DEFAULT_NAME,
                  folder: str | Path | None = None, train_missing: bool = True,
                  tolerance: float = EQUIVALENT_VALID_LOSS) -> tuple[Path, Path]:
    """Choose the phase on validation (:func:`release_choice`), then :func:`release_weights` with the
    full model card."""
    lowest, candidates = choose_phase(profile, phases, train_missing=train_missing)
    phase = release_choice(candidates, tolerance)
    chosen = next(r for r in candidates if r["phase"] == phase)
    state = safe_torch_load(Path(chosen["checkpoint"]))
    card = {
        "model": "auto-mastering Phase 1 mastering model", "phase": phase, "profile": profile,
        "profile_note": get_profile(profile)["note"], "commit": git_commit(),
        "trained_commit": (state.get("code") or {}).get("commit", "unknown"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "sample_rate": state["model_config"]["sample_rate"],
        "chosen_by": (f"the simplest phase ({' < '.join(SIMPLEST_FIRST)}) whose validation perceptual loss "
                      f"(MR-STFT + A-weighted) is within {tolerance:g} of the lowest (phase {lowest}); "
                      "test split unseen"),
        "lowest_validation_phase": lowest, "equivalent_valid_loss": tolerance,
        "candidates": candidates, "metrics": {"validation": {k: chosen[k] for k in chosen
                                                             if k.startswith(("valid", "identity"))}},
        "data": data_card(profile),
        "machine": {**machine_card(), "note": "where the release step ran; it trains the runs it does not find "
                                              "in the run cache, and reuses the others (made wherever they ran)"},
        "licence": "trained on GPL/free-licensed Debian game soundtracks and public-domain music21 scores; "
                   "see data/manifests/tracks.csv for each track's licence",
        "use": "mastering master IN OUT (used when no --checkpoint is given and no local run exists)",
    }
    return release_weights(chosen["checkpoint"], card, name=name, folder=folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mastering.evaluation.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--phases", default="1a,1b,1c", help="comma-separated candidates (default 1a,1b,1c)")
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--out", default=None, help="folder (default weights/)")
    parser.add_argument("--no-train", action="store_true", help="use existing runs only")
    parser.add_argument("--tolerance", type=float, default=EQUIVALENT_VALID_LOSS,
                        help=f"validation losses this close count as equal; the simplest such phase ships "
                             f"(default {EQUIVALENT_VALID_LOSS:g}; 0: the lowest)")
    args = parser.parse_args(argv)
    try:
        path, card = build_release(args.profile, [p.strip() for p in args.phases.split(",") if p.strip()],
                                   args.name, args.out, train_missing=not args.no_train,
                                   tolerance=args.tolerance)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    info = json.loads(card.read_text())
    print(f"{path} ({info['bytes'] / 2**20:.2f} MiB, phase {info['phase']}, sha256 {info['sha256'][:12]}...)\n{card}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
