"""Speed of the parametric EQ against SciPy, dasp-pytorch and a per-item torchaudio loop (CPU).

A 10-band EQ (low shelf, 8 peaking bands, high shelf), forward and forward+backward, on a batch of
8 items x 2 channels x 10 s at 44.1 kHz, every item with its own random EQ. Times are medians of
several repeats; each is printed as a ratio to ``scipy.signal.sosfilt`` measured in the same run,
in wall-clock and in process CPU time (one thread by default, like sosfilt).

Rows: ``mastering.dsp.eq.parametric_eq`` in its exact mode (numba cascade; torchaudio ``lfilter``
batched over rows, float64) and fast mode (frequency sampling, response by numba or by torch);
dasp-pytorch's ``parametric_eq``; torchlpc's all-pole recursion plus an FIR per band, when torchlpc
is importable (it is not a project dependency); and the "old sketch": for each item, for each band,
one torchaudio ``equalizer_biquad`` / ``bass_biquad`` / ``treble_biquad`` call.

Run:  .venv/bin/python benchmarks/bench_eq.py            (full: 10 s audio, 5 repeats)
      .venv/bin/python benchmarks/bench_eq.py --quick    (1 s audio, 3 repeats)
"""

from __future__ import annotations

import argparse
import importlib.util
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


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU time of ``repeats`` calls, after one warm-up call."""
    fn()  # warm-up (numba compilation, allocator)
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


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


def torchlpc_cascade(x, sample_rate, freq_hz, gain_db, q):
    """Exact cascade with torchlpc (all-pole recursion, time-varying coefficients) + an FIR per band."""
    from torchlpc import sample_wise_lpc

    batch, channels, n = x.shape
    sos = sos_from_params(freq_hz.double(), gain_db.double(), q.double(), KINDS, sample_rate).to(x.dtype)
    sos = sos.repeat_interleave(channels, dim=0)  # [rows, bands, 6]
    y = x.reshape(batch * channels, n)
    for k in range(sos.shape[1]):
        b, a = sos[:, k, :3], sos[:, k, 4:]
        padded = torch.nn.functional.pad(y, (2, 0))
        fir = b[:, :1] * padded[:, 2:] + b[:, 1:2] * padded[:, 1:-1] + b[:, 2:] * padded[:, :-2]
        y = sample_wise_lpc(fir, a[:, None, :].expand(-1, n, -1))
    return y.reshape(batch, channels, n)


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
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        numba_threads = numba.get_num_threads()
    except ImportError:
        numba_threads = 0
    # after numba: starting numba's OpenMP pool resets the (shared libgomp) thread count torch uses
    torch.set_num_threads(args.threads)
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

    def ours(mode: str, backend: str):
        return lambda x, sr, f, g, qq: parametric_eq(x, sr, f, g, qq, KINDS, mode=mode, backend=backend)

    methods = {
        "exact (numba cascade)": ours("exact", "numba"),
        "exact (torchaudio lfilter, batched)": ours("exact", "torch"),
        "fast (numba grid response)": ours("fast", "numba"),
        "fast (torch grid response)": ours("fast", "torch"),
        "dasp-pytorch parametric_eq (6 bands*)": dasp_eq,
    }
    if importlib.util.find_spec("torchlpc") is not None:  # optional, not a project dependency
        methods["exact (torchlpc + FIR, per band)"] = torchlpc_cascade
    if not args.skip_loop:
        methods["per-item per-band torchaudio loop"] = per_item_loop

    print(
        f"10-band EQ, batch {batch} x {channels} ch x {seconds:g} s at {sample_rate} Hz, float32 audio, CPU; "
        f"torch.set_num_threads({torch.get_num_threads()}), numba threads {numba_threads}, median of {repeats}"
    )
    ref_wall, ref_cpu = timed(scipy_forward, repeats)
    rows = [("scipy.signal.sosfilt (no gradient)", (ref_wall, ref_cpu), None)]
    for name, fn in methods.items():
        rows.append((name, timed(run(fn, backward=False), repeats), timed(run(fn, backward=True), repeats)))

    width = max(len(r[0]) for r in rows)
    print(
        f"{'method':<{width}}  {'fwd s':>7} {'x sosfilt':>9}  {'fwd+bwd s':>9} {'x sosfilt':>9}"
        f"  | CPU time: {'fwd x':>6} {'fwd+bwd x':>9}"
    )
    for name, fwd, bwd in rows:
        line = f"{name:<{width}}  {fwd[0]:7.3f} {fwd[0] / ref_wall:9.2f}  "
        line += f"{bwd[0]:9.3f} {bwd[0] / ref_wall:9.2f}" if bwd else f"{'-':>9} {'-':>9}"
        line += f"  |           {fwd[1] / ref_cpu:6.2f} " + (f"{bwd[1] / ref_cpu:9.2f}" if bwd else f"{'-':>9}")
        print(line)
    print("Ratios are to scipy.signal.sosfilt's forward time in this run (wall clock, and process CPU time,")
    print("which a busy machine inflates less). sosfilt runs per item: every item has its own EQ.")
    print("* dasp-pytorch's parametric_eq has a fixed 6-band layout (low shelf, 4 peaking, high shelf); it runs")
    print("  6 of the 10 bands here, with an FFT of the next power of two >= 2 x samples.")
    found = {name: (fwd, bwd) for name, fwd, bwd in rows}
    fast = found["fast (numba grid response)"]
    exact = found["exact (numba cascade)"]
    print(f"fast forward / sosfilt: wall {fast[0][0] / ref_wall:.2f}, CPU {fast[0][1] / ref_cpu:.2f} (target <= 2)")
    loop = found.get("per-item per-band torchaudio loop")
    if loop:
        print(
            f"per-item loop / exact: forward wall {loop[0][0] / exact[0][0]:.1f}x "
            f"(CPU {loop[0][1] / exact[0][1]:.1f}x), forward+backward wall {loop[1][0] / exact[1][0]:.1f}x "
            f"(CPU {loop[1][1] / exact[1][1]:.1f}x) (target >= 10)"
        )


if __name__ == "__main__":
    main()
