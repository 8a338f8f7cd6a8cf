"""Speed of the parametric EQ against SciPy, dasp-pytorch and a per-item torchaudio loop (CPU).

A 10-band EQ (low shelf, 8 peaking bands, high shelf), forward and forward+backward, on a batch of
8 items x 2 channels x 10 s at 44.1 kHz, every item with its own random EQ. Times are medians of
several repeats; each is printed as a ratio to ``scipy.signal.sosfilt`` measured in the same run.

Run:  .venv/bin/python benchmarks/bench_eq.py            (full: 10 s audio, 5 repeats)
      .venv/bin/python benchmarks/bench_eq.py --quick    (1 s audio, 3 repeats)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.signal
import torch
import torchaudio.functional as AF

from mastering.dsp.eq import parametric_eq, sos_from_params

KINDS = ("low_shelf",) + ("peaking",) * 8 + ("high_shelf",)


def random_params(batch: int, bands: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    freq_hz = np.exp(rng.uniform(np.log(20.0), np.log(20000.0), (batch, bands)))
    gain_db = rng.uniform(-12.0, 12.0, (batch, bands))
    q = np.exp(rng.uniform(np.log(0.5), np.log(5.0), (batch, bands)))
    return tuple(torch.tensor(v, dtype=torch.float32) for v in (freq_hz, gain_db, q))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (numba compilation, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_item_loop(x, sample_rate, freq_hz, gain_db, q):
    """The old sketch: for each item, for each band, one torchaudio biquad call (BandBiquad style)."""
    out = []
    for i in range(x.shape[0]):
        y = x[i]
        for k, kind in enumerate(KINDS):
            f, g, qq = freq_hz[i, k], gain_db[i, k], q[i, k]
            if kind == "peaking":
                y = AF.equalizer_biquad(y, sample_rate, f, g, qq)
            elif kind == "low_shelf":
                y = AF.bass_biquad(y, sample_rate, g, f, qq)
            else:
                y = AF.treble_biquad(y, sample_rate, g, f, qq)
        out.append(y)
    return torch.stack(out)


def dasp_eq(x, sample_rate, freq_hz, gain_db, q):
    """dasp-pytorch's fixed 6-band layout (low shelf, 4 peaking, high shelf): first 5 + last band."""
    from dasp_pytorch.functional import parametric_eq as dasp_parametric_eq

    idx = [0, 1, 2, 3, 4, 9]
    args = []
    for k in idx:
        args += [gain_db[:, k], freq_hz[:, k], q[:, k]]
    return dasp_parametric_eq(x, sample_rate, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s of audio and 3 repeats")
    parser.add_argument("--seconds", type=float, default=None, help="audio length (default 10, quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per timing (default 5, quick 3)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch and numba threads (default 1: sosfilt is single-threaded, and on a shared 2-core "
        "machine more threads oversubscribe the CPU)",
    )
    parser.add_argument("--skip-loop", action="store_true", help="skip the slow per-item torchaudio loop")
    args = parser.parse_args()

    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 10.0)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    torch.set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        numba_threads = numba.get_num_threads()
    except ImportError:
        numba_threads = 0
    sample_rate, batch, channels, bands = 44100, 8, 2, len(KINDS)
    n_samples = int(seconds * sample_rate)

    gen = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(batch, channels, n_samples, generator=gen)
    freq_hz, gain_db, q = random_params(batch, bands, seed=0)
    sos = sos_from_params(freq_hz.double().numpy(), gain_db.double().numpy(), q.double().numpy(), KINDS, sample_rate)
    x_np = x.numpy()

    def scipy_forward():
        return [scipy.signal.sosfilt(sos[i], x_np[i], axis=-1) for i in range(batch)]

    def run(fn, backward: bool):
        def call():
            params = [p.clone().requires_grad_(backward) for p in (freq_hz, gain_db, q)]
            if backward:
                y = fn(x, sample_rate, *params)
                y.square().mean().backward()
            else:
                with torch.no_grad():
                    fn(x, sample_rate, *params)
        return call

    methods = {
        "exact (numba cascade)": lambda x, sr, f, g, qq: parametric_eq(x, sr, f, g, qq, KINDS, mode="exact", backend="numba"),
        "exact (torchaudio lfilter, batched)": lambda x, sr, f, g, qq: parametric_eq(
            x, sr, f, g, qq, KINDS, mode="exact", backend="torch"
        ),
        "fast (numba grid response)": lambda x, sr, f, g, qq: parametric_eq(
            x, sr, f, g, qq, KINDS, mode="fast", backend="numba"
        ),
        "fast (torch grid response)": lambda x, sr, f, g, qq: parametric_eq(
            x, sr, f, g, qq, KINDS, mode="fast", backend="torch"
        ),
        "dasp-pytorch parametric_eq (6 bands*)": dasp_eq,
    }
    if not args.skip_loop:
        methods["per-item per-band torchaudio loop"] = per_item_loop

    print(
        f"10-band EQ, batch {batch} x {channels} ch x {seconds:g} s at {sample_rate} Hz, float32 audio, CPU; "
        f"torch.set_num_threads({torch.get_num_threads()}), numba threads {numba_threads}, median of {repeats} "
        f"(wall clock)"
    )
    t_ref = timed(scipy_forward, repeats)
    rows = [("scipy.signal.sosfilt (no gradient)", t_ref, None)]
    for name, fn in methods.items():
        t_fwd = timed(run(fn, backward=False), repeats)
        t_bwd = timed(run(fn, backward=True), repeats)
        rows.append((name, t_fwd, t_bwd))

    width = max(len(r[0]) for r in rows)
    print(f"{'method':<{width}}  {'forward s':>9}  {'x sosfilt':>9}  {'fwd+bwd s':>9}  {'x sosfilt':>9}")
    for name, t_fwd, t_bwd in rows:
        bwd = f"{t_bwd:9.3f}  {t_bwd / t_ref:9.2f}" if t_bwd is not None else f"{'-':>9}  {'-':>9}"
        print(f"{name:<{width}}  {t_fwd:9.3f}  {t_fwd / t_ref:9.2f}  {bwd}")
    print("* dasp-pytorch's parametric_eq has a fixed 6-band layout (low shelf, 4 peaking, high shelf); it runs")
    print("  6 of the 10 bands here, with an FFT of the next power of two >= 2 x samples.")
    loop = [r for r in rows if r[0].startswith("per-item")]
    exact = [r for r in rows if r[0].startswith("exact (numba")]
    fast = [r for r in rows if r[0].startswith("fast (numba")]
    print(f"fast forward / sosfilt: {fast[0][1] / t_ref:.2f} (target <= 2)")
    if loop:
        print(
            f"per-item loop / exact: forward {loop[0][1] / exact[0][1]:.1f}x, "
            f"forward+backward {loop[0][2] / exact[0][2]:.1f}x (target >= 10)"
        )


if __name__ == "__main__":
    main()
