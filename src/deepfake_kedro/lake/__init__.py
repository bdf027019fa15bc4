"""Data-lake health: is the S3 store reachable, the key valid, the bucket and manifest there."""

from deepfake_kedro.lake.health import CHECKS, CheckResult, LakeConfig, check_lake, format_results

__all__ = ["CHECKS", "CheckResult", "LakeConfig", "check_lake", "format_results"]
