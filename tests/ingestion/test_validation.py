import hashlib
import logging
import os
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest

from deepfake_kedro.ingestion import DataValidationError, IngestionConfig, validate_manifest
from deepfake_kedro.ingestion.validation import small_groups
from deepfake_kedro.io import ImageStore


def _fails(manifest, store, config, check: str) -> str:
    """Run validation expecting a failure; return the message and check the problem code."""
    with pytest.raises(DataValidationError) as info:
        validate_manifest(manifest, store, config)
    assert info.value.problems is not None
    assert check in set(info.value.problems["check"]), info.value.problems
    return str(info.value)


# ---------------------------------------------------------------- valid input


def test_valid_manifest_gets_added_columns(manifest, store, config, image_root: Path) -> None:
    valid, problems = validate_manifest(manifest, store, config)
    assert problems.empty and list(problems.columns) == ["row", "image_path", "reason", "check"]
    assert len(valid) == 40
    assert valid["row"].tolist() == list(range(1, 41))
    for column in ("row", "width", "height", "file_size"):
        assert valid[column].dtype == "int64"
    first = valid.iloc[0]
    data = (image_root / first["image_path"]).read_bytes()
    assert first["content_hash"] == hashlib.sha256(data).hexdigest()
    assert (first["width"], first["height"], first["file_size"]) == (72, 64, len(data))
    assert first["captured_at"] == "2024-01-01T10:00:00Z"
    assert set(valid["captured_at_source"]) == {"manifest"}


def test_labels_normalised_and_manipulation_filled(manifest, store, config) -> None:
    manifest.loc[0, "label"] = " Real "
    manifest.loc[1, "label"] = "FAKE"
    manifest.loc[[0, 1], "manipulation"] = np.nan
    manifest.loc[2, "captured_at"] = "2024-03-01 12:00:00+02:00"
    valid, _ = validate_manifest(manifest, store, config)
    assert valid.loc[0, ["label", "manipulation"]].tolist() == ["real", "none"]
    assert valid.loc[1, ["label", "manipulation"]].tolist() == ["fake", "unknown"]
    assert valid.loc[2, "captured_at"] == "2024-03-01T10:00:00Z"


def test_without_captured_at_uses_file_mtime(manifest, store, config, image_root: Path) -> None:
    os.utime(image_root / "images/s00_real.png", (1_700_000_000, 1_700_000_000))
    valid, _ = validate_manifest(
        manifest.drop(columns=["captured_at", "manipulation"]), store, config
    )
    assert set(valid["captured_at_source"]) == {"file_mtime"}
    assert valid.loc[0, "captured_at"] == "2023-11-14T22:13:20Z"
    assert set(valid["manipulation"]) == {"none", "unknown"}


def test_works_on_a_non_local_fsspec_store(manifest, config, image_root: Path) -> None:
    fs = fsspec.filesystem("memory")
    for path in (image_root / "images").iterdir():
        fs.pipe(f"/lake/raw/images/{path.name}", path.read_bytes())
    store = ImageStore("memory://lake/raw")
    valid, problems = validate_manifest(manifest.drop(columns=["captured_at"]), store, config)
    assert len(valid) == 40 and problems.empty
    assert valid["captured_at"].str.endswith("Z").all()
    manifest.loc[4, "image_path"] = "images/nope.png"
    message = _fails(manifest, store, config, "missing_file")
    assert "manifest row 5 (images/nope.png): missing file" in message


def test_progress_is_logged_for_large_manifests(make_image, tmp_path: Path, caplog) -> None:
    root = tmp_path / "many"
    rows = []
    for i in range(120):
        label = ("real", "fake")[i % 2]
        make_image(root / f"{i}.png", size=(8, 8), seed=i)
        rows.append({"image_path": f"{i}.png", "label": label, "source_id": f"s{i // 2}"})
    config = IngestionConfig(group_columns=[], min_image_size=8)
    with caplog.at_level(logging.INFO, logger="deepfake_kedro.ingestion.validation"):
        validate_manifest(pd.DataFrame(rows), ImageStore(str(root)), config)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Checked")]
    assert len(progress) == 10 and progress[-1] == "Checked 120/120 images (100%)"


# ---------------------------------------------------------------- whole-manifest errors


def test_missing_required_column(manifest, store, config) -> None:
    with pytest.raises(DataValidationError) as info:
        validate_manifest(manifest.drop(columns=["source_id"]), store, config)
    message = str(info.value)
    assert "missing required column(s) source_id" in message
    assert "columns present: image_path, label, manipulation" in message


def test_missing_column_hints_at_near_name(manifest, store, config) -> None:
    with pytest.raises(DataValidationError, match=r"did you mean ' Label' for 'label'"):
        validate_manifest(manifest.rename(columns={"label": " Label"}), store, config)


