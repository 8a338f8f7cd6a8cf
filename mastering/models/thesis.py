"""The thesis baseline: a mel-spectrogram U-Net with an LSTM parameter forecaster, Griffin-Lim phase.

The design the Phase 1B model is compared against; it works on magnitudes only. Entry points:
:class:`MelUNetLSTM` (the model; its docstring gives the processing), :func:`griffin_lim`,
:func:`thesis_master` (master a whole signal), :class:`ThesisLoss`, and
:func:`thesis_from_checkpoint` / :func:`thesis_from_state`. Training
(:func:`mastering.training.thesis.fit_or_load_thesis`) uses the same paired data and budget as
Phase 1B.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Sequence

import auraloss
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io import AudioError, resample, to_channels
from ..provenance import safe_torch_load

__all__ = [
    "MelUNetLSTM",
    "ThesisLoss",
    "THESIS_CHECKPOINT_FORMAT",
    "griffin_lim",
    "thesis_from_checkpoint",
    "thesis_from_state",
    "thesis_master",
]

THESIS_CHECKPOINT_FORMAT = "thesis-checkpoint/1"

_MAG_FLOOR = 1e-4  # auraloss clamps STFT power at 1e-8 before its log: the same floor on magnitudes


# -- the model ---------------------------------------------------------------------------------


class _Down(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 5, stride=2, padding=2)
        self.norm = nn.GroupNorm(1, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class _Up(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_channels, out_channels, 5, stride=2, padding=2, output_padding=1)
        self.norm = nn.GroupNorm(1, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class MelUNetLSTM(nn.Module):
    """Mel-spectrogram U-Net gain mask plus LSTM parameter forecaster (the thesis baseline).

    1. :meth:`log_mel`: the STFT magnitude (Hann window of ``n_fft``, hop ``hop``, centred, reflect
       padding) on ``n_mels`` triangular HTK mel bands, in dB: ``[batch, channels, n_mels, frames]``;
    2. a small 2-D U-Net over (band, frame) predicts a gain mask in dB, ``tanh * max_gain_db`` (the
       spectrogram U-Net of Jansson et al., ISMIR 2017: 5x5 stride-2 convolutions with leaky ReLU
       down, transposed convolutions with skip concatenations up; group normalization in place of
       batch normalization, so there is no train/eval gap in short runs);
    3. an LSTM over the frames, the "parameter forecaster", predicts per frame a broadband
       ``gain_db`` (bound ``max_global_gain_db``) and a spectral ``tilt_db`` per octave about 1 kHz
       (bound ``max_tilt_db``);
    4. the band gain ``mask_db + gain_db + tilt_db * log2(f_mel / 1 kHz)`` goes to the STFT grid
       (:meth:`stft_gain_db`) and multiplies the input magnitude; :func:`thesis_master` recovers the
       waveform with :func:`griffin_lim`.

    The output layers of the U-Net and the forecaster start at zero: an untrained model is the
    identity on magnitudes.

    Args:
        sample_rate: the model's rate in Hz (audio at other rates is resampled by :func:`thesis_master`).
        channels: audio channels (1 or 2); the U-Net sees them as image channels.
        n_fft: STFT size (Hann window of the same length).
        hop: STFT hop in samples.
        n_mels: mel bands (HTK scale, ``f_min`` to ``f_max``).
        unet_channels: feature channels of the U-Net's down levels (its depth is their count).
        lstm_hidden: hidden size of the forecaster LSTM.
        max_gain_db: bound of the mask, ``tanh * max_gain_db``.
        max_global_gain_db: bound of the forecaster's broadband gain.
        max_tilt_db: bound of the forecaster's tilt in dB per octave about 1 kHz.
        f_min, f_max: mel range in Hz (``f_max=None``: the Nyquist frequency).
        griffin_lim_iters: default Griffin-Lim iterations of :func:`thesis_master`.

    ``forward(log_mel, magnitude)`` returns the mastered linear magnitude ``[batch, channels,
    n_fft // 2 + 1, frames]``; :meth:`predict` returns the gains it applies.
    """

    def __init__(self, sample_rate: int = 44100, channels: int = 2, n_fft: int = 1024, hop: int = 256,
                 n_mels: int = 48, unet_channels: Sequence[int] = (8, 16), lstm_hidden: int = 32,
                 max_gain_db: float = 12.0, max_global_gain_db: float = 24.0, max_tilt_db: float = 3.0,
                 f_min: float = 0.0, f_max: float | None = None, griffin_lim_iters: int = 32):
        super().__init__()
        import torchaudio.functional as AF  # loaded on use, as everywhere in the package (slow import)

        unet_channels = [int(c) for c in unet_channels]
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        if sample_rate <= 0 or n_fft < 16 or not 0 < hop <= n_fft:
            raise ValueError(f"need sample_rate > 0, n_fft >= 16 and 0 < hop <= n_fft; got {sample_rate}, {n_fft}, {hop}")
        if not unet_channels or min(unet_channels) < 1 or n_mels < 2 or lstm_hidden < 1:
            raise ValueError("unet_channels must be a non-empty list of positive widths, n_mels >= 2, lstm_hidden >= 1")
        if min(max_gain_db, max_global_gain_db, max_tilt_db) < 0 or griffin_lim_iters < 0:
            raise ValueError("gain bounds and griffin_lim_iters must be >= 0")
        f_max = sample_rate / 2 if f_max is None else float(f_max)
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= {sample_rate / 2} Hz, got {f_min}, {f_max}")
        self.config = {"sample_rate": int(sample_rate), "channels": int(channels), "n_fft": int(n_fft),
                       "hop": int(hop), "n_mels": int(n_mels), "unet_channels": unet_channels,
                       "lstm_hidden": int(lstm_hidden), "max_gain_db": float(max_gain_db),
                       "max_global_gain_db": float(max_global_gain_db), "max_tilt_db": float(max_tilt_db),
                       "f_min": float(f_min), "f_max": float(f_max), "griffin_lim_iters": int(griffin_lim_iters)}
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.n_fft, self.hop, self.n_mels = int(n_fft), int(hop), int(n_mels)
        self.max_gain_db, self.max_global_gain_db, self.max_tilt_db = map(float, (max_gain_db, max_global_gain_db, max_tilt_db))
        self.griffin_lim_iters = int(griffin_lim_iters)

        n_freq = self.n_fft // 2 + 1
        fb = AF.melscale_fbanks(n_freq, float(f_min), f_max, self.n_mels, self.sample_rate, norm=None, mel_scale="htk")
        freqs = torch.linspace(0, self.sample_rate / 2, n_freq)
        mel_pts = torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), self.n_mels + 2)
        centers = _mel_to_hz(mel_pts[1:-1])
        interp = fb.clone()
        empty = interp.sum(dim=1) <= 1e-6  # bins no band covers (edges): the nearest band's gain
        nearest = (freqs[empty, None] - centers[None]).abs().argmin(dim=1)
        interp[empty] = 0.0
        interp[empty.nonzero().squeeze(1), nearest] = 1.0
        interp = interp / interp.sum(dim=1, keepdim=True)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.register_buffer("mel_fb", fb, persistent=False)  # [n_freq, n_mels]
        self.register_buffer("mel_to_stft", interp, persistent=False)  # [n_freq, n_mels], rows sum to 1
        self.register_buffer("tilt_octaves", torch.log2(centers.clamp_min(1.0) / 1000.0), persistent=False)

        self.down = nn.ModuleList()
        prev = self.channels
        for width in unet_channels:
            self.down.append(_Down(prev, width))
            prev = width
        self.up = nn.ModuleList()
        for i in range(len(unet_channels) - 1, 0, -1):
            in_ch = unet_channels[i] if i == len(unet_channels) - 1 else 2 * unet_channels[i]
            self.up.append(_Up(in_ch, unet_channels[i - 1]))
        last_in = unet_channels[0] if len(unet_channels) == 1 else 2 * unet_channels[0]
        self.mask_head = nn.ConvTranspose2d(last_in, self.channels, 5, stride=2, padding=2, output_padding=1)
        self.forecaster_in = nn.Linear(self.n_mels, int(lstm_hidden))
        self.forecaster = nn.LSTM(int(lstm_hidden), int(lstm_hidden), batch_first=True)
        self.forecaster_head = nn.Linear(int(lstm_hidden), 2)
        for head in (self.mask_head, self.forecaster_head):  # identity at initialization
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    # -- spectrograms ------------------------------------------------------------------------

    def stft(self, audio: torch.Tensor) -> torch.Tensor:
        """Complex STFT ``[batch, channels, n_fft // 2 + 1, frames]`` of ``[batch, channels, samples]`` audio."""
        if audio.dim() != 3:
            raise ValueError(f"audio must be [batch, channels, samples], got {tuple(audio.shape)}")
        b, c, n = audio.shape
        spec = torch.stft(audio.reshape(b * c, n), self.n_fft, self.hop, window=self.window.to(audio.dtype),
                          center=True, pad_mode="reflect", return_complex=True)
        return spec.reshape(b, c, *spec.shape[-2:])

    def log_mel(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Log-mel features ``[batch, channels, n_mels, frames]`` of a linear STFT magnitude.

        Mel power in dB relative to a full-scale sine's STFT peak, floored at -100 dB and divided by
        20, so typical music lies within about -5..1.
        """
        _check_spec(magnitude, self.n_fft // 2 + 1, "magnitude")
        ref = (self.window.sum() / 2) ** 2
        power = torch.einsum("bcfn,fm->bcmn", magnitude.pow(2), self.mel_fb.to(magnitude.dtype)) / ref
        return 10.0 * torch.log10(power.clamp_min(1e-10)) / 20.0

    # -- prediction --------------------------------------------------------------------------

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        m, n = x.shape[-2:]
        step = 2 ** len(self.down)
        pad_m, pad_n = (-m) % step, (-n) % step
        h = F.pad(x, (0, pad_n, 0, pad_m), mode="replicate") if pad_m or pad_n else x
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()  # the bottleneck is the input of the first up level
        for block in self.up:
            h = torch.cat([block(h), skips.pop()], dim=1)
        return self.mask_head(h)[..., :m, :n]

    def predict(self, log_mel: torch.Tensor) -> dict[str, torch.Tensor]:
        """The gains: ``mask_db`` ``[batch, channels, n_mels, frames]``, ``gain_db`` and ``tilt_db``
        ``[batch, frames]`` (the forecaster), and their sum per band ``mel_gain_db``."""
        if log_mel.dim() != 4 or log_mel.shape[1] != self.channels or log_mel.shape[2] != self.n_mels:
            raise ValueError(f"log_mel must be [batch, {self.channels}, {self.n_mels}, frames], got {tuple(log_mel.shape)}")
        if log_mel.shape[-1] < 1:
            raise ValueError("log_mel has no frames")
        mask_db = self.max_gain_db * torch.tanh(self._unet(log_mel))
        h = torch.tanh(self.forecaster_in(log_mel.mean(dim=1).transpose(1, 2)))  # [batch, frames, hidden]
        h, _ = self.forecaster(h)
        g = torch.tanh(self.forecaster_head(h))  # [batch, frames, 2]
        gain_db = self.max_global_gain_db * g[..., 0]
        tilt_db = self.max_tilt_db * g[..., 1]
        mel_gain_db = (mask_db + gain_db[:, None, None, :]
                       + tilt_db[:, None, None, :] * self.tilt_octaves.to(log_mel.dtype)[None, None, :, None])
        return {"mask_db": mask_db, "gain_db": gain_db, "tilt_db": tilt_db, "mel_gain_db": mel_gain_db}

    def stft_gain_db(self, mel_gain_db: torch.Tensor) -> torch.Tensor:
        """Band gains ``[..., n_mels, frames]`` on the STFT grid ``[..., n_fft // 2 + 1, frames]``.

        Through the filterbank's row-normalized transpose: each STFT bin takes the weighted mean of
        the band gains it feeds, so a constant band gain maps to the same constant on every bin.
        (The Moore-Penrose ``pinv`` of the filterbank, ``torchaudio.transforms.InverseMelScale``'s
        target, spreads a band's value over its bins: +6 dB on all 48 bands of a 1024-point STFT
        comes back as about +0.4 dB at 8 kHz, and is zero where no band reaches.)
        """
        return torch.einsum("...mn,fm->...fn", mel_gain_db, self.mel_to_stft.to(mel_gain_db.dtype))

    def forward(self, log_mel: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        """Mastered linear magnitude: ``magnitude`` times the predicted gain (see the class docstring)."""
        _check_spec(magnitude, self.n_fft // 2 + 1, "magnitude")
        if magnitude.shape[-1] != log_mel.shape[-1] or magnitude.shape[:2] != log_mel.shape[:2]:
            raise ValueError(f"log_mel {tuple(log_mel.shape)} and magnitude {tuple(magnitude.shape)} disagree")
        gain_db = self.stft_gain_db(self.predict(log_mel)["mel_gain_db"])
        return magnitude * torch.pow(10.0, gain_db / 20.0)

    def process_magnitude(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``forward(log_mel(magnitude), magnitude)``."""
        return self(self.log_mel(magnitude), magnitude)


def _hz_to_mel(f: float | torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float32) / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def _check_spec(x: torch.Tensor, n_freq: int, what: str) -> None:
    if x.dim() != 4 or x.shape[2] != n_freq:
        raise ValueError(f"{what} must be [batch, channels, {n_freq}, frames], got {tuple(x.shape)}")


# -- Griffin-Lim -------------------------------------------------------------------------------


def griffin_lim(magnitude: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor | None = None,
                n_iter: int = 32, momentum: float = 0.0, init_phase: torch.Tensor | None = None,
                length: int | None = None) -> torch.Tensor:
    """Waveform whose STFT magnitude approximates ``magnitude`` (Griffin & Lim 1984).

    Each iteration inverts the current complex estimate (overlap-add), takes the STFT of the
    result (the projection onto consistent spectrograms) and keeps its phase with the target
    magnitude. ``momentum`` > 0 is the fast variant of Perraudin et al. 2013 (0 is the original).
    Same STFT conventions and update as ``torchaudio.functional.griffinlim`` (centred, reflect
    padding), plus a chosen initial phase.

    Args:
        magnitude: linear magnitude ``[..., n_fft // 2 + 1, frames]``.
        n_fft, hop: STFT size and hop.
        window: analysis/synthesis window (default Hann of ``n_fft``).
        n_iter: iterations (0: the initial phase as it is).
        momentum: in ``[0, 1)``.
        init_phase: initial phase in radians, same shape as ``magnitude`` (default zero phase).
        length: output length in samples.

    Returns:
        ``[..., samples]`` waveform.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if n_iter < 0:
        raise ValueError(f"n_iter must be >= 0, got {n_iter}")
    if magnitude.dim() < 2 or magnitude.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"magnitude must be [..., {n_fft // 2 + 1}, frames], got {tuple(magnitude.shape)}")
    window = torch.hann_window(n_fft, dtype=magnitude.dtype, device=magnitude.device) if window is None else window
    shape = magnitude.shape
    mag = magnitude.reshape(-1, *shape[-2:])
    if init_phase is None:
        angles = torch.ones_like(mag, dtype=torch.complex64 if mag.dtype == torch.float32 else torch.complex128)
    else:
        if init_phase.shape != shape:
            raise ValueError(f"init_phase {tuple(init_phase.shape)} must match magnitude {tuple(shape)}")
        angles = torch.polar(torch.ones_like(mag), init_phase.reshape(mag.shape).to(mag.dtype))
    alpha = momentum / (1.0 + momentum)
    previous = None
    spec = mag * angles
    for _ in range(n_iter):
        signal = torch.istft(spec, n_fft, hop, window=window, length=length)
        rebuilt = torch.stft(signal, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
        update = rebuilt - alpha * previous if (alpha and previous is not None) else rebuilt
        spec = update * (mag / (update.abs() + 1e-16))  # the target magnitude with the update's phase
        previous = rebuilt
    out = torch.istft(spec, n_fft, hop, window=window, length=length)
    return out.reshape(*shape[:-2], out.shape[-1])


# -- loss --------------------------------------------------------------------------------------


class ThesisLoss(nn.Module):
    """L1 distance of log magnitudes plus spectral convergence (Arik et al. 2018; auraloss).

    Magnitudes are floored at 1e-4 (auraloss's power floor of 1e-8) before the log.

    Args:
        w_log_mag: weight of the log-magnitude L1 distance.
        w_sc: weight of spectral convergence (0 disables it).
    """

    def __init__(self, w_log_mag: float = 1.0, w_sc: float = 1.0):
        super().__init__()
        if w_log_mag < 0 or w_sc < 0 or w_log_mag + w_sc == 0:
            raise ValueError(f"weights must be >= 0 and not both 0, got {w_log_mag}, {w_sc}")
        self.w_log_mag, self.w_sc = float(w_log_mag), float(w_sc)
        self.log_mag = auraloss.freq.STFTMagnitudeLoss(log=True, distance="L1")
        self.sc = auraloss.freq.SpectralConvergenceLoss()

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002
        if input.shape != target.shape:
            raise ValueError(f"input {tuple(input.shape)} and target {tuple(target.shape)} differ in shape")
        x, y = input.clamp_min(_MAG_FLOOR), target.clamp_min(_MAG_FLOOR)
        loss = self.w_log_mag * self.log_mag(x, y)
        if self.w_sc:
            loss = loss + self.w_sc * self.sc(x, y)
        return loss


# -- checkpoints -------------------------------------------------------------------------------


def thesis_from_state(state: dict[str, Any]) -> MelUNetLSTM:
    """The :class:`MelUNetLSTM` (eval mode) of a loaded thesis checkpoint (``model_config``, ``model_state``)."""
    model = MelUNetLSTM(**state["model_config"])
    model.load_state_dict(state["model_state"])
    return model.eval()


def thesis_from_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> MelUNetLSTM:
    """Rebuild a :class:`MelUNetLSTM` from a ``best.pt``/``last.pt`` of
    :func:`mastering.training.thesis.fit_or_load_thesis`.

    Raises:
        ValueError: not a thesis checkpoint, or one holding more than tensors and plain data.
    """
    state = safe_torch_load(path, map_location=map_location)
    if not isinstance(state, dict) or state.get("format") != THESIS_CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a checkpoint of the thesis baseline")
    return thesis_from_state(state)


# -- mastering audio ------------------------------------------------------------------------------


def _check_audio(audio: Any, sample_rate: Any) -> np.ndarray:
    if isinstance(audio, torch.Tensor):
        audio = audio.detach().cpu().numpy()
    if not isinstance(audio, np.ndarray):
        raise AudioError(f"audio must be a NumPy array [channels, samples], got {type(audio).__name__}")
    if audio.ndim != 2 or audio.shape[0] not in (1, 2):
        raise AudioError(f"audio must be [channels, samples] with 1 or 2 channels, got shape {audio.shape}")
    if audio.shape[1] == 0:
        raise AudioError("audio is empty (0 samples)")
    if not np.issubdtype(audio.dtype, np.floating):
        raise AudioError(f"audio must be floating point, got {audio.dtype}")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"audio holds {int(np.size(audio) - np.count_nonzero(np.isfinite(audio)))} NaN/Inf sample(s)")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    return audio


@torch.no_grad()
def _master_chunk(model: MelUNetLSTM, x: torch.Tensor, init: str, n_iter: int, momentum: float) -> torch.Tensor:
    length = x.shape[-1]
    if length < model.n_fft:  # the centred STFT's reflect padding needs more than half a window
        x = F.pad(x, (0, model.n_fft - length))
    spec = model.stft(x[None])
    with warnings.catch_warnings():
        # oneDNN's LSTM builds a kernel per sequence length, seconds each on a CPU: chunks vary in length
        warnings.simplefilter("ignore", UserWarning)
        with torch.backends.mkldnn.flags(enabled=False):
            magnitude = model.process_magnitude(spec.abs())
    phase = spec.angle() if init == "input" else None
    y = griffin_lim(magnitude[0], model.n_fft, model.hop, model.window, n_iter=n_iter, momentum=momentum,
                    init_phase=None if phase is None else phase[0], length=x.shape[-1])
    return y[..., :length]


def thesis_master(model: MelUNetLSTM, audio: np.ndarray, sample_rate: int, chunk_s: float = 10.0, *,
                  init: str = "zeros", n_iter: int | None = None, momentum: float = 0.0,
                  overlap_s: float = 0.5) -> np.ndarray:
    """Master ``audio`` ``[channels, samples]`` with the thesis baseline; returns the same shape.

    The audio is brought to the model's rate and channel count (band-limited resampling,
    :func:`mastering.io.resample`; mono duplicated to stereo and averaged back), cut into chunks of
    ``chunk_s`` seconds overlapping by ``overlap_s``, each chunk's magnitude mastered by the model
    and its waveform recovered with :func:`griffin_lim`, and the chunks joined with a raised-cosine
    crossfade over the overlaps. Phase retrieval is per chunk, so the crossfade mixes two
    independent phase estimates (a brief dip in coherence the thesis's pipeline has as well).
    The output is not limited: it may exceed full scale where the model raises the level.

    Args:
        model: a :class:`MelUNetLSTM`.
        audio: float ``[channels, samples]`` with 1 or 2 channels.
        sample_rate: rate of ``audio`` in Hz.
        chunk_s: chunk length in seconds.
        init: ``"zeros"`` (the thesis's plain Griffin-Lim from zero phase) or ``"input"`` (the
            variant starting from the input's phase).
        n_iter: Griffin-Lim iterations (default: the model's ``griffin_lim_iters``).
        momentum: 0 (plain) or the fast Griffin-Lim momentum in ``(0, 1)``.
        overlap_s: crossfade length in seconds (< ``chunk_s / 2``).

    Raises:
        ValueError (:class:`mastering.io.AudioError` for the audio): NaN/Inf, empty, not
            ``[channels, samples]`` with 1 or 2 channels, non-float, bad rate or settings.
    """
    audio = _check_audio(audio, sample_rate)
    if init not in ("zeros", "input"):
        raise ValueError(f"init must be 'zeros' or 'input', got {init!r}")
    if not chunk_s > 0 or not 0 <= overlap_s < chunk_s / 2:
        raise ValueError(f"need chunk_s > 0 and 0 <= overlap_s < chunk_s / 2, got {chunk_s}, {overlap_s}")
    n_iter = model.griffin_lim_iters if n_iter is None else int(n_iter)
    model = model.eval()
    device = next(model.parameters()).device
    channels, n = audio.shape
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    x = resample(to_channels(x, model.channels), int(sample_rate), model.sample_rate).to(device)
    total = x.shape[-1]
    chunk = max(int(round(chunk_s * model.sample_rate)), model.n_fft)
    fade = min(int(round(overlap_s * model.sample_rate)), chunk // 2 - 1) if overlap_s > 0 else 0
    out = torch.zeros_like(x)
    start = 0
    while True:
        stop = min(start + chunk, total)
        y = _master_chunk(model, x[:, start:stop], init, n_iter, momentum)
        w = torch.ones(stop - start, device=device)
        if start > 0 and fade:
            w[:fade] = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(fade, device=device) + 0.5) / fade)
        if stop < total and fade:
            w[-fade:] = 0.5 + 0.5 * torch.cos(torch.pi * (torch.arange(fade, device=device) + 0.5) / fade)
        out[:, start:stop] += y * w
        if stop >= total:
            break
        start = stop - fade
    y = resample(out.cpu(), model.sample_rate, int(sample_rate))
    y = to_channels(y, channels)
    if y.shape[-1] < n:
        y = F.pad(y, (0, n - y.shape[-1]))
    return y[..., :n].numpy().astype(audio.dtype, copy=False)
