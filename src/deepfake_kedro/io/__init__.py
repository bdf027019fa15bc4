"""Plain I/O helpers (no Kedro): image stores on local disk or S3."""

from deepfake_kedro.io.image_store import ImageStore, PathEscapeError

__all__ = ["ImageStore", "PathEscapeError"]