def test_missing_configured_group_column(manifest, store) -> None:
    config = IngestionConfig(group_columns=["group_a", "age"])
    with pytest.raises(DataValidationError) as info:
        validate_manifest(manifest, store, config)
    message = str(info.value)
    assert "no column(s) age listed in data_ingestion.group_columns" in message
    assert "group_b" in message and "(or to [])" in message


def test_empty_manifest(manifest, store, config) -> None:
    with pytest.raises(DataValidationError, match="no data rows"):
        validate_manifest(manifest.iloc[0:0], store, config)
    with pytest.raises(DataValidationError, match="the manifest is empty"):
        validate_manifest(pd.DataFrame(), store, config)


# ---------------------------------------------------------------- per-row problems


def test_bad_label(manifest, store, config) -> None:
    manifest.loc[2, "label"] = "fke"
    message = _fails(manifest, store, config, "label")
    assert "manifest row 3 (images/s01_real.png): label 'fke' is not one of real, fake" in message


def test_missing_value(manifest, store, config) -> None:
    manifest.loc[5, "source_id"] = None
    message = _fails(manifest, store, config, "missing_value")
    assert "manifest row 6 (images/s02_fake.png): missing value: source_id is empty" in message


def test_duplicate_row(manifest, store, config) -> None:
    doubled = pd.concat([manifest, manifest.iloc[[3]]], ignore_index=True)
    message = _fails(doubled, store, config, "duplicate_row")
    assert (
        "manifest row 41 (images/s01_fake.png): duplicate row: identical to manifest row 4"
        in message
    )


def test_duplicate_path(manifest, store, config) -> None:
    manifest.loc[9, "image_path"] = "./images/s00_real.png"
    message = _fails(manifest, store, config, "duplicate_path")
    assert (
        "manifest row 10 (./images/s00_real.png): duplicate path: the same image is already "
        "listed at manifest row 1 (as 'images/s00_real.png')" in message
    )


def test_missing_file(manifest, store, config, image_root: Path) -> None:
    (image_root / "images/s04_fake.png").unlink()
    message = _fails(manifest, store, config, "missing_file")
    assert (
        "manifest row 10 (images/s04_fake.png): missing file: not found under the image root"
        in message
    )


def test_not_an_image(manifest, store, config, image_root: Path) -> None:
    (image_root / "images/s03_real.png").write_text("this is not an image")
    message = _fails(manifest, store, config, "unreadable_image")
    assert "manifest row 7 (images/s03_real.png): not an image" in message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("keep", [0.05, 0.6, 0.97])
def test_truncated_image(
    make_image, manifest, store, config, image_root: Path, fmt: str, keep: float
) -> None:
    data = make_image(image_root / "whole.bin", seed=99, fmt=fmt).read_bytes()
    (image_root / "images/s05_real.png").write_bytes(data[: int(len(data) * keep)])
    message = _fails(manifest, store, config, "truncated_image")
    assert "manifest row 11 (images/s05_real.png): truncated image" in message


def test_too_small(make_image, manifest, store, config, image_root: Path) -> None:
    make_image(image_root / "images/s06_fake.png", size=(80, 40))
    message = _fails(manifest, store, config, "too_small")
    assert (
        "manifest row 14 (images/s06_fake.png): image too small: 80x40 pixels, shorter side 40 "
        "< data_ingestion.min_image_size 64" in message
    )


def test_dotdot_escape(make_image, manifest, store, config, image_root: Path) -> None:
    make_image(image_root.parent / "secret.png")
    manifest.loc[0, "image_path"] = "../secret.png"
    message = _fails(manifest, store, config, "path_escape")
    assert "manifest row 1 (../secret.png): path outside the image root" in message


def test_absolute_path_outside(make_image, manifest, store, config, image_root: Path) -> None:
    outside = make_image(image_root.parent / "elsewhere" / "x.png")
    manifest.loc[1, "image_path"] = str(outside)
    message = _fails(manifest, store, config, "path_escape")
    assert f"manifest row 2 ({outside}): path outside the image root" in message


def test_absolute_path_inside_root_is_fine(manifest, store, config, image_root: Path) -> None:
    manifest.loc[1, "image_path"] = str(image_root / "images/s00_fake.png")
    valid, _ = validate_manifest(manifest, store, config)
    assert len(valid) == 40


def test_symlink_out_of_root(make_image, manifest, store, config, image_root: Path) -> None:
    outside = make_image(image_root.parent / "elsewhere" / "y.png")
    link = image_root / "images/s07_real.png"
    link.unlink()
    link.symlink_to(outside)
    message = _fails(manifest, store, config, "path_escape")
    assert "manifest row 15 (images/s07_real.png): path outside the image root" in message
    assert "symlinks" in message


def test_bad_timestamp(manifest, store, config) -> None:
    manifest.loc[7, "captured_at"] = "last tuesday"
    message = _fails(manifest, store, config, "bad_timestamp")
    assert (
        "manifest row 8 (images/s03_fake.png): captured_at 'last tuesday' is not a date/time"
        in message
    )


