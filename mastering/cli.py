"""The ``mastering`` command line.

Every command is defined here: ``master`` and ``analyze`` (:mod:`mastering.master`), ``data
prepare|list|add-fma|add-musdb`` and ``demaster`` (:mod:`mastering.data`; ``python -m mastering.data``
is :func:`data_main`). A command imports what it drives when it runs (torch among it), so
``mastering --help`` starts fast. The listening-test app has its own ``python -m listening_test``.

Every exit is clean: a bad argument is one ``error:`` line (exit 2); SIGINT, SIGTERM and SIGHUP
unwind the command like an exception, so its ``finally`` blocks remove temporary files (exit
128 + signal number); a closed stdout (``mastering analyze IN | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from .defaults import (
    HIGHPASS_HZ,
    HIGHPASS_HZ_RANGE,
    HIGHPASS_ORDER,
    INTENSITY_RANGE,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    TARGET_LUFS,
    TARGET_LUFS_RANGE,
    TRUE_PEAK_DBTP,
    TRUE_PEAK_DBTP_RANGE,
)
from .profiles import PROFILES
from .signals import Terminated, termination_handlers


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line: ``PROG: error: MESSAGE (see PROG --help)``."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_master(args: argparse.Namespace) -> int:
    from .master import MasterError, format_report, master_file  # torch: only when a command runs
    from .semantic.style import StyleEQ

    if args.style is None:
        processing = args.intensity if args.processing_intensity is None else args.processing_intensity
    else:
        processing = 1.0 if args.processing_intensity is None else args.processing_intensity
    try:
        post_eq = None if args.style is None else StyleEQ(args.style, args.intensity, args.semantic_model)
        report = master_file(args.input, args.output, checkpoint=args.checkpoint, target_lufs=args.target_lufs,
                             true_peak_dbtp=args.true_peak, intensity=processing, post_eq=post_eq,
                             highpass_hz=args.highpass_hz, overwrite=args.force,
                             progress=not args.quiet and sys.stderr.isatty())
    except MasterError as exc:
        print(f"mastering master: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from .master import analyze_file  # torch: only when a command runs
    from .semantic.style import semantic_scores_file

    result = analyze_file(args.input)  # an AudioError becomes one line in main()
    result["semantic_scores"] = semantic_scores_file(args.input, args.semantic_model)
    print(json.dumps(result, indent=2))
    return 0


def _bounded(lo: float, hi: float, off: float | None = None):
    """argparse type: a finite number in [lo, hi] (or exactly ``off``), else an error naming the range."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value != off and not lo <= value <= hi:
            extra = f" or {off:g} (off)" if off is not None else ""
            raise argparse.ArgumentTypeError(f"must lie in [{lo:g}, {hi:g}]{extra}, got {text}")
        return value
    return parse


def _span(bounds: tuple[float, float]) -> str:
    return f"{bounds[0]:g} to {bounds[1]:g}"


