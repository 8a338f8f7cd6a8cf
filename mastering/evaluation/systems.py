"""The systems compared in notebook 06: Phase 1A-1C and the baselines a user would pick instead.

Every system (:class:`System`) masters through one method, ``master(audio, sample_rate,
target_lufs)``, and every one except the unprocessed input (:class:`IdentitySystem`, the reference
point) ends in the same loudness finish (:func:`finish_loudness`, i.e.
:func:`mastering.pipeline.finish_audio`: gain to the target, true-peak limiter, retried): the
comparison is of what a system does besides level. The systems: :class:`IdentitySystem`,
:class:`LoudnessNormSystem`, :class:`StaticEQSystem` (fitted by :func:`fit_static_eq`),
:class:`MatcheringSystem` (one reference) and :class:`MatcheringArm` (a reference per test excerpt:
same album or oracle), :class:`Phase1System`, and the spectrogram baselines
:class:`ThesisSystem` (our re-implementation of a U-Net+LSTM spectrogram model, Griffin-Lim or the
input's phase), :class:`GriffinLimFloorSystem` (the input through STFT magnitude and Griffin-Lim),
and :class:`BandRegressionEQSystem`, a blind band EQ whose curve a regressor predicts from the input's
own 1/3-octave balance (:func:`fit_predictor`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from scipy import signal

from ..io import load_audio, save_audio, to_channels
from ..models.thesis import MelUNetLSTM, thesis_master
from ..pipeline import finish_audio, load_model, master_audio
from ..training.thesis import fit_or_load_thesis
from .metrics import match_loudness, third_octave_levels_db

__all__ = [
    "System",
    "IdentitySystem",
    "LoudnessNormSystem",
    "StaticEQSystem",
    "MatcheringSystem",
    "MatcheringArm",
    "Phase1System",
    "ThesisSystem",
    "GriffinLimFloorSystem",
    "finish_loudness",
    "fit_static_eq",
    "PREDICTORS",
    "band_levels",
    "band_corrections",
    "fit_predictor",
    "BandRegressionEQSystem",
]


def _as_tensor(audio, name: str = "audio") -> torch.Tensor:
    t = audio if isinstance(audio, torch.Tensor) else torch.as_tensor(np.asarray(audio))
    if t.dim() != 2 or t.shape[0] not in (1, 2) or t.shape[-1] == 0:
        raise ValueError(f"{name} must be [channels, samples] with 1 or 2 channels, got {tuple(t.shape)}")
    if not torch.is_floating_point(t) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite floating-point audio")
    return t.detach().cpu().float()


def _fit_length(y: torch.Tensor, n: int, channels: int) -> torch.Tensor:
    """Crop or zero-pad ``y`` ``[channels, samples]`` to ``n`` samples and ``channels`` channels."""
    y = to_channels(torch.as_tensor(y).float(), channels)
    if y.shape[-1] < n:
        y = torch.nn.functional.pad(y, (0, n - y.shape[-1]))
    return y[..., :n].contiguous()


def finish_loudness(x, sample_rate: int, target_lufs: float, true_peak_dbtp: float = -1.0) -> torch.Tensor:
    """``x`` ``[channels, samples]`` through the chain's loudness finish (:func:`mastering.pipeline.finish_audio`:
    gain to ``target_lufs``, true-peak limiter, retried when limiting cost loudness); silence unchanged."""
    x = _as_tensor(x)
    return torch.from_numpy(finish_audio(x.double().numpy(), int(sample_rate), target_lufs, true_peak_dbtp)).float()


class System:
    """A mastering system: ``name`` (key), ``label`` (for tables), ``group`` (``proposed``,
    ``baseline``, ``spectrogram`` or ``oracle``), ``finished`` and :meth:`master`.

    ``master(audio, sample_rate, target_lufs)`` takes ``[channels, samples]`` float audio and
    returns audio of the same shape, sample-aligned with the input. ``target_lufs`` is the loudness
    the evaluation asks for (the original master's own). Every system with ``finished`` ends in the
    same loudness finish as ``mastering master`` (:func:`finish_loudness`, i.e.
    :func:`mastering.pipeline.finish_audio` and its :func:`mastering.pipeline.limit_to_target`):
    gain to ``target_lufs`` and the true-peak limiter at ``true_peak_dbtp``, so each reaches the
    target equally well and differs only in what it does besides level. Only
    :class:`IdentitySystem`, the unprocessed input kept as the reference point, is not finished.

    :meth:`for_pair` returns the system to run on one test pair (a system whose setting depends on
    the excerpt, such as matchering's reference, binds it there); :attr:`last_warnings` holds what
    the last :meth:`master` call warned about (matchering's warnings; empty elsewhere)."""

    name = "system"
    label = "system"
    group = "baseline"
    finished = True
    devices: tuple[str, ...] = ("cpu",)
    last_warnings: tuple[str, ...] = ()

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        raise RuntimeError(f"{type(self).__name__} does not define master()")  # pragma: no cover

    def for_pair(self, pair: Mapping[str, Any]) -> "System":
        """The system to master ``pair`` (a :func:`mastering.evaluation.benchmark.load_test_pairs` item) with."""
        return self

    def info(self) -> dict[str, Any]:
        """What the tables say about the system (run, reference, settings)."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class IdentitySystem(System):
    """Do nothing: the degraded input as it is (not finished; the reference point of the tables)."""
    name, label, finished = "identity", "input, unprocessed", False

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        return _as_tensor(audio).clone()


class LoudnessNormSystem(System):
    """Loudness normalisation only: the input through the loudness finish and nothing else
    (:func:`mastering.pipeline.finish_audio`)."""
    name, label = "loudnorm", "input + finish (loudness norm.)"

    def __init__(self, true_peak_dbtp: float = -1.0):
        self.true_peak_dbtp = float(true_peak_dbtp)

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        return finish_loudness(audio, sample_rate, target_lufs, self.true_peak_dbtp)


def _smooth_octave_fraction(freqs_hz: np.ndarray, values: np.ndarray, fraction: float = 3.0) -> np.ndarray:
    """Mean of ``values`` over a 1/``fraction``-octave window around each frequency (log axis)."""
    out = np.empty_like(values)
    half = 2.0 ** (1.0 / (2.0 * fraction))
    for i, f in enumerate(freqs_hz):
        if f <= 0:
            out[i] = values[i]
            continue
        sel = (freqs_hz >= f / half) & (freqs_hz <= f * half)
        out[i] = values[sel].mean()
    return out


def fit_static_eq(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], sample_rate: int, n_fft: int = 4096,
                  max_gain_db: float = 12.0) -> dict[str, Any]:
    """The mean EQ correction over (degraded, mastered) pairs: ``mean_i [P_m,i(f) - P_d,i(f)]`` in dB.

    Each pair's degraded signal is first brought to the mastered one's integrated loudness, so the
    curve is spectral balance only (level is the loudness stage's job). Power spectra are Welch
    estimates (Hann, ``n_fft``, 50 % overlap, channels summed); the mean curve is smoothed over 1/3
    octave and clipped to +-``max_gain_db``.

    Args:
        pairs: ``(degraded, mastered)`` ``[channels, samples]`` tensors.
        sample_rate: their rate.

    Returns:
        ``{"freqs_hz", "gain_db", "items", "sample_rate"}``.
    """

    if len(pairs) == 0:
        raise ValueError("fit_static_eq needs at least one (degraded, mastered) pair")
    curves = []
    for degraded, mastered in pairs:
        d = match_loudness(degraded, mastered, sample_rate)[0].numpy()
        m = torch.as_tensor(mastered, dtype=torch.float64).numpy()
        nper = min(int(n_fft), m.shape[-1])
        freqs, pd_ = signal.welch(d, fs=sample_rate, nperseg=nper, noverlap=nper // 2, detrend=False, axis=-1)
        _, pm = signal.welch(m, fs=sample_rate, nperseg=nper, noverlap=nper // 2, detrend=False, axis=-1)
        tiny = 1e-20
        curves.append(10.0 * np.log10((pm.sum(0) + tiny) / (pd_.sum(0) + tiny)))
    mean = np.mean(curves, axis=0)
    gain = np.clip(_smooth_octave_fraction(freqs, mean), -max_gain_db, max_gain_db)
    return {"freqs_hz": freqs, "gain_db": gain, "items": len(pairs), "sample_rate": int(sample_rate)}


class StaticEQSystem(System):
    """One fixed EQ (the training set's mean correction, :func:`fit_static_eq`) + gain + limiter.

    The curve is realised as a linear-phase FIR (``numtaps`` odd, :func:`scipy.signal.firwin2`)
    applied with its delay compensated, so the output stays sample-aligned with the input.
    """

    name, label = "static_eq", "static mean EQ"

    def __init__(self, curve: dict[str, Any], true_peak_dbtp: float = -1.0, numtaps: int = 2047):
        if numtaps % 2 == 0:
            raise ValueError(f"numtaps must be odd (a type-I linear-phase FIR), got {numtaps}")
        self.curve = curve
        self.true_peak_dbtp = float(true_peak_dbtp)
        self.numtaps = int(numtaps)
        self._fir: dict[int, np.ndarray] = {}

    def fir(self, sample_rate: int) -> np.ndarray:
        """The FIR taps at ``sample_rate`` (the curve is held flat beyond its last frequency)."""
        if sample_rate not in self._fir:
            nyq = sample_rate / 2.0
            grid = np.linspace(0.0, nyq, 1025)
            gain_db = np.interp(grid, self.curve["freqs_hz"], self.curve["gain_db"])
            self._fir[sample_rate] = signal.firwin2(self.numtaps, grid / nyq, 10.0 ** (gain_db / 20.0))
        return self._fir[sample_rate]

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        x = _as_tensor(audio).double().numpy()
        y = signal.fftconvolve(x, self.fir(int(sample_rate))[None], mode="same", axes=-1)
        return finish_loudness(torch.from_numpy(y), sample_rate, target_lufs, self.true_peak_dbtp)

    def info(self) -> dict[str, Any]:
        return {"items": self.curve.get("items"), "numtaps": self.numtaps}


class MatcheringSystem(System):
    """matchering 2 (Sergree) with one mastered reference, then the loudness finish.

    ``matchering.process`` runs on temporary float WAVs with its own limiter and normalisation
    off (``Result(use_limiter=False, normalize=False)``), so that the common finish
    (:func:`finish_loudness`) is the only level stage, as for every other system. matchering is an
    optional extra: it is imported on use. Its warnings (e.g. a target louder than the reference,
    or clipping) are kept: those of the last call in :attr:`last_warnings`, all in :attr:`warnings`.

    Args:
        reference: ``[channels, samples]`` mastered reference audio.
        reference_sample_rate: its rate.
        reference_name: what the tables call it.
        true_peak_dbtp: ceiling of the finish.
        name, label, group: the system's key, table label and group.
    """

    name, label = "matchering", "matchering"

    def __init__(self, reference, reference_sample_rate: int, reference_name: str = "reference",
                 true_peak_dbtp: float = -1.0, name: str | None = None, label: str | None = None,
                 group: str | None = None):
        self.reference = _as_tensor(reference, "reference")
        self.reference_sample_rate = int(reference_sample_rate)
        self.reference_name = reference_name
        self.true_peak_dbtp = float(true_peak_dbtp)
        self.name, self.label, self.group = name or self.name, label or self.label, group or self.group
        self.warnings: list[str] = []
        self.last_warnings: tuple[str, ...] = ()

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        import matchering as mg  # optional extra (pip install matchering)

        x = _as_tensor(audio)
        caught: list[str] = []
        mg.log(warning_handler=lambda text: caught.append(str(text)), info_handler=lambda *_: None,
               debug_handler=lambda *_: None)
        with tempfile.TemporaryDirectory(prefix="matchering-") as tmp:
            tmp = Path(tmp)
            target, reference, result = tmp / "target.wav", tmp / "reference.wav", tmp / "result.wav"
            save_audio(target, x, sample_rate, subtype="FLOAT")
            save_audio(reference, self.reference, self.reference_sample_rate, subtype="FLOAT")
            mg.process(target=str(target), reference=str(reference),
                       results=[mg.Result(str(result), "FLOAT", use_limiter=False, normalize=False)],
                       config=mg.Config(temp_folder=str(tmp)))
            y, _ = load_audio(result, sample_rate=int(sample_rate))
        self.last_warnings = tuple(caught)
        self.warnings.extend(caught)
        y = _fit_length(y, x.shape[-1], x.shape[0])
        return finish_loudness(y, sample_rate, target_lufs, self.true_peak_dbtp)

    def info(self) -> dict[str, Any]:
        return {"reference": self.reference_name}


class MatcheringArm(System):
    """matchering with a reference chosen per test excerpt (:meth:`for_pair`).

    ``references(pair)`` returns ``{"audio", "sample_rate", "name"}``: e.g. another track of the
    same album (:func:`mastering.evaluation.benchmark.album_reference`) or another section of the
    excerpt's own master (:func:`mastering.evaluation.benchmark.oracle_reference`). :meth:`for_pair`
    returns a :class:`MatcheringSystem` bound to that reference (under this arm's name and label);
    :meth:`master` called directly (latency) uses the last bound one. :attr:`references_used` maps
    each excerpt to its reference.
    """

    def __init__(self, references: Callable[[Mapping[str, Any]], Mapping[str, Any]], name: str, label: str,
                 group: str = "baseline", true_peak_dbtp: float = -1.0):
        self.references = references
        self.name, self.label, self.group = name, label, group
        self.true_peak_dbtp = float(true_peak_dbtp)
        self.references_used: dict[str, str] = {}
        self._bound: MatcheringSystem | None = None

    def for_pair(self, pair: Mapping[str, Any]) -> MatcheringSystem:
        ref = self.references(pair)
        self._bound = MatcheringSystem(ref["audio"], ref["sample_rate"], str(ref["name"]), self.true_peak_dbtp,
                                       name=self.name, label=self.label, group=self.group)
        self.references_used[str(pair.get("item", pair.get("track")))] = str(ref["name"])
        return self._bound

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        if self._bound is None:
            raise RuntimeError(f"{self.name}: no reference yet; call for_pair(pair) first")
        return self._bound.master(audio, sample_rate, target_lufs, device)

    @property
    def last_warnings(self) -> tuple[str, ...]:  # type: ignore[override]
        return self._bound.last_warnings if self._bound is not None else ()

    def info(self) -> dict[str, Any]:
        return {"references": dict(self.references_used)}


class Phase1System(System):
    """A trained Phase 1 model (1A, 1B or 1C).

    It masters through :func:`mastering.pipeline.master_audio`, the chain of ``mastering master``
    in memory (subsonic clean-up, whole-track analysis, processing, loudness target, true-peak
    ceiling), the same code on every device.

    Args:
        phase: ``"1a"``, ``"1b"`` or ``"1c"``.
        checkpoint: the run's ``best.pt``.
        true_peak_dbtp: ceiling of the master.
        run: the run folder's name (for the tables).
    """

    group = "proposed"
    devices = ("cpu", "cuda")

    def __init__(self, phase: str, checkpoint: str | os.PathLike, true_peak_dbtp: float = -1.0, run: str = ""):
        self.phase = str(phase).lower()
        self.name = f"phase{self.phase}"
        self.label = f"Phase {self.phase.upper()}"
        self.checkpoint = Path(checkpoint)
        if not self.checkpoint.is_file():
            raise ValueError(f"checkpoint {self.checkpoint} does not exist; train phase {self.phase} first")
        self.true_peak_dbtp = float(true_peak_dbtp)
        self.run = run or self.checkpoint.parent.name
        self._models: dict[str, Any] = {}

    def model(self, device: str = "cpu"):
        """The model on ``device`` (loaded once) and its training segment length in seconds."""
        if device not in self._models:
            self._models[device] = load_model(self.checkpoint, device=device)
        return self._models[device]

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        x = _as_tensor(audio)
        model, segment_s = self.model(device)
        y = master_audio(model, x.double().numpy(), int(sample_rate), float(np.clip(target_lufs, -40.0, -5.0)),
                         self.true_peak_dbtp, segment_s=segment_s)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return _fit_length(torch.from_numpy(y), x.shape[-1], x.shape[0])

    def info(self) -> dict[str, Any]:
        return {"run": self.run}


UNET_LSTM_DESCRIPTION = ("our re-implementation of a U-Net+LSTM spectrogram model: a 2-D U-Net over log-mel "
                         "bands (after Jansson et al., ISMIR 2017) predicts a gain mask and an LSTM a per-frame "
                         "gain and spectral tilt; the masked STFT magnitude is turned back into audio with "
                         "Griffin-Lim (or with the input's phase)")
"""One sentence on the U-Net+LSTM baseline, for the tables and the notebook."""


class ThesisSystem(System):
    """Our re-implementation of a U-Net+LSTM spectrogram model (:class:`mastering.models.thesis.MelUNetLSTM`,
    mastered by :func:`mastering.models.thesis.thesis_master`), then the loudness finish.

    ``phase="griffin_lim"`` recovers the waveform of the predicted magnitude with Griffin-Lim from
    zero phase (the model's ``griffin_lim_iters``); ``phase="input"`` puts the predicted magnitude
    on the input's phase (no Griffin-Lim iteration): what the model reaches without phase retrieval.

    Args:
        model: the model of :func:`mastering.training.thesis.fit_or_load_thesis`.
        info: the ``info`` dict that function returns (run folder, training budget).
        chunk_s: chunk length of :func:`thesis_master`.
        phase: ``"griffin_lim"`` or ``"input"``.
        true_peak_dbtp: ceiling of the finish.
    """

    group = "spectrogram"

    def __init__(self, model, info: dict[str, Any] | None = None, chunk_s: float = 10.0, phase: str = "griffin_lim",
                 true_peak_dbtp: float = -1.0):
        if phase not in ("griffin_lim", "input"):
            raise ValueError(f"phase must be 'griffin_lim' or 'input', got {phase!r}")
        self.model_ = model
        self.info_ = dict(info or {})
        self.chunk_s = float(chunk_s)
        self.phase = phase
        self.true_peak_dbtp = float(true_peak_dbtp)
        self.name = "unet_lstm" if phase == "griffin_lim" else "unet_lstm_input_phase"
        self.label = "U-Net+LSTM, Griffin-Lim" if phase == "griffin_lim" else "U-Net+LSTM, input phase"
        if isinstance(model, torch.nn.Module):
            self.devices = ("cpu", "cuda")

    @classmethod
    def fit_or_load(cls, profile: str = "smoke", seed: int = 0, progress: bool = False) -> "ThesisSystem":
        """Train (or load the cached run of) the profile's U-Net+LSTM model on Phase 1B's pairs and budget."""
        model, info = fit_or_load_thesis(profile=profile, seed=seed, progress=progress)
        return cls(model, info)

    def _spectrogram_master(self, model, x: torch.Tensor, sample_rate: int, device: str) -> torch.Tensor:
        if isinstance(model, torch.nn.Module):
            model = model.to(device)
        kwargs = {"init": "input", "n_iter": 0} if self.phase == "input" else {"init": "zeros"}
        y = thesis_master(model, x.numpy(), int(sample_rate), chunk_s=self.chunk_s, **kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return _fit_length(torch.as_tensor(np.asarray(y, np.float32)), x.shape[-1], x.shape[0])

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        x = _as_tensor(audio)
        y = self._spectrogram_master(self.model_, x, sample_rate, device)
        return finish_loudness(y, sample_rate, target_lufs, self.true_peak_dbtp)

    def info(self) -> dict[str, Any]:
        return {k: v for k, v in self.info_.items() if isinstance(v, (str, int, float, bool))}


class GriffinLimFloorSystem(ThesisSystem):
    """The Griffin-Lim floor of the input: input -> STFT magnitude -> Griffin-Lim -> loudness finish.

    The same STFT, chunking and Griffin-Lim as the U-Net+LSTM baseline (:func:`thesis_master` with
    an untrained :class:`MelUNetLSTM` of the same settings, whose zero-initialised output layers
    make it the identity on magnitudes): what phase retrieval alone costs, whatever the model does.

    Args:
        model_config: the baseline model's ``config`` (STFT size, hop, Griffin-Lim iterations).
    """

    def __init__(self, model_config: Mapping[str, Any], chunk_s: float = 10.0, true_peak_dbtp: float = -1.0):
        torch_state = torch.random.get_rng_state()
        try:  # the weights are irrelevant (the output layers are zero) but keep the global generator untouched
            model = MelUNetLSTM(**dict(model_config)).eval()
        finally:
            torch.random.set_rng_state(torch_state)
        super().__init__(model, {"griffin_lim_iters": int(model.griffin_lim_iters)}, chunk_s, "griffin_lim",
                         true_peak_dbtp)
        self.name, self.label = "gl_floor", "Griffin-Lim floor (input)"


# -- a blind, input-adaptive band EQ (mastering.evaluation.predictability measures it) -------------

#: The regressors, simplest first: the training pairs' mean correction (input-blind), ridge
#: regression (its penalty chosen by cross-validation over training tracks) and extra trees.
PREDICTORS = ("mean", "ridge", "extra_trees")
RIDGE_ALPHAS = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5)
CV_FOLDS = 4

Predictor = Callable[[np.ndarray], np.ndarray]


def band_levels(x, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """``(centres_hz, levels_db)``: :func:`~mastering.evaluation.metrics.third_octave_levels_db` of
    ``x`` (``[batch, channels, samples]`` or ``[channels, samples]``) minus each row's mean over the
    bands (``[batch, bands]``): the spectral balance, whatever the level."""
    centres, levels = third_octave_levels_db(x, sample_rate)
    return centres, levels - levels.mean(axis=-1, keepdims=True)


def band_corrections(degraded, mastered, sample_rate: int) -> np.ndarray:
    """What each pair's EQ would have to do in every 1/3-octave band (dB, centred): the master's
    balance minus the degraded input's (``[batch, bands]``)."""
    return band_levels(mastered, sample_rate)[1] - band_levels(degraded, sample_rate)[1]


def _folds(groups: Sequence[Any], folds: int, seed: int) -> np.ndarray:
    """Fold of every row, whole groups (tracks) per fold, groups shuffled by ``seed``."""
    names = sorted(set(map(str, groups)))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of = {names[i]: k % folds for k, i in enumerate(order)}
    return np.array([fold_of[str(g)] for g in groups])


def _ridge(alpha: float):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=alpha)


def fit_predictor(kind: str, features: np.ndarray, corrections: np.ndarray, groups: Sequence[Any] | None = None,
                  seed: int = 0) -> tuple[Predictor, dict[str, Any]]:
    """Fit one of :data:`PREDICTORS` from centred band levels to band corrections.

    Ridge's penalty is the one of :data:`RIDGE_ALPHAS` with the lowest squared error over
    :data:`CV_FOLDS` folds that keep each of ``groups`` (tracks; default: every row its own) whole.

    Returns:
        ``(predict, info)``: ``predict([n, bands]) -> [n, bands]`` and what was chosen.

    Raises:
        ValueError: unknown ``kind``, mismatched shapes or fewer than two pairs.
    """
    features, corrections = np.asarray(features, float), np.asarray(corrections, float)
    if kind not in PREDICTORS:
        raise ValueError(f"unknown predictor {kind!r}; choose from {', '.join(PREDICTORS)}")
    if features.ndim != 2 or features.shape != corrections.shape or len(features) < 2:
        raise ValueError(f"features and corrections must be equal [pairs >= 2, bands] arrays, got "
                         f"{features.shape} and {corrections.shape}")
    if kind == "mean":
        mean = corrections.mean(axis=0)
        return (lambda f: np.broadcast_to(mean, np.shape(f)).copy()), {}
    if kind == "extra_trees":
        from sklearn.ensemble import ExtraTreesRegressor

        model = ExtraTreesRegressor(n_estimators=300, min_samples_leaf=5, n_jobs=torch.get_num_threads(),
                                    random_state=int(seed)).fit(features, corrections)
        return model.predict, {"n_estimators": 300, "min_samples_leaf": 5}
    groups = np.arange(len(features)) if groups is None else np.asarray(groups)
    fold = _folds(groups, min(CV_FOLDS, len(set(map(str, groups)))), seed)
    errors = {}
    for alpha in RIDGE_ALPHAS:
        err = 0.0
        for k in np.unique(fold):
            fitted = _ridge(alpha).fit(features[fold != k], corrections[fold != k])
            err += float(((fitted.predict(features[fold == k]) - corrections[fold == k]) ** 2).sum())
        errors[alpha] = err / corrections.size
    alpha = min(errors, key=errors.get)
    return _ridge(alpha).fit(features, corrections).predict, {"alpha": alpha, "cv_mse_db2": errors[alpha]}


class BandRegressionEQSystem(System):
    """A blind, input-adaptive EQ: the input's centred 1/3-octave levels -> a predicted correction per
    band (:func:`fit_predictor`) -> that curve as :class:`~mastering.evaluation.systems.StaticEQSystem`'s
    linear-phase FIR -> the loudness finish. ``predict=None`` with ``curve_db`` given applies that
    fixed band curve instead (the oracle arm: a pair's true correction)."""

    group = "baseline"

    def __init__(self, predict: Predictor | None, name: str, label: str, true_peak_dbtp: float = -1.0,
                 numtaps: int = 2047, curve_db: np.ndarray | None = None):
        if predict is None and curve_db is None:
            raise ValueError("give a predictor or a fixed curve_db")
        self.predict, self.curve_db = predict, curve_db
        self.name, self.label = name, label
        self.true_peak_dbtp, self.numtaps = float(true_peak_dbtp), int(numtaps)

    def curve(self, audio, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """``(centres_hz, gain_db)`` this system applies to ``audio``."""
        centres, levels = band_levels(audio, sample_rate)
        gain = self.curve_db if self.predict is None else self.predict(levels)[0]
        return centres, np.asarray(gain, float)

    def master(self, audio, sample_rate: int, target_lufs: float = -14.0, device: str = "cpu") -> torch.Tensor:
        centres, gain = self.curve(audio, sample_rate)
        eq = StaticEQSystem({"freqs_hz": centres, "gain_db": gain}, self.true_peak_dbtp, self.numtaps)
        return eq.master(audio, sample_rate, target_lufs)
