"""The Phase 1 mastering model: encoder -> controller -> processors -> loudness target -> limiter.

:class:`MasteringModel` (diagram in its docstring) combines :mod:`mastering.models.encoder`, the
decoders of :mod:`mastering.models.decoders` and three switchable final stages,
:class:`DynamicsController` (compressor), :class:`LoudnessTarget` and :class:`TruePeakLimiter`.
:func:`build_model` builds a phase (``"1a"``, ``"1b"``, ``"1c"``) by name;
:func:`model_from_checkpoint` rebuilds a model from a checkpoint, which carries its constructor
arguments.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..dsp.dynamics import Compressor, compressor, limiter
from ..dsp.loudness import loudness
from ..io import resample
from ..provenance import safe_torch_load
from .decoders import AdaptiveParametricDecoder, ParametricDecoder, ResidualDecoder, _logit
from .encoder import AudioEncoder
from .unet import count_parameters

__all__ = [
    "PHASES",
    "DESIGN_PARAMETERS",
    "DynamicsController",
    "LoudnessTarget",
    "TruePeakLimiter",
    "MasteringModel",
    "build_model",
    "model_from_checkpoint",
    "parameter_counts",
]

PHASES: dict[str, dict[str, Any]] = {
    "1a": {"decoder": "parametric", "num_bands": 5, "residual": False},
    "1b": {"decoder": "parametric", "num_bands": 5, "residual": True},
    "1c": {"decoder": "adaptive", "num_bands": 10, "residual": True},
}
"""What distinguishes the phases: the EQ decoder, its band count, and the Wave-U-Net residual."""

DESIGN_PARAMETERS: dict[str, float] = {"1a": 1.4e6, "1b": 2.2e6, "1c": 2.22e6}
"""Parameter counts the architecture document gives for each phase (approximate)."""



def _full_precision(x: torch.Tensor):
    """Autocast off on ``x``'s device: the DSP stages (IIR filters, compressor, loudness) run in
    float32 or float64 even inside a mixed-precision training step; only the networks use AMP."""
    return torch.autocast(device_type=x.device.type, enabled=False)

class DynamicsController(nn.Module):
    """Grey-box dynamics: ``z`` -> the six normalized parameters of :class:`mastering.dsp.dynamics.Compressor`.

    Outputs go through a sigmoid to [0, 1] and :meth:`Compressor.denormalize` to physical values
    (``threshold_db``, ``ratio``, ``attack_ms``, ``release_ms``, ``knee_db``, ``makeup_gain_db``).
    The output layer starts at zero weight with biases giving threshold -12 dBFS, ratio 1.06,
    attack 10 ms, release 100 ms, knee 6 dB, makeup 0.2 dB: a nearly transparent compressor.

    Args:
        latent_dim: size of ``z``.
        hidden: width of the hidden layer.
    """

    INITIAL = {"threshold_db": -12.0, "ratio": 1.06, "attack_ms": 10.0, "release_ms": 100.0, "knee_db": 6.0,
               "makeup_gain_db": 0.2}

    def __init__(self, latent_dim: int = 512, hidden: int = 64):
        super().__init__()
        self.config = dict(latent_dim=latent_dim, hidden=hidden)
        self.compressor = Compressor(detector="peak", stereo_link=True)
        n = self.compressor.num_params
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.PReLU(hidden), nn.Linear(hidden, n))
        initial01 = self.compressor.normalize(**self.INITIAL)[0]
        with torch.no_grad():
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.copy_(torch.tensor([_logit(float(u)) for u in initial01]))

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Compressor parameters, each ``[batch]``."""
        return self.compressor.denormalize(torch.sigmoid(self.net(z)))

    @staticmethod
    def apply_compressor(x: torch.Tensor, sample_rate: int, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Compress ``x`` ``[batch, channels, samples]`` with ``params`` from :meth:`forward`."""
        return compressor(x, sample_rate, **params)


class LoudnessTarget(nn.Module):
    """Differentiable gain to an integrated loudness (ITU-R BS.1770-4, gated).

    ``gain_db = clamp(target_lufs - L(x), -max_gain_db, max_gain_db)``; the clamp keeps near-silent
    input from receiving an absurd gain.

    Args:
        target_lufs: default target in LUFS.
        max_gain_db: largest boost or cut.
    """

    def __init__(self, target_lufs: float = -14.0, max_gain_db: float = 40.0):
        super().__init__()
        self.target_lufs = float(target_lufs)
        self.max_gain_db = float(max_gain_db)

    def gain_db(self, x: torch.Tensor, sample_rate: int, target_lufs: float | torch.Tensor | None = None) -> torch.Tensor:
        """``[batch]`` gain in dB that brings ``x`` to ``target_lufs`` (default: the module's)."""
        target = self.target_lufs if target_lufs is None else target_lufs
        target = torch.as_tensor(target, dtype=x.dtype, device=x.device)
        measured = loudness(x, sample_rate)
        return (target - measured).clamp(-self.max_gain_db, self.max_gain_db)

    def forward(self, x: torch.Tensor, sample_rate: int,
                target_lufs: float | torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scaled audio, [batch] gain in dB)``."""
        gain = self.gain_db(x, sample_rate, target_lufs)
        return x * torch.pow(10.0, gain / 20.0)[:, None, None], gain


class TruePeakLimiter(nn.Module):
    """Final true-peak limiting (:func:`mastering.dsp.dynamics.limiter`); not differentiable.

    Args:
        true_peak_dbtp: ceiling in dBTP.
        release_ms: release time constant.
        lookahead_ms: look-ahead.
    """

    def __init__(self, true_peak_dbtp: float = -1.0, release_ms: float = 50.0, lookahead_ms: float = 5.0):
        super().__init__()
        self.true_peak_dbtp = float(true_peak_dbtp)
        self.release_ms = float(release_ms)
        self.lookahead_ms = float(lookahead_ms)

    @torch.no_grad()
    def forward(self, x: torch.Tensor, sample_rate: int, true_peak_dbtp: float | None = None) -> torch.Tensor:
        ceiling = self.true_peak_dbtp if true_peak_dbtp is None else float(true_peak_dbtp)
        return limiter(x, sample_rate, ceiling_dbtp=ceiling, release_ms=self.release_ms,
                       lookahead_ms=self.lookahead_ms)


class MasteringModel(nn.Module):
    """Encoder, controller (EQ decoder + optional dynamics head), processors and final stages.

    ::

        x ──► AudioEncoder ──► z ──► decoder (1A: 5 bands; 1C: 10 gated bands) ──► EQ params
        │                      ├──► DynamicsController ─────────────────────────► compressor params
        │                      └──► (FiLM)
        ├──► parametric EQ ───────────────────────────────┐
        └──► ResidualDecoder (1B, 1C: Wave-U-Net + FiLM) ─┴─(+)─► compressor ─► loudness target ─► limiter

    The compressor starts nearly transparent; the loudness stage brings the output to
    ``target_lufs`` (in training the reference master's loudness, so the losses compare spectra
    and dynamics rather than level); the limiter keeps the 4x-oversampled true peak at or below
    ``true_peak_dbtp`` and runs only at inference (``forward(limit=True)``).

    Args:
        phase: ``"1a"``, ``"1b"`` or ``"1c"`` (see :data:`PHASES`); sets the defaults of ``decoder``,
            ``num_bands`` and ``residual``.
        sample_rate: the model's sample rate in Hz.
        channels: audio channels (2).
        latent_dim: size of ``z``.
        encoder: keyword arguments of :class:`AudioEncoder` (``stem_channels``, ``block_channels``...).
        decoder: ``"parametric"`` or ``"adaptive"``.
        num_bands: EQ bands.
        decoder_hidden: width of the decoder's MLP trunk.
        residual: use the Wave-U-Net residual path.
        residual_channels: feature channels of the Wave-U-Net levels.
        dynamics: use the grey-box compressor stage.
        dynamics_hidden: width of the dynamics controller.
        loudness: use the loudness-target stage.
        limiter: use the true-peak limiter at inference.
        target_lufs: default loudness target.
        true_peak_dbtp: default true-peak ceiling.
        eq_mode: ``"exact"`` (recursive IIR), ``"fast"`` (frequency sampling) or ``"auto"``: exact
            for CPU tensors (the compiled IIR is the faster there) and fast on an accelerator.
        gate_bias: initial band-gate location (adaptive decoder; 3: every band starts open at 0 dB).
    """

    def __init__(
        self,
        phase: str = "1a",
        sample_rate: int = 44100,
        channels: int = 2,
        latent_dim: int = 512,
        encoder: dict[str, Any] | None = None,
        decoder: str | None = None,
        num_bands: int | None = None,
        decoder_hidden: int = 256,
        residual: bool | None = None,
        residual_channels: tuple[int, ...] | list[int] = (24, 48, 72),
        dynamics: bool = True,
        dynamics_hidden: int = 64,
        loudness: bool = True,
        limiter: bool = True,
        target_lufs: float = -14.0,
        true_peak_dbtp: float = -1.0,
        eq_mode: str = "auto",
        gate_bias: float = 3.0,
    ):
        super().__init__()
        phase = str(phase).lower()
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; choose one of {sorted(PHASES)}")
        defaults = PHASES[phase]
        decoder = defaults["decoder"] if decoder is None else decoder
        num_bands = defaults["num_bands"] if num_bands is None else int(num_bands)
        residual = defaults["residual"] if residual is None else bool(residual)
        if eq_mode not in ("auto", "exact", "fast"):
            raise ValueError(f"eq_mode must be 'auto', 'exact' or 'fast', got {eq_mode!r}")
        if decoder not in ("parametric", "adaptive"):
            raise ValueError(f"decoder must be 'parametric' or 'adaptive', got {decoder!r}")
        if int(sample_rate) <= 0 or int(channels) not in (1, 2):
            raise ValueError(f"need a positive sample_rate and 1 or 2 channels, got {sample_rate}, {channels}")
        encoder = dict(encoder or {})
        encoder.pop("in_channels", None)
        encoder.pop("latent_dim", None)
        encoder.pop("sample_rate", None)
        self.config = dict(
            phase=phase, sample_rate=int(sample_rate), channels=int(channels), latent_dim=int(latent_dim),
            encoder=encoder, decoder=decoder, num_bands=num_bands, decoder_hidden=int(decoder_hidden),
            residual=residual, residual_channels=list(residual_channels), dynamics=bool(dynamics),
            dynamics_hidden=int(dynamics_hidden), loudness=bool(loudness), limiter=bool(limiter),
            target_lufs=float(target_lufs), true_peak_dbtp=float(true_peak_dbtp), eq_mode=eq_mode,
            gate_bias=float(gate_bias),
        )
        self.phase = phase
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.encoder = AudioEncoder(in_channels=self.channels, latent_dim=latent_dim, sample_rate=self.sample_rate,
                                    **encoder)
        self.eq_mode = eq_mode
        module_mode = "exact" if eq_mode == "auto" else eq_mode
        if decoder == "adaptive":
            self.decoder = AdaptiveParametricDecoder(latent_dim, num_bands, decoder_hidden, eq_mode=module_mode,
                                                     gate_bias=gate_bias)
        else:
            self.decoder = ParametricDecoder(latent_dim, num_bands, decoder_hidden, eq_mode=module_mode)
        self.residual = ResidualDecoder(self.channels, latent_dim, residual_channels) if residual else None
        self.dynamics = DynamicsController(latent_dim, dynamics_hidden) if dynamics else None
        self.loudness = LoudnessTarget(target_lufs) if loudness else None
        self.limiter = TruePeakLimiter(true_peak_dbtp) if limiter else None

    # -- the three steps -------------------------------------------------------------------

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] != self.channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected [batch, {self.channels}, samples] audio, got {shape}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``z`` ``[batch, latent_dim]`` of audio at the model's rate."""
        self._check(x)
        return self.encoder(x)

    def predict(self, z: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """The controller: ``{"eq": {...}, "dynamics": {...}}`` (``dynamics`` only when the stage is on)."""
        params = {"eq": self.decoder(z)}
        if self.dynamics is not None:
            params["dynamics"] = self.dynamics(z)
        # Processors design their filters in float32/64: undo autocast's half precision here.
        return {stage: {k: v.float() for k, v in p.items()} for stage, p in params.items()}

    def process(
        self,
        x: torch.Tensor,
        params: dict[str, dict[str, torch.Tensor]],
        z: torch.Tensor | None = None,
        sample_rate: int | None = None,
        eq_mode: str | None = None,
        residual_scale: float = 1.0,
    ) -> dict[str, torch.Tensor]:
        """Apply the processors (EQ + residual, then the compressor) to ``x`` at ``sample_rate``.

        The parametric stages work at any rate, so they run at ``sample_rate`` (default: the
        model's); the Wave-U-Net residual runs at the model rate, resampled in and out.
        ``residual_scale`` multiplies the residual before it joins the EQ path (``mastering master
        --intensity``).

        Returns:
            ``{"eq": EQ path, "residual": residual (if any), "output": after dynamics}``, each
            ``[batch, channels, samples]``. No loudness stage or limiter here.
        """
        self._check(x)
        sample_rate = self.sample_rate if sample_rate is None else int(sample_rate)
        mode = eq_mode or self.eq_mode
        if mode == "auto":
            mode = "exact" if x.device.type == "cpu" else "fast"
        with _full_precision(x):  # recursive filters and the compressor: never in half precision
            out = {"eq": self.decoder.equalize(x.float(), sample_rate, params["eq"], mode=mode)}
        y = out["eq"]
        if self.residual is not None:
            if z is None:
                raise ValueError("the residual path needs z (from encode)")
            if sample_rate == self.sample_rate:
                r = self.residual(x, z, self.sample_rate)
            else:
                r = self.residual(resample(x, sample_rate, self.sample_rate), z, self.sample_rate)
                r = resample(r, self.sample_rate, sample_rate)
                r = torch.nn.functional.pad(r, (0, max(0, x.shape[-1] - r.shape[-1])))[..., : x.shape[-1]]
            out["residual"] = r.float() * residual_scale
            y = y + out["residual"]
        if self.dynamics is not None:
            with _full_precision(y):
                y = self.dynamics.apply_compressor(y, sample_rate, params["dynamics"])
        out["output"] = y
        return out

    def forward(
        self,
        x: torch.Tensor,
        target_lufs: float | torch.Tensor | None = None,
        limit: bool = False,
    ) -> dict[str, Any]:
        """Master ``x`` ``[batch, channels, samples]`` at the model rate.

        Args:
            x: input audio.
            target_lufs: loudness target of the loudness stage, a number or ``[batch]`` (training
                passes the reference's loudness); ``None`` uses the model's ``target_lufs``.
            limit: apply the true-peak limiter (not differentiable; when the stage is on).

        Returns:
            ``{"output", "processed" (before loudness/limiter), "eq", "residual"?, "params", "z",
            "loudness_gain_db"?}``.
        """
        z = self.encode(x)
        params = self.predict(z)
        out: dict[str, Any] = self.process(x, params, z)
        out["processed"] = out["output"]
        if self.loudness is not None:
            with _full_precision(out["output"]):
                out["output"], out["loudness_gain_db"] = self.loudness(out["output"], self.sample_rate, target_lufs)
        if limit and self.limiter is not None:
            out["output"] = self.limiter(out["output"], self.sample_rate)
        out["params"] = params
        out["z"] = z
        return out

    def regularization(self, params: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Decoder-specific regularizers (1C: ``sparsity``, ``decisiveness``)."""
        return self.decoder.regularization(params["eq"])

    def describe(self) -> str:
        """One line: phase, stages and parameter count."""
        stages = ["EQ x%d (%s)" % (self.decoder.num_bands, self.config["decoder"])]
        stages += [name for name, on in (("residual U-Net", self.residual is not None),
                                         ("compressor", self.dynamics is not None),
                                         ("loudness target", self.loudness is not None),
                                         ("true-peak limiter", self.limiter is not None)) if on]
        return f"phase {self.phase}: {' + '.join(stages)}; {count_parameters(self) / 1e6:.2f} M parameters"


def build_model(phase: str = "1a", **cfg: Any) -> MasteringModel:
    """Build the model of a phase; ``cfg`` overrides :class:`MasteringModel`'s arguments.

    Example:
        ``build_model("1b", encoder={"stem_channels": 32, "block_channels": [32, 48, 64, 64]},
        latent_dim=64)`` is a small 1B model for CPU smoke runs.
    """
    return MasteringModel(phase=phase, **cfg)


def parameter_counts(phase: str, **cfg: Any) -> dict[str, int]:
    """Trainable parameters of each component of a phase's model (and ``total``)."""
    model = build_model(phase, **cfg)
    parts = {"encoder": model.encoder, "decoder": model.decoder, "residual": model.residual,
             "dynamics": model.dynamics}
    counts = {name: (count_parameters(m) if m is not None else 0) for name, m in parts.items()}
    counts["total"] = count_parameters(model)
    return counts


def model_from_checkpoint(path_or_state: str | Path | dict[str, Any], map_location: str | torch.device = "cpu",
                          **overrides: Any) -> MasteringModel:
    """Rebuild a trained model from a checkpoint written by :mod:`mastering.training` (eval mode).

    Args:
        path_or_state: checkpoint file or its loaded dictionary.
        map_location: device for the weights.
        **overrides: constructor arguments to change (e.g. ``eq_mode="exact"``); only those that
            do not change the set of weights.

    Raises:
        ValueError: when the file is not a mastering-model checkpoint or holds more than tensors and
            plain data (it is loaded with ``torch.load(weights_only=True)``: loading runs no code).
    """
    if isinstance(path_or_state, (str, Path)):
        path = Path(path_or_state)
        if not path.is_file():
            raise ValueError(f"checkpoint {path} does not exist")
        state = safe_torch_load(path, map_location=map_location)
    else:
        state = path_or_state
    if not isinstance(state, dict) or "model_config" not in state or "model_state" not in state:
        raise ValueError("not a mastering-model checkpoint (no model_config/model_state); train one with "
                         "`python -m mastering.training --phase 1a`")
    config = copy.deepcopy(state["model_config"])
    config.update(overrides)
    try:
        model = MasteringModel(**config)
        model.load_state_dict(state["model_state"])
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"the checkpoint does not fit this version of the model code ({str(exc).splitlines()[0]} "
                         f"...); retrain it or check out the commit it was trained with") from None
    model.eval()
    return model

