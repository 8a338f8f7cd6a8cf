"""Perceptual losses for mastering (see :mod:`mastering` for tensor conventions)."""

from .combined import MasteringLoss
from .perceptual import AWeightedL1Loss, LoudnessLoss
from .regularization import ParameterRegularization
from .stft import DEFAULT_FFT_SIZES, MultiResolutionSTFTLoss

__all__ = [
    "AWeightedL1Loss",
    "DEFAULT_FFT_SIZES",
    "LoudnessLoss",
    "MasteringLoss",
    "MultiResolutionSTFTLoss",
    "ParameterRegularization",
]
