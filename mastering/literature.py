"""Computations behind the literature notebook (``notebooks/01_literature.ipynb``).

Each reviewed idea is demonstrated by a real computation (``*_demo`` / measurement functions that
return JSON-able results) and drawn by one figure function (``fig_*``) that only reads results.
Results are saved with :func:`save_result` under ``runs/literature/`` so figures can be redrawn
without recomputing; :func:`numbers_literature` writes the numbers the text quotes from them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import paths
from .dsp.eq import ParametricEQ, biquad_coefficients, freq_response_db, parametric_eq
from .dsp.loudness import loudness, loudness_range, true_peak
from .dsp.signals import pink_noise
from .dsp.weighting import IEC_61672_A_TABLE, a_weighting_sos, k_weighting_sos
from .figures import latex_table, save_figure, save_numbers, save_table
from .io import load_audio
from .losses import MultiResolutionSTFTLoss
from .models.encoder import AudioEncoder, empirical_receptive_field, receptive_field
from .models.unet import WaveUNet, count_parameters
from .provenance import atomic_write_text, stamp

# Published loudness targets of streaming platforms (integrated LUFS), as documented by the
# platforms' own loudness-normalisation help pages (Spotify "Loudness normalization", Apple
# "Sound Check"/Mastered for iTunes, YouTube stats-for-nerds "content loudness", Amazon Music,
# Tidal, Deezer) and summarised in AES TD1008 (2021).
STREAMING_TARGETS_LUFS = {
    "Spotify": -14.0,
    "YouTube": -14.0,
    "Amazon Music": -14.0,
    "Tidal": -14.0,
    "Deezer": -15.0,
    "Apple Music": -16.0,
}


def save_result(name: str, result: dict[str, Any], profile: str) -> Path:
    """Save a demo's result as JSON under ``runs/literature/<name>.json`` (with provenance)."""
    path = paths.runs_dir() / "literature" / f"{name}.json"
    atomic_write_text(path, json.dumps({"provenance": stamp(profile), **result}, indent=1) + "\n")
    return path


def load_result(name: str) -> dict[str, Any]:
    """Load a result saved by :func:`save_result`."""
    return json.loads((paths.runs_dir() / "literature" / f"{name}.json").read_text())


def _log_grid(n: int = 256, low: float = 20.0, high: float = 20000.0) -> np.ndarray:
    return np.geomspace(low, high, n)


