"""``python -m mastering.training``: train a Phase 1 model from the command line.

    python -m mastering.training --phase 1b --profile smoke
    python -m mastering.training --phase 1b --profile full --set batch_size=32 --set lr=5e-4
    torchrun --nproc_per_node 4 -m mastering.training --phase 1b --profile full

A run folder named by the configuration's hash (under ``runs/mastering/``) is resumed when it
exists. A finished run becomes the one ``mastering master`` uses by default
(``runs/mastering/latest.json``) unless ``--no-publish`` is given (an experiment beside the
shipped model). The closing lines compare the validation loss with the identity's.
"""

from __future__ import annotations

import argparse
import sys

from ..profiles import PROFILES, key_value
from .config import train_config
from .trainer import train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mastering.training", description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", default="1a", choices=["1a", "1b", "1c"])
    parser.add_argument("--profile", default="smoke", choices=sorted(PROFILES))
    parser.add_argument("--epochs", type=int, help="override the profile's epochs")
    parser.add_argument("--set", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field (JSON values; nested dicts merge)")
    parser.add_argument("--run-dir", help="run folder (default runs/mastering/<name-hash>)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if the run folder has last.pt")
    parser.add_argument("--no-publish", action="store_true",
                        help="do not make this run the default model of `mastering master` (runs/mastering/latest.json)")
    args = parser.parse_args(argv)
    overrides = dict(args.set)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    try:
        config = train_config(args.phase, args.profile, **overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        trainer, history = train(config, run_dir=args.run_dir, resume=not args.no_resume,
                                 publish=not args.no_publish)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if trainer.is_main and history:
        best = min(history, key=lambda r: r["valid_total"])
        ident = trainer.identity or {}
        print(f"run: {trainer.run_dir}")
        print(f"best epoch {best['epoch']}: validation perceptual loss {best['valid_perceptual']:.4f}; identity "
              f"{ident.get('identity_perceptual', float('nan')):.4f}, loudness-matched identity "
              f"{ident.get('identity_matched_perceptual', float('nan')):.4f}")
    trainer.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
