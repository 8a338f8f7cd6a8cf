"""Speed of the MR-STFT loss (``mastering.losses.MultiResolutionSTFTLoss``) against auraloss's
``MultiResolutionSTFTLoss`` in the same configuration (FFT 2048/1024/512/256, hop FFT/4, Hann),
measured in the same run, on the CPU.

Ours is auraloss's loss without the phase spectrum auraloss computes and discards when the phase
weight is 0; the values agree (``tests/losses/test_stft.py``). Two cases: a training batch (the
``cpu`` profile's Phase 1 batch, forward + backward) and one evaluation excerpt (30 s stereo,
forward only, as ``mastering.evaluation.metrics.mrstft_distance`` measures it). Times are medians
of several repeats after one warm-up; the ratio is auraloss's time over ours.

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

from mastering.losses import DEFAULT_FFT_SIZES, MultiResolutionSTFTLoss
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
    ours = MultiResolutionSTFTLoss(sizes)
    peer = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes],
                                                 win_lengths=sizes)
    cfg = train_config("1b", "cpu")
    gen = torch.Generator().manual_seed(0)
    n_train = int(round(cfg.segment_seconds * cfg.sample_rate))
    cases = {
        f"training batch ({cfg.batch_size} x 2 x {cfg.segment_seconds:g} s, fwd+bwd)":
            (torch.randn(cfg.batch_size, 2, n_train, generator=gen), True),
        "evaluation excerpt (1 x 2 x 30 s, fwd)": (torch.randn(1, 2, 30 * 44100, generator=gen), False),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load {os.getloadavg()[0]:.2f}, "
          f"median of {repeats}")
    print(f"{'case':52s} {'ours':>9s} {'auraloss':>9s} {'ratio':>7s}")
    for name, (x, backward) in cases.items():
        y = 0.9 * x + 0.05 * torch.randn(x.shape, generator=gen)

        def step(loss):
            def run():
                xi = x.clone().requires_grad_(backward)
                value = loss(xi, y)
                if backward:
                    value.backward()
            return run

        t_ours, t_peer = _median_time(step(ours), repeats), _median_time(step(peer), repeats)
        print(f"{name:52s} {t_ours:8.3f}s {t_peer:8.3f}s {t_peer / t_ours:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