# --------------------------------------------------------------------------------------------
# 1. Differentiable biquads: gradient descent recovers an unknown EQ from audio alone
# --------------------------------------------------------------------------------------------
def eq_recovery_demo(
    sample_rate: int = 44100,
    seconds: float = 1.0,
    steps: int = 150,
    seed: int = 0,
    lr: float = 0.05,
    mode: str = "fast",
) -> dict[str, Any]:
    """Fit a 5-band parametric EQ to (input, output) audio of an unknown 5-band EQ.

    Following Nercessian (2020, "Neural parametric equalizer matching using differentiable
    biquads"): the unknown EQ is drawn from ``seed``; the estimate starts flat (0 dB, mid
    frequencies) and is optimized with Adam through the differentiable cascade on a
    multi-resolution STFT loss. Also runs ``torch.autograd.gradcheck`` on the biquad
    coefficients in float64.

    Returns:
        loss and response-error history (dB, mean absolute over 20 Hz–20 kHz), true and
        estimated parameters and magnitude responses, and the gradcheck outcome.
    """

    gen = torch.Generator().manual_seed(seed)
    eq = ParametricEQ(num_bands=5)
    true01 = torch.rand(1, eq.num_params, generator=gen) * 0.8 + 0.1
    true = eq.denormalize(true01)
    n = int(seconds * sample_rate)
    x = pink_noise(n, channels=1, batch=1, seed=seed)
    x = 0.25 * x / x.abs().max()
    with torch.no_grad():
        target = parametric_eq(x, sample_rate, true["freq_hz"], true["gain_db"], true["q"], eq.kinds, mode=mode)
    # Flat start: sigmoid(0) = 0.5 is 0 dB gain, ~632 Hz and Q ~1.6 for every band.
    logits = torch.zeros(1, eq.num_params, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    loss_fn = MultiResolutionSTFTLoss(fft_sizes=(2048, 1024, 512))
    grid = _log_grid(256, 20.0, min(20000.0, 0.45 * sample_rate))
    true_db = freq_response_db(true["freq_hz"], true["gain_db"], true["q"], eq.kinds, sample_rate, freqs_hz=grid)
    history: dict[str, list[float]] = {"step": [], "loss": [], "response_error_db": []}
    for step in range(steps + 1):
        est = eq.from_logits(logits)
        y = parametric_eq(x, sample_rate, est["freq_hz"], est["gain_db"], est["q"], eq.kinds, mode=mode)
        loss = loss_fn(y, target)
        if step % max(1, steps // 50) == 0 or step == steps:
            with torch.no_grad():
                est_db = freq_response_db(est["freq_hz"], est["gain_db"], est["q"], eq.kinds, sample_rate, freqs_hz=grid)
            history["step"].append(step)
            history["loss"].append(float(loss.detach()))
            history["response_error_db"].append(float((est_db - true_db).abs().mean()))
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    est = {k: v.detach() for k, v in eq.from_logits(logits).items()}
    est_db = freq_response_db(est["freq_hz"], est["gain_db"], est["q"], eq.kinds, sample_rate, freqs_hz=grid)

    params64 = (torch.tensor([[1000.0]], dtype=torch.float64, requires_grad=True),
                torch.tensor([[6.0]], dtype=torch.float64, requires_grad=True),
                torch.tensor([[1.5]], dtype=torch.float64, requires_grad=True))
    gradcheck_ok = bool(torch.autograd.gradcheck(
        lambda f, g, q: torch.cat(biquad_coefficients("peaking", f, g, q, sample_rate), dim=-1), params64))
    return {
        "sample_rate": sample_rate, "seconds": seconds, "steps": steps, "seed": seed, "mode": mode,
        "kinds": list(eq.kinds),
        "true": {k: v.flatten().tolist() for k, v in true.items()},
        "estimated": {k: v.flatten().tolist() for k, v in est.items()},
        "freqs_hz": grid.tolist(),
        "true_response_db": true_db.flatten().tolist(),
        "estimated_response_db": est_db.flatten().tolist(),
        "history": history,
        "gradcheck_float64": gradcheck_ok,
    }


def fig_eq_recovery(result: dict[str, Any], profile: str) -> Path:
    """Figure: loss / response error over steps, and true vs recovered magnitude response."""
    import matplotlib.pyplot as plt

    h = result["history"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.semilogy(h["step"], h["loss"], label="MR-STFT loss")
    a.set_xlabel("Adam step")
    a.set_ylabel("MR-STFT loss")
    a2 = a.twinx()
    a2.plot(h["step"], h["response_error_db"], color="C1", label="response error")
    a2.set_ylabel("mean |response error| (dB)", color="C1")
    a.set_title("Optimising 5 biquads from audio alone")
    b.semilogx(result["freqs_hz"], result["true_response_db"], "k", lw=2, label="unknown EQ")
    b.semilogx(result["freqs_hz"], result["estimated_response_db"], "C1--", lw=1.5, label="recovered")
    b.set_xlabel("frequency (Hz)")
    b.set_ylabel("magnitude (dB)")
    b.set_xlim(20, 20000)
    b.grid(True, which="both", alpha=0.3)
    b.legend(loc="best", fontsize=8)
    b.set_title(f"final error {h['response_error_db'][-1]:.2f} dB; gradcheck "
                f"{'passed' if result['gradcheck_float64'] else 'FAILED'}")
    fig.tight_layout()
    return save_figure(fig, "lit_eq_recovery", profile)


# --------------------------------------------------------------------------------------------
# 2. Why a multi-scale STFT loss and not L1 on waveforms: phase
# --------------------------------------------------------------------------------------------
def phase_shift_losses(
    x: torch.Tensor,
    sample_rate: int,
    phases_deg: np.ndarray | None = None,
    delays_ms: np.ndarray | None = None,
    shelf_gains_db: np.ndarray | None = None,
) -> dict[str, Any]:
    """Waveform L1 vs MR-STFT under phase changes and under a real spectral change.

    Three manipulations of ``x``: a constant phase rotation ``cos(phi) x - sin(phi) H{x}``
    (H: Hilbert transform; same magnitude spectrum), a (fractional) time delay, and a high-shelf
    boost at 4 kHz (an audible spectral change). Each loss is expressed in units of its own value
    for a +1 dB shelf, so the two losses share a scale: a perceptual loss should rate the phase
    changes far below "1 dB of EQ" and the shelf in proportion to its gain.

    Args:
        x: ``[1, channels, samples]`` audio (a real track in the notebook).
        sample_rate: its sample rate.
        phases_deg: phase rotations (default 0..180 degrees).
        delays_ms: delays (default 0..2 ms).
        shelf_gains_db: shelf gains (default 0..6 dB).
    """
    import scipy.signal


    phases_deg = np.linspace(0, 180, 13) if phases_deg is None else np.asarray(phases_deg)
    delays_ms = np.array([0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0]) if delays_ms is None else np.asarray(delays_ms)
    shelf_gains_db = np.linspace(0, 6, 7) if shelf_gains_db is None else np.asarray(shelf_gains_db)
    stft = MultiResolutionSTFTLoss()
    losses = {"l1": lambda a, b: float((a - b).abs().mean()), "mrstft": lambda a, b: float(stft(a, b))}

    def shelf(gain_db: float) -> torch.Tensor:
        params = torch.tensor([[4000.0]]), torch.tensor([[float(gain_db)]]), torch.tensor([[0.707]])
        return parametric_eq(x, sample_rate, *params, ["high_shelf"], mode="exact")

    unit = {name: fn(shelf(1.0), x) for name, fn in losses.items()}
    hx = torch.from_numpy(scipy.signal.hilbert(x.double().numpy(), axis=-1).imag).to(x.dtype)
    n = x.shape[-1]
    spectrum = torch.fft.rfft(torch.nn.functional.pad(x, (0, n)))
    freqs = torch.fft.rfftfreq(2 * n, 1.0 / sample_rate)
    variants = {
        "phase": [math.cos(p) * x - math.sin(p) * hx for p in np.deg2rad(phases_deg)],
        "delay": [torch.fft.irfft(spectrum * torch.exp(-2j * math.pi * freqs * d / 1000), 2 * n)[..., :n]
                  for d in delays_ms],
        "shelf": [shelf(g) for g in shelf_gains_db],
    }
    out: dict[str, Any] = {"phases_deg": phases_deg.tolist(), "delays_ms": delays_ms.tolist(),
                           "shelf_gains_db": shelf_gains_db.tolist(), "unit_1db_shelf": unit}
    for kind, signals in variants.items():
        out[kind] = {name: [fn(y, x) / unit[name] for y in signals] for name, fn in losses.items()}
    return out


def fig_phase_invariance(result: dict[str, Any], profile: str) -> Path:
    """Figure: L1 vs MR-STFT, in units of a 1 dB shelf, under phase rotation, delay and a shelf boost."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), sharey=True)
    panels = [("phase", "phases_deg", "constant phase rotation (degrees)", "Same spectrum, new waveform"),
              ("delay", "delays_ms", "time delay (ms)", "Delay"),
              ("shelf", "shelf_gains_db", "high shelf at 4 kHz (dB)", "Audible spectral change")]
    for ax, (kind, xkey, xlabel, title) in zip(axes, panels):
        xs = np.asarray(result[xkey])
        for name, style, label in (("l1", "o-", "waveform L1"), ("mrstft", "s-", "MR-STFT")):
            ys = np.maximum(np.asarray(result[kind][name]), 1e-3)
            ax.semilogy(xs, ys, style, ms=4, label=label)
        ax.axhline(1.0, color="0.5", ls=":", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("loss / loss of a +1 dB shelf")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, "lit_phase_invariance", profile)


# --------------------------------------------------------------------------------------------
# 3. A-weighting and K-weighting against the standards
# --------------------------------------------------------------------------------------------
def weighting_curves(sample_rates: tuple[int, ...] = (44100, 48000)) -> dict[str, Any]:
    """Digital A- and K-weighting magnitude responses against IEC 61672-1 and ITU-R BS.1770-4.

    Returns:
        the IEC table (frequency, nominal dB, class-1 tolerances), our A-weighting at the table's
        frequencies and on a fine grid per sample rate, the largest deviation inside 20 Hz–16 kHz,
        and our K-weighting next to pyloudnorm's filter (BS.1770 reference implementation).
    """
    import pyloudnorm
    import scipy.signal


    # -inf ("no lower limit" in the standard) is stored as None to keep the JSON strict.
    table = [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in row._asdict().items()}
             for row in IEC_61672_A_TABLE]
    f_tab = np.array([r["freq_hz"] for r in table], dtype=float)
    grid = _log_grid(400, 10, 22000)
    out: dict[str, Any] = {"table": table, "grid_hz": grid.tolist(), "a": {}, "k": {}}
    for sr in sample_rates:
        sos = a_weighting_sos(sr)
        valid_tab = f_tab < sr / 2
        _, h_tab = scipy.signal.sosfreqz(sos, worN=f_tab[valid_tab], fs=sr)
        g = grid[grid < sr / 2]
        _, h_grid = scipy.signal.sosfreqz(sos, worN=g, fs=sr)
        tab_db = 20 * np.log10(np.abs(h_tab))
        nominal = np.array([r["a_weighting_db"] for r in table])[valid_tab]
        in_band = (f_tab[valid_tab] >= 20) & (f_tab[valid_tab] <= 16000)
        upper = np.array([r["class1_upper_db"] for r in table])[valid_tab]
        lower = np.array([-np.inf if r["class1_lower_db"] is None else r["class1_lower_db"] for r in table])[valid_tab]
        dev = tab_db - nominal
        within = bool(np.all(((dev <= upper) & (dev >= lower))[in_band]))
        out["a"][str(sr)] = {"table_freqs_db": tab_db.tolist(), "grid_hz": g.tolist(),
                             "grid_db": (20 * np.log10(np.abs(h_grid))).tolist(),
                             "max_dev_20_16k_db": float(np.max(np.abs(dev)[in_band])),
                             "within_class1_20_16k": within}
        ksos = k_weighting_sos(sr)
        _, hk = scipy.signal.sosfreqz(ksos, worN=g, fs=sr)
        meter = pyloudnorm.Meter(sr)
        ref_sos = np.vstack([np.hstack([f.b, f.a]) for f in meter._filters.values()])
        _, hr = scipy.signal.sosfreqz(ref_sos, worN=g, fs=sr)
        out["k"][str(sr)] = {"grid_db": (20 * np.log10(np.abs(hk))).tolist(),
                             "pyloudnorm_db": (20 * np.log10(np.abs(hr))).tolist(),
                             "max_dev_db": float(np.max(np.abs(20 * np.log10(np.abs(hk) / np.abs(hr)))))}
    return out


def fig_weighting_curves(result: dict[str, Any], profile: str) -> Path:
    """Figure: A-weighting vs the IEC 61672-1 table with class-1 tolerances; K-weighting vs pyloudnorm."""
    import matplotlib.pyplot as plt

    table = result["table"]
    f = np.array([r["freq_hz"] for r in table])
    nominal = np.array([r["a_weighting_db"] for r in table])
    lo = nominal + np.array([r["class1_lower_db"] if r["class1_lower_db"] is not None else -np.inf for r in table])
    hi = nominal + np.array([r["class1_upper_db"] for r in table])
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    a.fill_between(f, lo, hi, color="0.85", step="mid", label="IEC 61672-1 class 1")
    a.plot(f, nominal, "k.", label="IEC nominal")
    for sr, res in result["a"].items():
        verdict = "inside" if res["within_class1_20_16k"] else "OUTSIDE"
        a.semilogx(res["grid_hz"], res["grid_db"], lw=1.2,
                   label=f"ours, {int(sr) / 1000:g} kHz ({verdict} class-1 limits, 20 Hz-16 kHz)")
    a.set_xscale("log")
    a.set_ylim(-70, 5)
    a.set_xlim(10, 22000)
    a.set_xlabel("frequency (Hz)")
    a.set_ylabel("gain (dB)")
    a.set_title("A-weighting")
    a.legend(fontsize=6.5, loc="lower center", framealpha=0.95)
    for sr, res in result["k"].items():
        grid = result["a"][sr]["grid_hz"]
        b.semilogx(grid, res["grid_db"], lw=1.5, label=f"ours, {int(sr) / 1000:g} kHz")
        b.semilogx(grid, res["pyloudnorm_db"], "--", lw=1, label=f"pyloudnorm (max dev {res['max_dev_db']:.3f} dB)")
    b.set_xlim(10, 22000)
    b.set_ylim(-25, 6)
    b.set_xlabel("frequency (Hz)")
    b.set_title("K-weighting (ITU-R BS.1770-4)")
    b.legend(fontsize=7)
    for ax in (a, b):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, "lit_weighting_curves", profile)


# --------------------------------------------------------------------------------------------
# 4. TCN receptive field
# --------------------------------------------------------------------------------------------
def tcn_receptive_field_demo(sample_rate: int = 44100, num_samples: int = 8192) -> dict[str, Any]:
    """Receptive field of the design's TCN encoder: analytic, measured, and the gradient profile."""
    torch.manual_seed(0)
    enc = AudioEncoder().eval()
    analytic = receptive_field(enc)
    measured = empirical_receptive_field(enc, num_samples)
    x = torch.randn(1, 2, num_samples, requires_grad=True)
    feats = enc.features(x)
    feats[..., feats.shape[-1] // 2].sum().backward()
    profile_ = x.grad.abs().sum(dim=(0, 1))
    profile_ = (profile_ / profile_.max()).tolist()
    # Receptive field as layers are added (stem, then each dilated block).
    growth, rf, jump = [], 1, 1
    for conv in [m for m in enc.modules() if isinstance(m, torch.nn.Conv1d) and m.kernel_size[0] > 1]:
        rf += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
        jump *= conv.stride[0]
        growth.append({"layer": f"k{conv.kernel_size[0]} d{conv.dilation[0]} s{conv.stride[0]}", "samples": rf})
    return {"sample_rate": sample_rate, "analytic_samples": analytic["samples"], "hop_samples": analytic["hop"],
            "measured_samples": measured, "analytic_ms": 1000 * analytic["samples"] / sample_rate,
            "gradient_profile": profile_, "growth": growth}


def fig_tcn_receptive_field(result: dict[str, Any], profile: str) -> Path:
    """Figure: receptive-field growth per layer and the measured gradient footprint of one frame."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    g = result["growth"]
    a.bar(range(len(g)), [r["samples"] for r in g], color="C0")
    a.set_xticks(range(len(g)), [r["layer"] for r in g], rotation=45, ha="right", fontsize=7)
    a.set_ylabel("receptive field (samples)")
    a.set_title("Growth through the stem and dilated blocks")
    prof = np.array(result["gradient_profile"])
    centre = len(prof) // 2
    t = (np.arange(len(prof)) - centre) / result["sample_rate"] * 1000
    b.plot(t, prof, lw=0.8)
    half = result["analytic_ms"] / 2
    b.axvspan(t[np.nonzero(prof)[0].min()], t[np.nonzero(prof)[0].max()], color="C1", alpha=0.15,
              label=f"measured {result['measured_samples']} samples")
    b.set_xlim(-2 * half, 2 * half)
    b.set_xlabel("input time relative to frame (ms)")
    b.set_ylabel("|d frame / d input| (norm.)")
    b.set_title(f"One frame sees {result['analytic_samples']} samples ({result['analytic_ms']:.1f} ms)")
    b.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, "lit_tcn_receptive_field", profile)


# --------------------------------------------------------------------------------------------
# 5. Wave-U-Net skip connections on a toy signal
# --------------------------------------------------------------------------------------------
def _toy_batch(batch: int, n: int, sample_rate: int, gen: torch.Generator) -> torch.Tensor:
    """Sines plus decaying clicks: tonal content and transients, in [batch, 1, n]."""
    t = torch.arange(n) / sample_rate
    f = 100 * 2 ** (torch.rand(batch, 3, 1, generator=gen) * 6)  # 100 Hz – 6.4 kHz
    ph = 2 * math.pi * torch.rand(batch, 3, 1, generator=gen)
    x = (torch.sin(2 * math.pi * f * t + ph) * torch.rand(batch, 3, 1, generator=gen)).sum(1, keepdim=True) / 3
    for _ in range(3):
        pos = torch.randint(0, n - 64, (batch,), generator=gen)
        env = torch.exp(-torch.arange(64) / 8.0)
        for i in range(batch):
            x[i, 0, pos[i]:pos[i] + 64] += env * torch.randn(64, generator=gen) * 0.5
    return x


def unet_skip_demo(steps: int = 150, seed: int = 0, sample_rate: int = 16000, n: int = 2048, batch: int = 8,
                   noise_snr_db: float = 10.0) -> dict[str, Any]:
    """Train two small Wave-U-Nets (with and without skip connections) to denoise a toy signal.

    The same seed, data and optimizer for both; reports output SNR over training and one example.
    Skip connections carry the fine time structure (transients) past the decimated bottleneck.
    """

    results: dict[str, Any] = {"steps": steps, "seed": seed, "noise_snr_db": noise_snr_db, "curves": {}}

    def noisy(clean: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        noise = torch.randn(clean.shape, generator=gen)
        noise *= clean.pow(2).mean().sqrt() / noise.pow(2).mean().sqrt() * 10 ** (-noise_snr_db / 20)
        return clean + noise

    # A fixed held-out batch measures progress (the training batches are fresh every step).
    val_gen = torch.Generator().manual_seed(seed + 999)
    val_clean = _toy_batch(16, n, sample_rate, val_gen)
    val_noisy = noisy(val_clean, val_gen)
    results["example_clean"] = val_clean[0].flatten().tolist()
    for skip in (True, False):
        torch.manual_seed(seed)
        net = WaveUNet(channels=1, level_channels=(16, 32, 48), skip=skip)
        opt = torch.optim.Adam(net.parameters(), lr=2e-3)
        gen = torch.Generator().manual_seed(seed)
        curve = {"step": [], "snr_db": []}
        for step in range(steps + 1):
            if step % max(1, steps // 30) == 0 or step == steps:
                with torch.no_grad():
                    err = (net(val_noisy) - val_clean).pow(2).mean()
                curve["step"].append(step)
                curve["snr_db"].append(float(10 * torch.log10(val_clean.pow(2).mean() / err)))
            if step < steps:
                clean = _toy_batch(batch, n, sample_rate, gen)
                loss = (net(noisy(clean, gen)) - clean).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        key = "skip" if skip else "no_skip"
        with torch.no_grad():
            results[f"example_{key}"] = net(val_noisy[:1]).flatten().tolist()
        results["curves"][key] = curve
        results[f"parameters_{key}"] = count_parameters(net)
    return results


def fig_unet_skip(result: dict[str, Any], profile: str) -> Path:
    """Figure: output SNR over training with vs without skips, and an example transient."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for key, label in (("skip", "with skip connections"), ("no_skip", "without")):
        c = result["curves"][key]
        a.plot(c["step"], c["snr_db"], label=f"{label} (final {c['snr_db'][-1]:.1f} dB)")
    a.axhline(result["noise_snr_db"], color="0.5", ls=":", label="input SNR")
    a.set_xlabel("training step")
    a.set_ylabel("output SNR (dB)")
    a.set_title("Toy denoising with a Wave-U-Net (held-out batch)")
    a.legend(fontsize=8)
    clean = np.array(result["example_clean"])
    centre = int(np.argmax(np.abs(np.diff(clean))))
    sl = slice(max(0, centre - 150), centre + 250)
    b.plot(clean[sl], "k", lw=1.5, label="clean")
    b.plot(np.array(result["example_skip"])[sl], "C0", lw=1, label="with skips")
    b.plot(np.array(result["example_no_skip"])[sl], "C1", lw=1, label="without")
    b.set_xlabel("sample")
    b.set_title("Around a transient")
    b.legend(fontsize=8)
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, "lit_unet_skip", profile)


# --------------------------------------------------------------------------------------------
# 6. Loudness of real tracks against pyloudnorm and the streaming targets
# --------------------------------------------------------------------------------------------
def loudness_of_tracks(track_paths: list[str | Path], sample_rate: int | None = None,
                       max_seconds: float | None = None) -> list[dict[str, Any]]:
    """Integrated loudness (ours and pyloudnorm), true peak and LRA of real tracks.

    Args:
        track_paths: audio files.
        sample_rate: resample to this rate first (``None``: native rate).
        max_seconds: measure at most this much of each track (``None``: whole track).
    """
    import pyloudnorm


    rows = []
    for path in track_paths:
        x, sr = load_audio(path, sample_rate=sample_rate, duration_s=max_seconds)
        ours = float(loudness(x.unsqueeze(0).double(), sr))
        ref = float(pyloudnorm.Meter(sr).integrated_loudness(x.double().numpy().T))
        rows.append({"track": Path(path).stem, "duration_s": x.shape[-1] / sr, "sample_rate": sr,
                     "lufs_ours": ours, "lufs_pyloudnorm": ref, "difference_lu": ours - ref,
                     "true_peak_dbtp": float(true_peak(x.unsqueeze(0), sr)),
                     "lra_lu": float(loudness_range(x.unsqueeze(0), sr))})
    return rows


def table_loudness_real_tracks(rows: list[dict[str, Any]], profile: str) -> Path:
    """Table: measured loudness of real tracks, ours vs pyloudnorm, with true peak and LRA."""
    import pandas as pd

    df = pd.DataFrame(rows)[["track", "duration_s", "lufs_ours", "lufs_pyloudnorm", "difference_lu",
                             "true_peak_dbtp", "lra_lu"]]
    df.columns = ["Track", "Dur. (s)", "LUFS (ours)", "LUFS (pyloudnorm)", "Diff. (LU)", "True peak (dBTP)", "LRA (LU)"]
    tex = latex_table(df, "Integrated loudness (ITU-R BS.1770-4) of real tracks: our differentiable meter "
                      "against pyloudnorm, with 4$\\times$-oversampled true peak and EBU Tech 3342 loudness range",
                      "tab:loudness-real", profile, float_format="%.2f", column_format="lrrrrrr")
    return save_table(tex, "lit_loudness_real_tracks", profile)


def fig_loudness_platforms(rows: list[dict[str, Any]], profile: str) -> Path:
    """Figure: each track's loudness (ours and pyloudnorm) against the streaming platforms' targets."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    names = [r["track"][:18] for r in rows]
    xs = np.arange(len(rows))
    ours = [r["lufs_ours"] for r in rows]
    styles = ["-", "--", ":", "-."]
    for i, (target, platforms) in enumerate(_group_targets().items()):
        ax.axhline(target, color=f"C{i + 2}", ls=styles[i % 4], lw=1, label=f"{target:g} LUFS: {', '.join(platforms)}")
    ax.plot(xs, ours, "o", color="C0", ms=8, label="ours (BS.1770-4, differentiable)")
    ax.plot(xs, [r["lufs_pyloudnorm"] for r in rows], "x", color="k", ms=8, mew=2, label="pyloudnorm")
    for x_, r in zip(xs, rows):
        ax.annotate(f"{r['true_peak_dbtp']:+.1f} dBTP", (x_, r["lufs_ours"]), textcoords="offset points",
                    xytext=(8, -3), fontsize=7, color="0.3")
    ax.set_xticks(xs, names, rotation=20, ha="right", fontsize=8)
    ax.set_xlim(-0.5, len(rows) - 0.3)
    ax.set_ylabel("integrated loudness (LUFS)")
    ax.set_title("Real tracks vs. streaming loudness targets (label: true peak)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return save_figure(fig, "lit_loudness_platforms", profile)


def _group_targets() -> dict[float, list[str]]:
    groups: dict[float, list[str]] = {}
    for name, target in STREAMING_TARGETS_LUFS.items():
        groups.setdefault(target, []).append(name)
    return groups


# --------------------------------------------------------------------------------------------
# Numbers for the paper's text
# --------------------------------------------------------------------------------------------
A_WEIGHTING_BAND_HZ = (20.0, 16000.0)
"""The band over which :func:`weighting_curves` judges the A-weighting."""

A_WEIGHTING_SPLIT_HZ = 10000.0
"""Upper end of the band where the bilinear transform's compression toward Nyquist is negligible."""


def numbers_literature(profile: str) -> Path:
    """Write ``numbers_literature.tex`` from the results notebook 01 saved (``runs/literature``).

    Reads the results this module saved (never recomputes) and writes the numbers the
    text quotes: EQ recovery error before/after, the phase-shift losses, the weighting filters'
    deviation from the standards, the TCN receptive field, the U-Net skip ablation and the loudness
    agreement with pyloudnorm.
    """
    eq = load_result("eq_recovery")
    err = eq["history"]["response_error_db"]
    values: dict[str, Any] = {
        "eq_steps": int(eq["steps"]), "eq_seconds": float(eq["seconds"]),
        "eq_error_start_db": float(err[0]), "eq_error_end_db": float(err[-1]),
        "eq_gradcheck": bool(eq.get("gradcheck_float64", False)),
    }
    # losses in units of their own value for a +1 dB high shelf (phase_shift_losses' "unit_1db_shelf")
    phase = load_result("phase_invariance")
    i_q = min(range(len(phase["phases_deg"])), key=lambda i: abs(abs(phase["phases_deg"][i]) - 90.0))
    i_d = max(range(len(phase["delays_ms"])), key=lambda i: phase["delays_ms"][i])
    j_s = max(range(len(phase["shelf_gains_db"])), key=lambda j: abs(phase["shelf_gains_db"][j]))
    values.update({
        "loss_unit_shelf_db": 1.0,
        "phase_deg": float(phase["phases_deg"][i_q]),
        "phase_l1": float(phase["phase"]["l1"][i_q]), "phase_mrstft": float(phase["phase"]["mrstft"][i_q]),
        "delay_ms": float(phase["delays_ms"][i_d]),
        "delay_l1": float(phase["delay"]["l1"][i_d]), "delay_mrstft": float(phase["delay"]["mrstft"][i_d]),
        "shelf_max_db": float(phase["shelf_gains_db"][j_s]),
        "shelf_l1": float(phase["shelf"]["l1"][j_s]), "shelf_mrstft": float(phase["shelf"]["mrstft"][j_s]),
    })
    w = load_result("weighting_curves")
    values["a_weighting_max_dev_db"] = max(float(v["max_dev_20_16k_db"]) for v in w["a"].values())
    band_lo, band_hi, split = A_WEIGHTING_BAND_HZ[0], A_WEIGHTING_BAND_HZ[1], A_WEIGHTING_SPLIT_HZ
    freqs = [float(r["freq_hz"]) for r in w["table"]]
    nominal = [float(r["a_weighting_db"]) for r in w["table"]]
    upper = [float(r["class1_upper_db"]) for r in w["table"]]
    lower = [-math.inf if r["class1_lower_db"] is None else float(r["class1_lower_db"]) for r in w["table"]]
    dev_10k, ok, total = 0.0, 0, 0
    for v in w["a"].values():  # table_freqs_db lists the table's frequencies below Nyquist, in order
        for f, measured, nom, hi, lo in zip(freqs, v["table_freqs_db"], nominal, upper, lower):
            dev = float(measured) - nom
            if band_lo <= f <= band_hi:
                total += 1
                ok += int(lo <= dev <= hi)
            if band_lo <= f <= split:
                dev_10k = max(dev_10k, abs(dev))
    values.update({"a_weighting_max_dev_10k_db": dev_10k, "a_class1_ok": ok, "a_class1_total": total,
                   "a_weighting_rates": len(w["a"]), "a_band_lo_hz": band_lo, "a_band_hi_khz": band_hi / 1000,
                   "a_split_khz": split / 1000})
    values["k_weighting_max_dev_db"] = max(float(v["max_dev_db"]) for v in w["k"].values())
    tcn = load_result("tcn_receptive_field")
    values.update({"tcn_rf_samples": int(tcn["analytic_samples"]), "tcn_rf_ms": float(tcn["analytic_ms"]),
                   "tcn_rf_measured_samples": int(tcn["measured_samples"]), "tcn_hop_samples": int(tcn["hop_samples"])})
    unet = load_result("unet_skip")
    values.update({"unet_steps": int(unet["steps"]), "unet_input_snr_db": float(unet["noise_snr_db"]),
                   "unet_skip_snr_db": float(unet["curves"]["skip"]["snr_db"][-1]),
                   "unet_no_skip_snr_db": float(unet["curves"]["no_skip"]["snr_db"][-1])})
    rows = load_result("loudness_real_tracks")["rows"]
    if rows:
        values.update({
            "loudness_tracks": len(rows),
            "loudness_max_abs_diff_lu": max(abs(float(r["difference_lu"])) for r in rows),
            "loudness_min_lufs": min(float(r["lufs_ours"]) for r in rows),
            "loudness_max_lufs": max(float(r["lufs_ours"]) for r in rows),
            "loudness_max_true_peak_dbtp": max(float(r["true_peak_dbtp"]) for r in rows),
            "loudness_above_target": sum(float(r["lufs_ours"]) > max(STREAMING_TARGETS_LUFS.values()) for r in rows),
        })
    digits = {"eq_seconds": 1, "phase_deg": 0, "loss_unit_shelf_db": 0, "delay_ms": 1, "phase_l1": 1, "phase_mrstft": 1,
              "delay_l1": 1, "delay_mrstft": 1, "shelf_l1": 1, "shelf_mrstft": 1, "shelf_max_db": 1, "tcn_rf_ms": 1, "unet_input_snr_db": 0,
              "unet_skip_snr_db": 1, "unet_no_skip_snr_db": 1, "a_weighting_max_dev_db": 1,
              "k_weighting_max_dev_db": 3, "a_weighting_max_dev_10k_db": 2, "a_band_lo_hz": 0, "a_band_hi_khz": 0,
              "a_split_khz": 0, "loudness_max_abs_diff_lu": 3, "loudness_min_lufs": 1,
              "loudness_max_lufs": 1, "loudness_max_true_peak_dbtp": 1, "eq_error_start_db": 2, "eq_error_end_db": 2}
    return save_numbers("literature", values, profile, digits={k: digits.get(k, 2) for k in values})
