import pytest
from pydantic import ValidationError

from deepfake_kedro.ingestion import IngestionConfig, SplitConfig


def test_defaults() -> None:
    config = IngestionConfig()
    assert config.on_invalid == "fail"
    assert config.group_columns == ["group_a", "group_b"]
    assert config.split.fractions == {"train": 0.70, "val": 0.15, "test": 0.15}
    assert config.split.seed == 42


def test_from_params_dict() -> None:
    config = IngestionConfig.model_validate(
        {
            "on_invalid": "drop",
            "group_columns": [],
            "split": {"train": 0.8, "val": 0.1, "test": 0.1},
        }
    )
    assert config.on_invalid == "drop" and config.group_columns == []
    assert config.split.train == 0.8


def test_fractions_must_sum_to_one() -> None:
    with pytest.raises(ValidationError, match=r"train=0\.7 \+ val=0\.2 \+ test=0\.15 sum to 1\.05"):
        SplitConfig(train=0.7, val=0.2, test=0.15)


def test_fraction_out_of_range_names_field() -> None:
    with pytest.raises(ValidationError, match=r"split\.val"):
        IngestionConfig.model_validate({"split": {"train": 1.0, "val": 0.0, "test": 0.0}})


def test_on_invalid_lists_allowed_values() -> None:
    with pytest.raises(ValidationError, match=r"on_invalid[\s\S]*'fail' or 'drop'"):
        IngestionConfig(on_invalid="maybe")


@pytest.mark.parametrize("key", ["min_imge_size", "split.sead"])
def test_unknown_key_is_named(key: str) -> None:
    params: dict = {}
    if key.startswith("split."):
        params["split"] = {key.split(".")[1]: 1}
    else:
        params[key] = 1
    with pytest.raises(ValidationError, match=key.replace(".", r"\.")):
        IngestionConfig.model_validate(params)


@pytest.mark.parametrize(
    "field", ["min_image_size", "min_group_size", "max_errors_shown", "num_workers"]
)
def test_counts_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        IngestionConfig.model_validate({field: 0})


def test_repeated_group_column() -> None:
    with pytest.raises(ValidationError, match="group_a"):
        IngestionConfig(group_columns=["group_a", "group_a"])
