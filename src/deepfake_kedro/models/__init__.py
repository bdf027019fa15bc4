"""Feature-extractor backbones (ResNet, CLIP, spectral) with their preprocessing.

The fusion head lives in :mod:`deepfake_kedro.models.fusion`; import it from there.
"""

from deepfake_kedro.models.backbones import (
    FEATURE_VERSION,
    BackboneConfig,
    ClipExtractor,
    FeatureExtractor,
    ImagePreprocessor,
    ResNetExtractor,
    SpectralExtractor,
    build_extractor,
    preprocess_image,
)
from deepfake_kedro.models.weights import WeightsUnavailableError

__all__ = [
    "FEATURE_VERSION",
    "BackboneConfig",
    "ClipExtractor",
    "FeatureExtractor",
    "ImagePreprocessor",
    "ResNetExtractor",
    "SpectralExtractor",
    "WeightsUnavailableError",
    "build_extractor",
    "preprocess_image",
]
