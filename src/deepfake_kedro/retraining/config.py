"""Typed parameters of the retraining checks and schedule (``params:retraining``).

Build them with ``RetrainingConfig.model_validate(params)`` so that a bad value or a typo'd key
fails before the run starts, with the offending field named in the error.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deepfake_kedro.retraining.crontab import cron_trigger


class FreshnessConfig(BaseModel):
    """When the age of the champion or of its training data triggers a retraining.

    Attributes:
        enabled: Run the check.
        max_model_age_days: New labelled data (images the champion was not trained on) triggers
            a retraining once the champion version is older than this.
        max_data_age_days: Trigger when the newest ``captured_at`` of the champion's training
            data is older than this, new data or not. ``None`` (default) turns it off: on a
            feed that has stopped, retraining on the same images cannot make them fresher, and
            a daily schedule would retrain every day. Set it (e.g. ``7``) to be told so.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    max_model_age_days: float = Field(7.0, ge=0)
    max_data_age_days: float | None = Field(None, ge=0)


class DegradationConfig(BaseModel):
    """When the champion's AUC on new labelled data triggers a retraining.

    Attributes:
        enabled: Run the check.
        max_relative_auc_drop: Trigger when the AUC on new data is more than this fraction
            below the champion's recorded test AUC (``0.05``: 5 % below).
        min_samples: Fewest new labelled images to measure an AUC on (fewer: not evaluated).
        min_per_class: Fewest new images of each label (an AUC needs both).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    max_relative_auc_drop: float = Field(0.05, ge=0, le=1)
    min_samples: int = Field(10, ge=2)
    min_per_class: int = Field(2, ge=1)


class DriftConfig(BaseModel):
    """How the embeddings of new data are compared with the champion's training data.

    Attributes:
        enabled: Run the check.
        method: ``domain_classifier`` (cross-validated AUC of a logistic regression telling
            new from training embeddings; 0.5 means indistinguishable) or ``mmd`` (squared
            maximum mean discrepancy with an RBF kernel, median-distance bandwidth).
        auc_threshold: Drift when the domain classifier's AUC is at least this.
        mmd_threshold: Drift when the MMD² is at least this.
        trigger: Whether drift alone triggers a retraining (otherwise it is only reported).
        min_samples: Fewest images on each side to measure drift (fewer: not evaluated).
        max_samples: Random subsample per side to bound time.
        folds: Cross-validation folds of the domain classifier.
        seed: Seed of subsampling and folds.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    method: Literal["domain_classifier", "mmd"] = "domain_classifier"
    auc_threshold: float = Field(0.75, ge=0.5, le=1)
    mmd_threshold: float = Field(0.05, ge=0)
    trigger: bool = False
    min_samples: int = Field(10, ge=2)
    max_samples: int = Field(2000, ge=2)
    folds: int = Field(5, ge=2)
    seed: int = 0


class ScheduleConfig(BaseModel):
    """When ``kedro schedule`` runs the retraining check and the registry cleanup.

    Attributes:
        check_cron: Crontab (5 fields) of the retraining check (``kedro retrain``).
        cleanup_cron: Crontab of the cleanup of old model versions (``kedro models cleanup``).
        timezone: Time zone of both crontabs (IANA name).
        misfire_grace_time_s: A run missed by up to this many seconds (machine asleep, the
            scheduler down, the previous run still going) still runs, once.
        coalesce: Run several missed runs of a job as one.
        state_file: JSON file (relative to the project) with each job's last run, so a run
            missed while the scheduler was down is caught up once at start-up.
        log_file: Log file of the scheduler and its jobs (relative to the project); ``None``
            logs to the console only.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    check_cron: str = "0 3 * * *"
    cleanup_cron: str = "0 4 * * 0"
    timezone: str = "UTC"
    misfire_grace_time_s: int = Field(6 * 3600, ge=1)
    coalesce: bool = True
    state_file: str = "data/09_scheduler/schedule_state.json"
    log_file: str | None = "logs/schedule.log"

    @field_validator("check_cron", "cleanup_cron")
    @classmethod
    def _valid_crontab(cls, value: str) -> str:
        try:
            cron_trigger(value, "UTC")
        except ValueError as err:
            raise ValueError(
                f"{value!r} is not a 5-field crontab (minute hour day month day_of_week), "
                f"e.g. '0 3 * * *' for 03:00 daily: {err}"
            ) from err
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'UTC' or 'Europe/Berlin'"
            ) from err
        return value


class RetrainingConfig(BaseModel):
    """Checks that decide whether to retrain, and how retraining is run and scheduled.

    Attributes:
        force: Retrain whatever the checks say (``kedro retrain --force`` sets it).
        freshness: Age of the champion and of its data.
        degradation: AUC of the champion on new labelled data.
        drift: Embedding drift of new data.
        schedule: ``kedro schedule`` settings.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    force: bool = False
    freshness: FreshnessConfig = Field(default_factory=FreshnessConfig)
    degradation: DegradationConfig = Field(default_factory=DegradationConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
