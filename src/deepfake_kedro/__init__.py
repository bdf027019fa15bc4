"""deepfake_kedro: train, validate, register and retrain a deepfake image detector."""

__version__ = "0.1.0"