@pytest.mark.parametrize("on_invalid", ["fail", "drop"])
def test_small_group_is_a_warning_and_its_rows_are_kept(
    manifest, store, config, caplog, on_invalid
) -> None:
    # Too small to judge fairness on is no reason to reject or drop images (issue 16).
    manifest.loc[[0, 1, 2], "group_b"] = "b3"
    config = config.model_copy(update={"on_invalid": on_invalid})
    with caplog.at_level(logging.WARNING, logger="deepfake_kedro.ingestion.validation"):
        valid, problems = validate_manifest(manifest, store, config)
    assert problems.empty and len(valid) == len(manifest)
    assert (valid["group_b"] == "b3").sum() == 3
    warnings = [r.getMessage() for r in caplog.records if "Small group" in r.getMessage()]
    assert len(warnings) == 1
    assert "group_b 'b3' has 3 image(s), fewer than data_ingestion.min_group_size 10" in (
        warnings[0]
    )
    assert "too small to judge fairness" in warnings[0] and "kept" in warnings[0]


def test_a_valid_24_row_manifest_of_small_groups_passes_with_the_default_parameters(
    manifest, store
) -> None:
    # 12 sources, every value of both group columns below min_group_size 10: all 24 rows
    # used to be rejected as small_group.
    small = manifest.iloc[:24].copy()
    sources = small["source_id"].str[3:].astype(int)
    small["group_a"] = "a" + (sources % 3).astype(str)  # 8 rows each
    small["group_b"] = "b" + (sources % 4).astype(str)  # 6 rows each
    config = IngestionConfig()
    assert config.min_group_size == 10 and config.on_invalid == "fail"
    valid, problems = validate_manifest(small, store, config)
    assert problems.empty and len(valid) == 24
    assert small_groups(valid, config.group_columns, 10) == {
        "group_a": {"a0": 8, "a1": 8, "a2": 8},
        "group_b": {"b0": 6, "b1": 6, "b2": 6, "b3": 6},
    }


def test_small_groups_are_counted_after_rejected_rows(manifest, store, config) -> None:
    manifest.loc[[0, 1, 2], "group_b"] = "b3"
    manifest.loc[1, "label"] = "maybe"
    config = config.model_copy(update={"on_invalid": "drop", "min_group_size": 3})
    valid, problems = validate_manifest(manifest, store, config)
    assert problems["check"].tolist() == ["label"]  # no small_group problem
    assert len(valid) == len(manifest) - 1
    assert small_groups(valid, config.group_columns, 3) == {"group_b": {"b3": 2}}


def test_one_row_can_have_several_problems(manifest, store, config, image_root: Path) -> None:
    manifest.loc[0, "label"] = "maybe"
    (image_root / "images/s00_real.png").unlink()
    with pytest.raises(DataValidationError) as info:
        validate_manifest(manifest, store, config)
    assert info.value.problems["check"].tolist() == ["label", "missing_file"]
    assert "2 problem(s) in 1 of 40 rows" in str(info.value)


# ---------------------------------------------------------------- policy


def _break_two_rows(manifest: pd.DataFrame, image_root: Path) -> None:
    manifest.loc[2, "label"] = "fke"
    (image_root / "images/s10_fake.png").unlink()


def test_fail_policy_lists_first_problems(manifest, store, image_root: Path) -> None:
    _break_two_rows(manifest, image_root)
    config = IngestionConfig(max_errors_shown=1)
    with pytest.raises(DataValidationError) as info:
        validate_manifest(manifest, store, config)
    message = str(info.value)
    assert "found 2 problem(s) in 2 of 40 rows (label: 1, missing_file: 1)" in message
    assert "manifest row 3 (images/s01_real.png)" in message
    assert "manifest row 22" not in message and "... and 1 more" in message
    assert "on_invalid: drop" in message and "problems table" in message
    assert len(info.value.problems) == 2


def test_drop_policy_keeps_good_rows(manifest, store, image_root: Path, caplog) -> None:
    _break_two_rows(manifest, image_root)
    config = IngestionConfig(on_invalid="drop")
    with caplog.at_level(logging.WARNING):
        valid, problems = validate_manifest(manifest, store, config)
    assert len(valid) == 38 and 3 not in set(valid["row"]) and 22 not in set(valid["row"])
    assert problems[["row", "check"]].values.tolist() == [[3, "label"], [22, "missing_file"]]
    assert "Dropping 2 of 40 manifest rows" in caplog.text


def test_drop_leaving_nothing_raises(manifest, store) -> None:
    manifest["label"] = "unknown"
    with pytest.raises(DataValidationError, match="no valid rows remain: all 40 manifest rows"):
        validate_manifest(manifest, store, IngestionConfig(on_invalid="drop"))


def test_drop_leaving_one_label_raises(manifest, store) -> None:
    manifest.loc[manifest["label"] == "fake", "label"] = "fak"
    with pytest.raises(DataValidationError, match="no 'fake' images remain after dropping 20"):
        validate_manifest(manifest, store, IngestionConfig(on_invalid="drop", group_columns=[]))
