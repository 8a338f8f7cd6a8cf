"""The released semantic EQ bundle in ``weights/``: what ``mastering master --style`` needs right after set-up.

``make weights`` (``python -m mastering.semantic release --profile cpu``) builds or reuses the
profile's bundle (:func:`mastering.semantic.adaptive.build_semantic_eq`) and writes a slim copy to
``weights/semantic/`` (VAE, audio encoder, ``semantic_eq.json``) with its model card
``weights/semantic.json`` (profile, commit, data, metrics, one SHA-256 per file), and one card per
network beside it (``weights/semantic/vae.json``, ``encoder.json``: :func:`write_network_cards`).
The copy keeps
only aggregates of the offered descriptors (latent centroids, mean curves, where typical music sits
on each axis): no SAFE-DB row (its licence is unknown), so the medoid baseline is not in it.
:func:`mastering.weights.verified_files` checks it; :func:`mastering.semantic.adaptive.load_semantic_eq`
falls back to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..profiles import PROFILES
from ..provenance import atomic_write_text, git_commit
from ..weights import SEMANTIC_NAME, WeightsError, sha256, verified_files, weights_dir
from .adaptive import SemanticEQ, build_semantic_eq

__all__ = ["SEMANTIC_NAME", "MAX_BYTES", "release_semantic_eq", "write_network_cards", "main"]

MAX_BYTES = 10 * 1024 * 1024
"""The largest release (all files together)."""


def _slim(bundle: SemanticEQ) -> SemanticEQ:
    words = bundle.descriptors
    config = {k: v for k, v in bundle.config.items() if k != "safedb"}
    return dataclasses.replace(
        bundle, centroids=bundle.centroids.loc[words], static_settings={},
        reference_curves={d: bundle.reference_curves[d] for d in words},
        axis_reference={d: bundle.axis_ref(d) for d in words}, config=config)


def release_semantic_eq(bundle: SemanticEQ, source: str | Path, folder: str | Path | None = None,
                        name: str = SEMANTIC_NAME) -> tuple[Path, Path]:
    """Write the slim copy of ``bundle`` (built in run folder ``source``) and its card.

    Returns:
        ``(bundle folder, card path)``.

    Raises:
        ValueError: the bundle has no music reference for its axes, or the release exceeds
            :data:`MAX_BYTES`.
    """
    if bundle.axis_reference is None or not bundle.config.get("music_reference", {}).get("tracks"):
        raise ValueError("the bundle was built without real music (no axis reference); prepare the data first")
    folder = Path(folder or weights_dir())
    target = folder / name
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        written = _slim(bundle).save(Path(tmp) / name)
        files = {f"{name}/{p.name}": sha256(p) for p in sorted(written.iterdir())}
        size = sum(p.stat().st_size for p in written.iterdir())
        if size > MAX_BYTES:
            raise ValueError(f"the semantic release is {size / 2**20:.1f} MiB, above {MAX_BYTES / 2**20:.0f} MiB")
        if target.exists():
            shutil.rmtree(target)
        written.rename(target)
    cfg = bundle.config
    card = {
        "name": name, "kind": "semantic EQ bundle (beta-VAE over SAFE-DB settings, audio encoder, descriptor table)",
        "profile": cfg.get("profile"), "commit": git_commit(), "source_run": Path(source).name,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": files, "bytes": int(size),
        "descriptors": cfg.get("descriptors", {}),
        "axis_reference": {d: bundle.axis_ref(d) for d in bundle.descriptors},
        "data": {"safedb": {**cfg.get("safedb", {}), "note": "SAFE-DB (Stables et al., ISMIR 2014), licence unknown: "
                            "only aggregates of the offered descriptors are released, no row"},
                 "music_reference": {k: v for k, v in cfg.get("music_reference", {}).items() if k != "track_ids"}},
        "metrics": {"vae": cfg.get("vae_metrics", {}), "encoder": cfg.get("encoder_evaluation", {})},
        "use": "mastering master IN OUT --style warm|bright [--intensity 0-2]",
    }  # fmt: skip
    card_path = folder / f"{name}.json"
    atomic_write_text(card_path, json.dumps(card, indent=1, default=str) + "\n")
    write_network_cards(folder, name)
    return target, card_path


def write_network_cards(folder: str | Path | None = None, name: str = SEMANTIC_NAME) -> list[Path]:
    """One model card per network of a released bundle: ``<folder>/<name>/vae.json`` and
    ``encoder.json`` (what it is, data, split, training settings, commit, profile, metrics, SHA-256),
    from the bundle's card, its ``semantic_eq.json`` and the checkpoints' stored configs.

    Raises:
        mastering.weights.WeightsError: the release is missing or differs from its card.
    """
    found = verified_files(name, folder)
    if found is None:
        raise WeightsError(f"no {name} release in {Path(folder or weights_dir())}")
    target, card = found
    config = json.loads((target / "semantic_eq.json").read_text())["config"]
    profile = card.get("profile")
    sizes = PROFILES.get(profile, {})
    vm = config.get("vae_metrics", {})
    desc = card.get("descriptors", {})
    common = {"profile": profile, "commit": card.get("commit"), "date": card.get("date"),
              "part_of": f"{name} (card {name}.json: the bundle that `mastering master --style` loads)",
              "safedb": card.get("data", {}).get("safedb", {})}
    if vm.get("n_train") and vm.get("n_val"):
        split = (f"by contributor: {vm['n_train']} settings of {desc.get('train_contributors', '?')} "
                 f"contributors train; {vm['n_val']} settings of {vm.get('n_val_contributors', '?')} other "
                 "contributors validate (best epoch chosen there)")
    else:
        split = "by contributor (the bundle records no counts: it was not built by build_semantic_eq)"
    parts: dict[str, dict[str, Any]] = {
        "vae": {
            "kind": "beta-VAE over SAFE-DB equaliser settings (13 parameters -> latent code)",
            "source_run": config.get("vae_run"),
            "data": "SAFE-DB equaliser settings (descriptor words normalized; invalid rows dropped)",
            "split": split, "training": sizes.get("vae", {}).get("train"),
            "metrics": vm,
            "use": "the latent space of the descriptors; its decoder gives each descriptor's mean curve",
        },
        "encoder": {
            "kind": "audio -> latent encoder (log-mel front end) into the VAE's space",
            "source_run": config.get("encoder_run"),
            "data": "the VAE's training contributors' settings applied to pink noise (rendered on the fly)",
            "split": split.replace("(best epoch chosen there)", "(the evaluation below is on those)"),
            "training": sizes.get("encoder", {}).get("train"),
            "metrics": config.get("encoder_evaluation", {}),
            "limitations": "trained and evaluated on pink noise: its readings of real music are far less "
                           "reliable (the paper's encoder table); `--style` and `analyze` read the axis "
                           "measure of the spectrum and do not use it",
            "use": "the latent 'adaptive' semantic-EQ arm and notebook 08",
        },
    }
    written = []
    for part, info in parts.items():
        pt = target / f"{part}.pt"
        stored = torch.load(pt, map_location="cpu", weights_only=False)
        out = {"name": f"{name}/{part}", **info, "architecture": stored.get("config"),
               "parameters": int(sum(v.numel() for v in stored["state_dict"].values())),
               "file": pt.name, "bytes": pt.stat().st_size, "sha256": sha256(pt), **common}
        path = target / f"{part}.json"
        atomic_write_text(path, json.dumps(out, indent=1, default=str) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mastering.semantic.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    parser.add_argument("--out", default=None, help="folder (default weights/)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--cards-only", action="store_true",
                        help="only (re)write the per-network cards of the existing release")
    args = parser.parse_args(argv)
    if args.cards_only:
        for path in write_network_cards(args.out):
            print(f"wrote {path}")
        return 0
    bundle, source = build_semantic_eq(args.profile, progress=not args.no_progress)
    target, card = release_semantic_eq(bundle, source, args.out)
    print(f"released the {args.profile} semantic EQ bundle to {target} (card {card}): offers "
          f"{', '.join(bundle.descriptors)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
