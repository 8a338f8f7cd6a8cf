"""``python -m mastering.semantic build --profile smoke|full``: train or reuse the semantic EQ bundle;
``python -m mastering.semantic scores IN``: how much of each offered descriptor (warm, bright, ...) a file
already has."""

from __future__ import annotations

import argparse
import json
import sys

from ..profiles import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mastering.semantic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train (or reuse) the VAE + audio encoder and save the bundle")
    b.add_argument("--profile", choices=sorted(PROFILES), default="smoke")
    b.add_argument("--no-progress", action="store_true")
    s = sub.add_parser("scores", help="semantic scores of an audio file (JSON)")
    s.add_argument("input", metavar="IN")
    s.add_argument("--model", metavar="DIR", help="bundle folder (default: the newest full, else smoke)")
    args = parser.parse_args(argv)
    if args.command == "build":
        from .adaptive import build_semantic_eq

        bundle, folder = build_semantic_eq(args.profile, progress=not args.no_progress)
        ev = bundle.config.get("encoder_evaluation", {})
        offered = bundle.config.get("descriptors", {}).get("offered", {})
        print(f"semantic EQ bundle ({args.profile}) in {folder}: offers "
              f"{', '.join(f'{d} ({n} training settings)' for d, n in offered.items())} of "
              f"{len(bundle.known_descriptors)} descriptors with centroids, "
              f"encoder held-out R2 {ev.get('r2', float('nan')):.2f}")
        return 0
    from ..io import AudioError, load_audio
    from .adaptive import load_semantic_eq, semantic_scores

    try:
        model = load_semantic_eq(args.model)
        audio, sr = load_audio(args.input)
        table = semantic_scores(audio, sr, model)
    except (AudioError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(table.drop(columns="item").to_dict(orient="records"), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
