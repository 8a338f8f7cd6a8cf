"""Command line of the data layer.

* ``python -m mastering.data prepare --profile smoke|full`` -- fetch and decode the real-music
  sources, write the manifests, print a summary (``make data``); ``build`` is the same command.
* ``mastering data build|prepare --profile P`` -- the same through the ``mastering`` command.
* ``mastering data list --profile P`` -- the prepared tracks.
* ``mastering data add-fma PATH [--subset small]`` / ``add-musdb PATH`` -- decode a local FMA or
  MUSDB18-HQ copy into the track cache (their own splits are kept).
* ``mastering demaster IN OUT --seed N [--force]`` -- degrade a mastered file of any length with the
  demastering chain (:mod:`mastering.data.demaster`, streamed in bounded memory); writes ``OUT`` and
  the applied parameters to ``OUT.json``, refusing to replace an existing one without ``--force``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..defaults import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from ..profiles import PROFILES

__all__ = ["register", "main", "add_data_commands"]


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .debian import DataError
    from .prepare import prepare

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        prepare(args.profile, progress=not args.no_progress)
    except DataError as exc:
        print(f"mastering data: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .manifest import load_manifest

    try:
        df = load_manifest(args.profile, split=args.split)
    except FileNotFoundError as exc:
        print(f"mastering data: error: {exc}", file=sys.stderr)
        return 1
    cols = ["split", "source", "track_id", "duration_s", "loudness_lufs", "license"]
    print(df[cols].to_string(index=False))
    return 0


def _cmd_add_local(args: argparse.Namespace) -> int:
    from ..profiles import get_profile
    from .sources import cache_local_tracks, fma_tracks, musdb_tracks

    try:
        df = fma_tracks(args.path, subset=args.subset) if args.kind == "fma" else musdb_tracks(args.path)
    except FileNotFoundError as exc:
        print(f"mastering data: error: {exc}", file=sys.stderr)
        return 1
    cached, skipped = cache_local_tracks(df, int(get_profile(args.profile)["sample_rate"]), progress=True)
    print(f"{args.kind}: {len(cached)} tracks cached ({cached['duration_s'].sum() / 3600:.2f} h), "
          f"{len(skipped)} skipped" + "".join(f"\n  skip {p}/{f}: {r}" for p, f, r in skipped))
    return 0


def _cmd_demaster(args: argparse.Namespace) -> int:
    from ..io import AudioError
    from .demaster import demaster_file

    try:
        out, log_path = demaster_file(args.input, args.output, seed=args.seed, sample_rate=args.sample_rate,
                                      force=args.force)
    except AudioError as exc:
        print(f"mastering demaster: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} and {log_path}")
    return 0


def _seed(text: str) -> int:
    """argparse type: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _sample_rate_hz(lo: int, hi: int):
    """argparse type: a whole number of Hz in [lo, hi]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of Hz, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must lie in {lo}-{hi} Hz, got {text}")
        return value
    return parse


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``prepare``/``build``/``list`` to a subparser collection."""
    for name in ("prepare", "build"):
        p = sub.add_parser(name, help="fetch and decode the profile's music sources, write the manifests")
        p.add_argument("--profile", default="smoke", choices=sorted(PROFILES))
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.add_argument("-v", "--verbose", action="store_true", help="log every skipped file")
        p.set_defaults(func=_cmd_prepare)
    p = sub.add_parser("add-fma", help="decode a local FMA copy (fma_small/medium) into the track cache")
    p.add_argument("path", help="folder holding fma_<subset>/ and fma_metadata/")
    p.add_argument("--subset", default="small", choices=["small", "medium", "large", "full"])
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="sets the sample rate")
    p.set_defaults(func=_cmd_add_local, kind="fma")
    p = sub.add_parser("add-musdb", help="decode a local MUSDB18-HQ copy into the track cache")
    p.add_argument("path", help="folder holding train/ and test/")
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES), help="sets the sample rate")
    p.set_defaults(func=_cmd_add_local, kind="musdb")
    p = sub.add_parser("list", help="print the prepared tracks of a profile")
    p.add_argument("--profile", default="smoke", choices=sorted(PROFILES))
    p.add_argument("--split", choices=["train", "valid", "test"])
    p.set_defaults(func=_cmd_list)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the data layer's subcommands to the ``mastering`` command line."""
    data = subparsers.add_parser("data", help="prepare and inspect the datasets")
    add_data_commands(data.add_subparsers(dest="data_command", metavar="ACTION", required=True))
    dm = subparsers.add_parser(
        "demaster", help="degrade a mastered file (demastering chain); writes OUT and OUT.json",
        description="Apply the seeded demastering chain to IN (mono or stereo, any length from a few "
                    "hundredths of a second up: it is streamed in bounded memory) and write OUT (24-bit "
                    "WAV/FLAC) and OUT.json with the parameters actually applied. OUT is written "
                    "atomically; an existing OUT or OUT.json is refused unless --force is given; IN is "
                    "never modified (neither OUT nor OUT.json may be IN).",
    )
    dm.add_argument("input", metavar="IN", help="mastered audio file (WAV, FLAC, OGG, MP3, ...)")
    dm.add_argument("output", metavar="OUT", help="degraded output (.wav or .flac); the record goes to OUT.json")
    dm.add_argument("--seed", type=_seed, required=True, metavar="N", help="seed of the parameter draw (0 or more)")
    dm.add_argument("--sample-rate", type=_sample_rate_hz(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE), default=None,
                    metavar="HZ", help=f"resample to this rate first, {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
                                       "(default: the file's)")
    dm.add_argument("-y", "--force", action="store_true", help="replace OUT and OUT.json if they exist")
    dm.set_defaults(func=_cmd_demaster)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m mastering.data``."""
    parser = argparse.ArgumentParser(prog="python -m mastering.data", description="Prepare the music sources.")
    add_data_commands(parser.add_subparsers(dest="data_command", metavar="ACTION", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)
