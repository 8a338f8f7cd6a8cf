"""The ``mastering`` command line.

``master`` and ``analyze`` (:mod:`mastering.master`) are defined here; the data commands register
through :func:`mastering.data.cli.register`. Nothing here imports torch until a command runs, so
``mastering --help`` starts fast. The listening-test app has its own ``python -m listening_test``.

Every exit is clean: a bad argument is one ``error:`` line (exit 2); SIGINT, SIGTERM and SIGHUP
unwind the command like an exception, so its ``finally`` blocks remove temporary files (exit
128 + signal number); a closed stdout (``mastering analyze IN | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading

from .data import cli as data_cli
from .defaults import (HIGHPASS_HZ, HIGHPASS_HZ_RANGE, HIGHPASS_ORDER, INTENSITY_RANGE, TARGET_LUFS,
                       TARGET_LUFS_RANGE, TRUE_PEAK_DBTP, TRUE_PEAK_DBTP_RANGE)



class Terminated(BaseException):
    """Raised in the main thread by SIGTERM or SIGHUP so that ``finally`` blocks run (like SIGINT)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated(signum)


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
        description="Master IN into OUT (.wav/.flac): the DC offset is removed and everything below "
                    f"--highpass-hz (default {HIGHPASS_HZ:g} Hz; {HIGHPASS_ORDER}th-order Butterworth high-pass, "
                    "minimum phase) filtered out; then the model's EQ and compression, loudness to "
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
    p.add_argument("--style", metavar="WORD", help="semantic EQ descriptor after mastering, e.g. warm, bright, clear "
                                                  "(input-adaptive: a track that is already warm gets less)")
    p.add_argument("--processing-intensity", type=_bounded(*INTENSITY_RANGE), metavar="X",
                   help=f"scale of the predicted processing, {_span(INTENSITY_RANGE)}, when --intensity is the "
                        "style's (default 1)")
    p.add_argument("--highpass-hz", type=_bounded(*HIGHPASS_HZ_RANGE, off=0.0), default=HIGHPASS_HZ, metavar="HZ",
                   help=f"corner of the subsonic high-pass, {_span(HIGHPASS_HZ_RANGE)} Hz, 0 turns it off (default "
                        f"%(default)g; {HIGHPASS_ORDER}th-order Butterworth, minimum phase, -3 dB at the corner)")
    p.add_argument("--semantic-model", metavar="DIR", help="semantic EQ bundle (default: the newest built by "
                                                           "`python -m mastering.semantic build`)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_master)
    a = subparsers.add_parser("analyze", help="measure loudness, true peak, LRA, subsonic energy and spectrum of an "
                                              "audio file (JSON)")
    a.add_argument("input", metavar="IN", help="input audio")
    a.add_argument("--semantic-model", metavar="DIR", help="semantic EQ bundle for the semantic scores "
                                                           "(default: the newest built)")
    a.set_defaults(func=_cmd_analyze)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mastering",
        description="Neural perceptual audio mastering and semantic EQ (auto-mastering compendium).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    data_cli.register(sub)
    _register_master(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from .io import AudioError

    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers can only be set there
        previous = {s: signal.signal(s, _raise_terminated) for s in (signal.SIGTERM, signal.SIGHUP)}
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
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
