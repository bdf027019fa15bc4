"""Scoring raw images with a trained model: backbones + fusion head, as in training."""

from deepfake_kedro.inference.detector import Detector

__all__ = ["Detector"]
