"""The optional face_box manifest column: parsed, checked per row, written back canonically."""

from __future__ import annotations

import pytest

from deepfake_kedro.ingestion import DataValidationError, IngestionConfig, validate_manifest
from deepfake_kedro.ingestion.face_box import box_pixels, format_face_box, parse_face_box


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.25,0.2,0.75,0.8", (0.25, 0.2, 0.75, 0.8)),
        (" 0, 0 ,1,1 ", (0.0, 0.0, 1.0, 1.0)),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_parse_face_box(value, expected):
    assert parse_face_box(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.2,0.2,0.8", "not four numbers"),
        ("a,b,c,d", "not four numbers"),
        ("0.2,0.2,0.8,inf", "not four numbers"),
        ("0.8,0.2,0.2,0.9", "x0 < x1"),
        ("0.2,0.2,0.8,1.5", "y1 <= 1"),
        ("10,20,100,200", "relative to the image"),
    ],
)
def test_bad_face_boxes_say_what_is_expected(value, message):
    with pytest.raises(ValueError, match=message):
        parse_face_box(value)


def test_format_round_trips_and_pixels_cover_the_box():
    box = (0.25, 0.2, 0.75, 0.8)
    assert parse_face_box(format_face_box(box)) == box and format_face_box(None) == ""
    assert box_pixels(box, (100, 200)) == (50, 20, 150, 80)
    assert box_pixels(None, (100, 200)) == (0, 0, 200, 100)


def test_validation_checks_and_normalises_face_box(manifest, store) -> None:
    manifest["face_box"] = ""
    manifest.loc[0, "face_box"] = "0.10, 0.2,0.9,0.95"
    valid, problems = validate_manifest(manifest, store, IngestionConfig(num_workers=2))
    assert problems.empty
    assert valid.loc[0, "face_box"] == "0.1,0.2,0.9,0.95"
    assert (valid["face_box"].iloc[1:] == "").all()

    manifest.loc[3, "face_box"] = "0.9,0.2,0.1,0.8"
    with pytest.raises(DataValidationError) as info:
        validate_manifest(manifest, store, IngestionConfig(num_workers=2))
    assert set(info.value.problems["check"]) == {"face_box"}
    assert "manifest row 4 (images/s01_fake.png): face_box '0.9,0.2,0.1,0.8' must satisfy" in str(
        info.value
    )
    valid, problems = validate_manifest(
        manifest, store, IngestionConfig(num_workers=2, on_invalid="drop")
    )
    assert len(valid) == len(manifest) - 1 and problems["row"].tolist() == [4]


def test_without_the_column_nothing_is_added(manifest, store) -> None:
    valid, _ = validate_manifest(manifest, store, IngestionConfig(num_workers=2))
    assert "face_box" not in valid.columns
