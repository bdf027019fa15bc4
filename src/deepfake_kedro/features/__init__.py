"""Feature extraction: stream images through a backbone into a content-hash keyed cache."""

from deepfake_kedro.features.cache import (
    CacheIdentityError,
    FeatureCache,
    FeatureCacheRoot,
    MissingFeaturesError,
    cache_key,
)
from deepfake_kedro.features.config import ExtractionConfig
from deepfake_kedro.features.device import resolve_device, resolve_precision
from deepfake_kedro.features.engine import ImageReadError, iter_features, update_cache
from deepfake_kedro.features.shards import (
    MissingShardsError,
    ShardMismatchError,
    gather_reports,
    shard_key,
)

__all__ = [
    "CacheIdentityError",
    "ExtractionConfig",
    "FeatureCache",
    "FeatureCacheRoot",
    "ImageReadError",
    "MissingFeaturesError",
    "MissingShardsError",
    "ShardMismatchError",
    "cache_key",
    "gather_reports",
    "iter_features",
    "resolve_device",
    "resolve_precision",
    "shard_key",
    "update_cache",
]
