"""Speed of the product: `mastering master` against matchering on the same 3-minute stereo track.

Both tools master one file into another, side by side in one run, at 44.1 and 48 kHz:

  mastering   ``mastering.master.master_file`` (what ``mastering master IN OUT`` runs after its
              arguments are parsed), with the released weights in ``weights/`` unless
              ``--checkpoint`` is given; 24-bit WAV out
  cli         the same through the command line in a fresh process (``python -m mastering master``),
              so Python and torch start-up are included
  matchering  ``matchering.process`` (Sergree's matchering 2) with a reference of the same
              length and rate; 24-bit WAV out
  matchering_cli  the same in a fresh Python process (its imports included), to set beside cli

The track is real music when the smoke data is prepared: test-split tracks of the held-out album
(Debian's drascula-music) joined to 3 minutes; the reference is another of its tracks. Without
the data both are synthetic (pink noise under a chord progression) and the header says so.
Each time is the median of ``--repeats`` runs after one untimed warm-up per tool and rate, the
tools taking turns (ours, cli, matchering, ours, ...) so that a drift in the machine's speed (a
shared or throttled CPU) slows them alike; the ratio is matchering's time over ours (above 1: we
are faster). Torch uses ``--threads``.

Run:  .venv/bin/python benchmarks/bench_master.py            (3 repeats, a few minutes on 2 cores)
      .venv/bin/python benchmarks/bench_master.py --quick    (1 repeat, no warm-up)
      add --out build/bench_master.json to keep the rows with their provenance
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mastering.data import list_tracks
from mastering.io import load_audio, resample
from mastering.master import master_file, resolve_checkpoint
from mastering.provenance import git_commit
from mastering.weights import default_weights

RATES = (44100, 48000)
SECONDS = 180.0
_MATCHERING_PROCESS = """
import sys
import matchering as mg
mg.log(warning_handler=lambda *_: None, info_handler=lambda *_: None, debug_handler=lambda *_: None)
src, ref, out, tmp = sys.argv[1:5]
mg.process(target=src, reference=ref, results=[mg.pcm24(out)], config=mg.Config(temp_folder=tmp))
"""  # matchering as a user runs it from a script: Python and its imports included, like our cli


def _synthetic(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    white = rng.standard_normal((2, n))
    spectrum = np.fft.rfft(white, axis=-1)
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.shape[-1]), 1))
    pink = np.fft.irfft(spectrum, n=n, axis=-1)
    t = np.arange(n) / sample_rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8, 220.0))
    x = 0.05 * pink / np.abs(pink).max() + 0.1 * chord * (0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t))
    return x.astype(np.float32)


def source_tracks(seconds: float = SECONDS) -> tuple[np.ndarray, np.ndarray, int, str]:
    """``(track, reference, sample_rate, description)``: ``[2, samples]`` float32, 3 minutes each."""
    try:
        tracks = sorted(list_tracks(profile="smoke", split="test", kind="real"), key=lambda t: t.key)
    except FileNotFoundError:
        tracks = []
    if len(tracks) >= 2:
        audio, rate = [], None
        for t in tracks:
            x, rate = load_audio(t.path, channels=2, sample_rate=rate)
            audio.append(x.numpy())
        reference = audio[-1]
        joined = np.concatenate(audio[:-1], axis=-1)
        while joined.shape[-1] < seconds * rate:
            joined = np.concatenate([joined, joined], axis=-1)
        while reference.shape[-1] < seconds * rate:
            reference = np.concatenate([reference, reference], axis=-1)
        n = int(seconds * rate)
        keys = ", ".join(t.key.split("/")[-1] for t in tracks[:-1])
        return (joined[:, :n].astype(np.float32), reference[:, :n].astype(np.float32), int(rate),
                f"real music: drascula-music {keys}; reference {tracks[-1].key.split('/')[-1]}")
    rate = 44100
    return (_synthetic(seconds, rate, 0), _synthetic(seconds, rate, 1), rate,
            "synthetic (smoke data not prepared): pink noise under a chord progression")


def _at_rate(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    return x if rate == target else resample(torch.from_numpy(x)[None], rate, target)[0].numpy()


def _median_seconds(runs: dict, repeats: int, warmup: bool) -> dict[str, float]:
    """Median wall time of each of ``runs`` (name -> callable), the tools taking turns in every
    repeat, so that a machine whose speed drifts during the run slows them alike."""
    if warmup:
        for run in runs.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None,
                        help="model (default: the released weights in weights/, else what `mastering master` would use)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat, no warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    import matchering as mg  # optional heavy extra, needed only here

    torch.set_num_threads(args.threads)
    repeats, warmup = (1, False) if args.quick else (max(1, args.repeats), True)
    release = default_weights() if args.checkpoint is None else None
    if release is not None:  # the product as shipped, whatever training runs lie around here
        checkpoint, source = release[0], f"released weights {release[0].name} (phase {release[1].get('phase')})"
    else:
        checkpoint, source = resolve_checkpoint(args.checkpoint)
    track, reference, rate, description = source_tracks(args.seconds)
    print(f"# bench_master: {args.seconds:g} s stereo, {description}")
    print(f"# model: {source}")
    print(f"# torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, commit {git_commit()}, load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}, {platform.processor() or platform.machine()}")
    rows = []
    mg.log(warning_handler=lambda *_: None, info_handler=lambda *_: None, debug_handler=lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="bench-master-") as tmp:
        tmp = Path(tmp)
        for target_rate in RATES:
            src, ref = tmp / f"in-{target_rate}.wav", tmp / f"ref-{target_rate}.wav"
            sf.write(src, _at_rate(track, rate, target_rate).T, target_rate, subtype="PCM_24")
            sf.write(ref, _at_rate(reference, rate, target_rate).T, target_rate, subtype="PCM_24")
            out = tmp / "out.wav"
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

            def ours():
                master_file(src, out, checkpoint=checkpoint, overwrite=True)

            def cli():
                subprocess.run([sys.executable, "-m", "mastering", "master", str(src), str(out), "--force",
                                "--checkpoint", str(checkpoint)], check=True, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def theirs():
                mg.process(target=str(src), reference=str(ref), results=[mg.pcm24(str(out))],
                           config=mg.Config(temp_folder=str(tmp)))

            def theirs_fresh():
                subprocess.run([sys.executable, "-c", _MATCHERING_PROCESS, str(src), str(ref), str(out), str(tmp)],
                               check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            times = _median_seconds({"mastering": ours, "cli": cli, "matchering": theirs,
                                     "matchering_cli": theirs_fresh}, repeats, warmup)
            row = {"sample_rate": target_rate, "seconds_audio": args.seconds, **{f"{k}_s": v for k, v in times.items()},
                   "speedup_vs_matchering": times["matchering"] / times["mastering"],
                   "cli_speedup_vs_matchering": times["matchering"] / times["cli"],
                   "cli_speedup_vs_matchering_cli": times["matchering_cli"] / times["cli"]}
            rows.append(row)
            print(f"{target_rate} Hz: mastering {times['mastering']:.1f} s, cli {times['cli']:.1f} s, "
                  f"matchering {times['matchering']:.1f} s (fresh process {times['matchering_cli']:.1f} s) -> "
                  f"{row['speedup_vs_matchering']:.2f}x ({row['cli_speedup_vs_matchering']:.2f}x with our start-up, "
                  f"{row['cli_speedup_vs_matchering_cli']:.2f}x with both)", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "rows": rows, "source": description, "model": source, "torch": torch.__version__,
            "threads": args.threads, "repeats": repeats, "commit": git_commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