def _register_master(subparsers: argparse._SubParsersAction) -> None:
    """Add ``master`` and ``analyze`` (:mod:`mastering.master`)."""
    p = subparsers.add_parser(
        "master", help="master an audio file with a trained model",
        description="Master IN into OUT (.wav/.flac): the DC offset is removed (and, with --highpass-hz, "
                    f"everything below it: {HIGHPASS_ORDER}th-order Butterworth high-pass, minimum phase; off by "
                    "default); then the model's EQ and compression, loudness to "
                    "--target-lufs and true-peak limiting to --true-peak. OUT is written atomically and an "
                    "existing OUT is refused unless --force is given; IN is never modified.")
    p.add_argument("input", metavar="IN", help="input audio (any rate, mono or stereo)")
    p.add_argument("output", metavar="OUT", help="output .wav or .flac (never IN)")
    p.add_argument("-y", "--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--checkpoint", metavar="CKPT", help="training checkpoint (default: the last one trained)")
    p.add_argument("--target-lufs", type=_bounded(*TARGET_LUFS_RANGE), default=TARGET_LUFS, metavar="LUFS",
                   help=f"integrated loudness of the master, {_span(TARGET_LUFS_RANGE)} (default %(default)g)")
    p.add_argument("--true-peak", type=_bounded(*TRUE_PEAK_DBTP_RANGE), default=TRUE_PEAK_DBTP, metavar="DBTP",
                   help=f"true-peak ceiling in dBTP, {_span(TRUE_PEAK_DBTP_RANGE)} (default %(default)g)")
    p.add_argument("--intensity", type=_bounded(*INTENSITY_RANGE), default=1.0, metavar="X",
                   help=f"with --style: the style's intensity, {_span(INTENSITY_RANGE)} (0 = none, 1 = the "
                        "descriptor); without: the scale of the predicted processing (default %(default)g)")
    p.add_argument("--style", metavar="WORD", help="semantic EQ after mastering: a SAFE-DB descriptor with enough "
                                                  "settings to be offered, e.g. warm or bright (another word is "
                                                  "refused with the list of those offered): the word's mean SAFE-DB "
                                                  "curve, less of it for a track that already has the quality, "
                                                  "never the opposite EQ; more intensity never gives less")
    p.add_argument("--processing-intensity", type=_bounded(*INTENSITY_RANGE), metavar="X",
                   help=f"scale of the predicted processing, {_span(INTENSITY_RANGE)}, when --intensity is the "
                        "style's (default 1)")
    p.add_argument("--highpass-hz", type=_bounded(*HIGHPASS_HZ_RANGE, off=0.0), default=HIGHPASS_HZ, metavar="HZ",
                   help=f"corner of the subsonic high-pass, {_span(HIGHPASS_HZ_RANGE)} Hz, 0 turns it off (default "
                        f"%(default)g: off; {HIGHPASS_ORDER}th-order Butterworth, minimum phase, -3 dB at the corner)")
    p.add_argument("--semantic-model", metavar="DIR", help="semantic EQ bundle (default: the newest built by "
                                                           "`python -m mastering.semantic build`, else the "
                                                           "release in weights/)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_master)
    a = subparsers.add_parser("analyze", help="measure loudness, true peak, LRA, subsonic energy and spectrum of an "
                                              "audio file (JSON)")
    a.add_argument("input", metavar="IN", help="input audio")
    a.add_argument("--semantic-model", metavar="DIR", help="semantic EQ bundle for the semantic scores "
                                                           "(default: the newest built, else the release in "
                                                           "weights/)")
    a.set_defaults(func=_cmd_analyze)


def _cmd_prepare(args: argparse.Namespace) -> int:
    from .data.debian import DataError
    from .data.prepare import prepare

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        prepare(args.profile, progress=not args.no_progress)
    except DataError as exc:
        print(f"mastering data: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .data.manifest import load_manifest

    try:
        df = load_manifest(args.profile, split=args.split)
    except FileNotFoundError as exc:
        print(f"mastering data: error: {exc}", file=sys.stderr)
        return 1
    cols = ["split", "source", "track_id", "duration_s", "loudness_lufs", "license"]
    print(df[cols].to_string(index=False))
    return 0


def _cmd_add_local(args: argparse.Namespace) -> int:
    from .data.sources import cache_local_tracks, fma_tracks, musdb_tracks
    from .profiles import get_profile

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
    from .data.demaster import demaster_file
    from .io import AudioError

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


def _register_data(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data`` and ``demaster`` (:mod:`mastering.data`)."""
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


def data_main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m mastering.data`` (``make data``)."""
    parser = argparse.ArgumentParser(prog="python -m mastering.data", description="Prepare the music sources.")
    add_data_commands(parser.add_subparsers(dest="data_command", metavar="ACTION", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mastering",
        description="Neural perceptual audio mastering and semantic EQ (auto-mastering compendium).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_data(sub)
    _register_master(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .io import AudioError

    with termination_handlers():
        try:
            code = int(args.func(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, inside the try, not at interpreter exit
            return code
        except AudioError as exc:
            print(f"mastering {args.command}: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 128 + signal.SIGINT
        except Terminated as exc:
            print(f"terminated ({exc})", file=sys.stderr)
            return 128 + exc.signum
        except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): nothing more to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 128 + signal.SIGPIPE

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
