"""The benchmarks' second generator: real photographs, four local manipulation families."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import ndimage

from benchmarks import second_source
from benchmarks.second_source import (
    FAMILIES,
    MANIPULATE,
    PHOTOS,
    SecondSourceConfig,
    plan_manifest,
    render,
    write_second_source_dataset,
)
from deepfake_kedro.demo.generator import MANIFEST_COLUMNS
from deepfake_kedro.ingestion import IngestionConfig, split_by_source, validate_manifest
from deepfake_kedro.io import ImageStore

TINY = SecondSourceConfig(n_images=48, image_size=64, seed=3)


@pytest.fixture(scope="module")
def manifest() -> pd.DataFrame:
    return plan_manifest(TINY)


def _real_row(manifest: pd.DataFrame, fake: pd.Series) -> pd.Series:
    folder, name = fake["image_path"].rsplit("/", 1)
    index = name.split("_", 1)[0]
    return manifest[manifest["image_path"] == f"{folder}/{index}_real.png"].iloc[0]


def test_manifest_has_the_demo_columns_labels_and_every_family(manifest: pd.DataFrame) -> None:
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert (manifest["label"] == "real").sum() == TINY.n_real
    reals = manifest[manifest["label"] == "real"]
    fakes = manifest[manifest["label"] == "fake"]
    assert set(reals["manipulation"]) == {"none"}
    counts = fakes["manipulation"].value_counts()
    assert set(counts.index) == set(FAMILIES) and counts.max() - counts.min() <= 1
    assert manifest["image_path"].is_unique and manifest["seed"].is_unique
    # A fake carries its real's source and groups: one photo, one source.
    for _, fake in fakes.iterrows():
        real = _real_row(manifest, fake)
        assert (
            fake[["source_id", "group_a", "group_b"]] == real[["source_id", "group_a", "group_b"]]
        ).all()
    assert set(manifest["source_id"]) == set(PHOTOS.values())
    assert PHOTOS["motorcycle_left"] == PHOTOS["motorcycle_right"]  # one scene, two views
    assert set(manifest["group_a"]) == {"colour", "grey"}


def test_a_grouped_split_keeps_every_crop_of_a_photo_in_one_split(manifest: pd.DataFrame) -> None:
    split = split_by_source(manifest, IngestionConfig().split)
    assert (split.groupby("source_id")["split"].nunique() == 1).all()
    assert set(split["split"]) == {"train", "val", "test"}


def test_deterministic_for_a_seed_and_different_for_another(manifest: pd.DataFrame) -> None:
    row = manifest[manifest["label"] == "fake"].iloc[0].to_dict()
    first = render(row, TINY)
    second_source._crop.cache_clear()  # render again from scratch, not from the crop cache
    again = render(row, TINY)
    np.testing.assert_array_equal(first.pixels, again.pixels)
    np.testing.assert_array_equal(first.mask, again.mask)
    other = plan_manifest(TINY.model_copy(update={"seed": 4}))
    assert not other["seed"].isin(manifest["seed"]).any()
    pd.testing.assert_frame_equal(plan_manifest(TINY), manifest)


def test_a_real_is_untouched_and_a_fake_differs_from_it_inside_its_region(
    manifest: pd.DataFrame,
) -> None:
    real = render(manifest[manifest["label"] == "real"].iloc[0].to_dict(), TINY)
    assert real.pixels.shape == (64, 64, 3) and real.pixels.dtype == np.uint8
    assert not real.mask.any()
    config = SecondSourceConfig(image_size=128)
    crop = second_source._crop("astronaut", 7, 128)
    for family in FAMILIES:
        for seed in range(3):
            out, mask = MANIPULATE[family](np.random.default_rng(seed), crop, config)
            assert out.shape == crop.shape and out.dtype == np.uint8
            assert 0.005 < mask.mean() < 0.4, family
            change = np.abs(out.astype(float) - crop).max(axis=2)
            near = ndimage.binary_dilation(mask > 0, iterations=16)  # the soft edge
            assert change[mask > 0].mean() > 1.0, family  # the region was changed
            assert change[~near].max() <= 1.0, family  # and nothing far from it


def test_regions_are_random_and_not_centred() -> None:
    config = SecondSourceConfig(image_size=128)
    crop = second_source._crop("coffee", 11, 128)
    centres = []
    for seed in range(24):
        family = FAMILIES[seed % len(FAMILIES)]
        _, mask = MANIPULATE[family](np.random.default_rng(100 + seed), crop, config)
        centres.append(ndimage.center_of_mass(mask))
    centres = np.array(centres) / 128 - 0.5  # relative to the image centre
    assert len({tuple(np.round(c, 3)) for c in centres}) == len(centres)  # all different
    assert centres.std(axis=0).min() > 0.1  # spread over the image, rows and columns
    quadrants = {(bool(y > 0), bool(x > 0)) for y, x in centres}
    assert len(quadrants) == 4
    assert np.median(np.hypot(*centres.T)) > 0.1  # typically away from the centre


def test_written_dataset_passes_the_projects_validation(tmp_path) -> None:
    config = SecondSourceConfig(n_images=16, image_size=64)
    written = write_second_source_dataset(tmp_path, config)
    on_disk = pd.read_csv(tmp_path / "manifest.csv")
    assert len(on_disk) == len(written) == 16
    valid, problems = validate_manifest(
        on_disk, ImageStore(str(tmp_path)), IngestionConfig(min_group_size=1)
    )
    assert problems.empty and len(valid) == 16
    assert set(valid[["width", "height"]].drop_duplicates().itertuples(index=False)) == {(64, 64)}


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValidationError, match="families"):
        SecondSourceConfig(families=["copy_move", "copy_move"])
    with pytest.raises(ValidationError, match="region_area"):
        SecondSourceConfig(region_area=(0.2, 0.5))
    with pytest.raises(ValidationError, match="per family"):
        SecondSourceConfig(n_images=8, fake_fraction=0.2)
    with pytest.raises(ValueError, match="unknown manipulation 'gan'"):
        render({"manipulation": "gan", "image_path": "images/camera/00000_gan_0.png",
                "seed": 1}, TINY)  # fmt: skip
