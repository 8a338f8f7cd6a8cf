"""Speed of the MR-STFT as a metric (``mastering.evaluation.metrics.EvaluationMRSTFT``) against
auraloss's ``MultiResolutionSTFTLoss`` in the same configuration (FFT 2048/1024/512/256, hop FFT/4,
Hann), measured in the same run, on the CPU.

``EvaluationMRSTFT`` is the project's loss without the phase spectrum auraloss computes and
discards when the phase weight is 0, and with the reference's spectra kept for many estimates; the
values agree (``tests/evaluation/test_metrics.py``). Cases:

  evaluation excerpt     one 30 s stereo estimate against its reference, forward
  one reference, 5 sys   five estimates against one reference (as notebook 06 compares its
                         systems): the reference transformed once, then five comparisons
  training batch         the ``cpu`` profile's Phase 1B batch, forward + backward: about 1.1x
                         on 2 cores, why training keeps the plain loss (a change to the training
                         code's imports makes every cached training run stale)

Times are medians of several repeats after one warm-up; the ratio is auraloss's time over ours.

Run:  .venv/bin/python benchmarks/bench_losses.py            (5 repeats)
      .venv/bin/python benchmarks/bench_losses.py --quick    (2 repeats)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import auraloss
import torch

from mastering.evaluation.metrics import EvaluationMRSTFT
from mastering.losses import DEFAULT_FFT_SIZES
from mastering.training.config import train_config


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else 5
    sizes = list(DEFAULT_FFT_SIZES)
    ours = EvaluationMRSTFT(sizes)
    peer = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes],
                                                 win_lengths=sizes)
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(1, 2, 30 * 44100, generator=gen)
    estimates = [0.9 * ref + 0.05 * torch.randn(ref.shape, generator=gen) for _ in range(5)]
    cfg = train_config("1b", "cpu")
    n_train = int(round(cfg.segment_seconds * cfg.sample_rate))
    batch = torch.randn(cfg.batch_size, 2, n_train, generator=gen)
    target = 0.9 * batch + 0.05 * torch.randn(batch.shape, generator=gen)

    def train_step(loss):
        def run():
            x = batch.clone().requires_grad_(True)
            loss(x, target).backward()
        return run

    def many(use_kept: bool):
        def run():
            if use_kept:
                spectra = ours.target_spectra(ref)
                return [ours.with_spectra(e, spectra) for e in estimates]
            return [peer(e, ref) for e in estimates]
        return run

    cases = {
        "evaluation excerpt (1 x 2 x 30 s, fwd)": (lambda: ours(estimates[0], ref), lambda: peer(estimates[0], ref)),
        "one reference, 5 systems (30 s, fwd)": (many(True), many(False)),
        f"training batch ({cfg.batch_size} x 2 x {cfg.segment_seconds:g} s, fwd+bwd)": (train_step(ours),
                                                                                    train_step(peer)),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load {os.getloadavg()[0]:.2f}, "
          f"median of {repeats}")
    print(f"{'case':52s} {'ours':>9s} {'auraloss':>9s} {'ratio':>7s}")
    with torch.no_grad():
        for name, (fn_ours, fn_peer) in cases.items():
            with torch.enable_grad() if "training" in name else torch.no_grad():
                t_ours, t_peer = _median_time(fn_ours, repeats), _median_time(fn_peer, repeats)
            print(f"{name:52s} {t_ours:8.3f}s {t_peer:8.3f}s {t_peer / t_ours:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
