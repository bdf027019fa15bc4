import json

import pandas as pd
import pytest

from deepfake_kedro.ingestion import SplitConfig, dataset_fingerprint, split_by_source


@pytest.fixture
def split(validated: pd.DataFrame) -> pd.DataFrame:
    return split_by_source(validated, SplitConfig())


def test_summary_counts(split: pd.DataFrame) -> None:
    summary = dataset_fingerprint(split)
    json.dumps(summary)
    assert len(summary["fingerprint"]) == 64 and len(summary["manifest_hash"]) == 64
    counts = [summary[k] for k in ("n_images", "n_real", "n_fake", "n_sources")]
    assert counts == [40, 20, 20, 20]
    assert sum(part["n"] for part in summary["per_split"].values()) == 40
    assert set(summary["per_split"]) == {"train", "val", "test"}
    assert summary["oldest_captured_at"] == "2024-01-01T10:00:00Z"
    assert summary["newest_captured_at"] == "2024-01-20T10:00:00Z"
    assert summary["created_at"].endswith("Z")


def test_independent_of_row_order(split: pd.DataFrame) -> None:
    shuffled = split.sample(frac=1, random_state=3).reset_index(drop=True)
    shuffled["row"] = range(1, len(shuffled) + 1)
    a, b = dataset_fingerprint(split), dataset_fingerprint(shuffled)
    assert a["fingerprint"] == b["fingerprint"]
    assert a["manifest_hash"] == b["manifest_hash"]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("content_hash", "0" * 64),
        ("label", "fake"),
        ("image_path", "images/other.png"),
        ("split", "test"),
    ],
)
def test_changes_with_any_image_label_path_or_split(
    split: pd.DataFrame, column: str, value: str
) -> None:
    changed = split.copy()
    row = changed.index[(changed["label"] == "real") & (changed["split"] == "train")][0]
    changed.loc[row, column] = value
    before, after = dataset_fingerprint(split), dataset_fingerprint(changed)
    assert after["fingerprint"] != before["fingerprint"]
    assert after["manifest_hash"] != before["manifest_hash"]


def test_without_split_column(validated: pd.DataFrame) -> None:
    summary = dataset_fingerprint(validated)
    assert "per_split" not in summary and summary["n_images"] == 40


def test_needs_content_hash(validated: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"content_hash \(content_hash is computed by validate_"):
        dataset_fingerprint(validated.drop(columns=["content_hash"]))
