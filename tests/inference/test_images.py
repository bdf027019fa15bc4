"""read_image_table on real image files and base64 payloads: per-row errors, hashes, order."""

from __future__ import annotations

import base64
import hashlib
import io
import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepfake_kedro.inference.images import InlineImageStore, read_image_table


def png(size: int = 16, seed: int = 0) -> bytes:
    """A small random RGB PNG (seeded, so two seeds give two different files)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def values(column: pd.Series) -> list:
    """The column as a list, missing values (None or NaN, by dtype) as None."""
    return [None if pd.isna(v) else v for v in column.tolist()]


@pytest.fixture
def images(tmp_path):
    """Two PNG files on disk: ``{name: bytes}``."""
    files = {"a.png": png(seed=1), "sub/b.png": png(seed=2)}
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    return files


def test_absolute_paths_are_read_hashed_and_stored(tmp_path, images):
    paths = [str(tmp_path / name) for name in images]
    batch = read_image_table(pd.DataFrame({"image_path": paths}))

    table = batch.table
    assert list(table.columns) == ["image_id", "image_path", "key", "content_hash", "error"]
    assert table["image_id"].tolist() == [0, 1]
    assert table["image_path"].tolist() == paths
    assert table["key"].tolist() == ["row-0", "row-1"]
    assert table["content_hash"].tolist() == [sha256(d) for d in images.values()]
    assert table["error"].isna().all()
    assert batch.store.read_bytes("row-0") == images["a.png"]
    assert batch.store.read_bytes("row-1") == images["sub/b.png"]


def test_relative_paths_resolve_against_base_dir_and_stay_as_given(tmp_path, images):
    batch = read_image_table(
        pd.DataFrame({"image_path": ["a.png", "sub/b.png"]}), base_dir=str(tmp_path)
    )
    assert batch.table["error"].isna().all(), values(batch.table["error"])
    assert values(batch.table["image_path"]) == ["a.png", "sub/b.png"]
    assert values(batch.table["content_hash"]) == [sha256(d) for d in images.values()]


def test_base64_and_data_url_payloads(images):
    a, b = images["a.png"], images["sub/b.png"]
    batch = read_image_table(
        pd.DataFrame({"image_bytes": [b64(a), f"data:image/png;base64,{b64(b)}"]})
    )
    table = batch.table
    assert table["error"].isna().all(), table["error"].tolist()
    assert values(table["image_path"]) == [None, None]
    assert table["content_hash"].tolist() == [sha256(a), sha256(b)]
    assert batch.store.read_bytes("row-0") == a
    assert batch.store.read_bytes("row-1") == b


def test_invalid_base64_is_a_row_error_not_a_batch_failure(images):
    batch = read_image_table(pd.DataFrame({"image_bytes": ["not base64 at all!", b64(images["a.png"])]}))
    errors = values(batch.table["error"])
    assert errors[0].startswith("ValueError: image_bytes is not valid base64")
    assert errors[1] is None
    assert values(batch.table["content_hash"]) == [None, sha256(images["a.png"])]
    assert list(batch.store.images) == ["row-1"]


def test_both_columns_with_one_missing_per_row(tmp_path, images):
    frame = pd.DataFrame(
        {
            "image_path": [str(tmp_path / "a.png"), np.nan],
            "image_bytes": [np.nan, b64(images["sub/b.png"])],
        }
    )
    batch = read_image_table(frame)
    assert batch.table["error"].isna().all(), values(batch.table["error"])
    assert values(batch.table["image_path"]) == [str(tmp_path / "a.png"), None]
    assert values(batch.table["content_hash"]) == [sha256(d) for d in images.values()]


def test_nullable_string_columns_count_missing_as_missing(tmp_path, images):
    """pd.NA (nullable dtypes, e.g. after convert_dtypes) is a missing value, not text."""
    frame = pd.DataFrame(
        {
            "image_path": pd.array([str(tmp_path / "a.png"), None], dtype="string[python]"),
            "image_bytes": pd.array([None, b64(images["sub/b.png"])], dtype="string[python]"),
        }
    )
    batch = read_image_table(frame)
    assert batch.table["error"].isna().all(), values(batch.table["error"])
    assert values(batch.table["content_hash"]) == [sha256(d) for d in images.values()]


def test_row_with_neither_value_is_an_error(images):
    batch = read_image_table(pd.DataFrame({"image_path": ["  ", None]}))
    assert values(batch.table["error"]) == [
        "ValueError: neither image_path nor image_bytes is set"
    ] * 2


def test_missing_file_names_file_not_found(tmp_path, images):
    batch = read_image_table(
        pd.DataFrame({"image_path": [str(tmp_path / "a.png"), str(tmp_path / "gone.png")]})
    )
    errors = values(batch.table["error"])
    assert errors[0] is None
    assert errors[1].startswith("FileNotFoundError")
    assert values(batch.table["content_hash"])[1] is None
    assert list(batch.store.images) == ["row-0"]


def test_truncated_png_is_an_error(images):
    data = images["a.png"]
    batch = read_image_table(pd.DataFrame({"image_bytes": [b64(data[: len(data) // 2])]}))
    assert values(batch.table["error"]) == ["OSError: image file is truncated"]
    assert batch.table["content_hash"].isna().all()
    assert batch.store.images == {}


def test_not_an_image_is_an_error():
    batch = read_image_table(pd.DataFrame({"image_bytes": [b64(b"just some text")]}))
    assert batch.table["error"].iloc[0].startswith("UnidentifiedImageError")


def test_images_under_8_px_are_refused_and_8_px_is_accepted():
    batch = read_image_table(pd.DataFrame({"image_bytes": [b64(png(7)), b64(png(8))]}))
    assert values(batch.table["error"]) == [
        "ValueError: image is 7x7 px, too small to score",
        None,
    ]


def test_images_over_max_image_mb_are_refused(tmp_path, images):
    size = len(images["a.png"])
    limit_mb = (size - 1) / 2**20  # one byte too few
    frame = pd.DataFrame(
        {"image_path": [str(tmp_path / "a.png"), None], "image_bytes": [None, b64(images["a.png"])]}
    )
    errors = values(read_image_table(frame, max_image_mb=limit_mb).table["error"])
    assert all(e is not None and "over max_image_mb" in e for e in errors), errors

    fits = values(read_image_table(frame, max_image_mb=size / 2**20).table["error"])
    assert fits == [None, None]


def test_neither_column_raises_listing_the_columns():
    with pytest.raises(ValueError, match=r"columns present: label, filename$"):
        read_image_table(pd.DataFrame({"label": ["real"], "filename": ["a.png"]}))


def test_non_dataframe_raises():
    with pytest.raises(ValueError, match="must be a pandas DataFrame.*got list"):
        read_image_table([{"image_path": "a.png"}])


def test_image_id_is_carried_through_and_index_preserved(tmp_path, images):
    frame = pd.DataFrame(
        {
            "image_id": ["x", "y", "z"],
            "image_path": [str(tmp_path / "a.png"), str(tmp_path / "gone.png"), str(tmp_path / "sub/b.png")],
            "label": ["real", "fake", "fake"],  # other columns are ignored
        },
        index=[30, 10, 20],
    )
    batch = read_image_table(frame)
    assert batch.table.index.tolist() == [30, 10, 20]
    assert values(batch.table["image_id"]) == ["x", "y", "z"]

    readable = batch.readable
    assert list(readable.columns) == ["image_path", "content_hash"]
    assert readable.index.tolist() == [30, 20]
    assert readable["image_path"].tolist() == ["row-0", "row-2"]
    assert readable["content_hash"].tolist() == [sha256(d) for d in images.values()]


def test_default_image_id_is_the_row_position_not_the_index(tmp_path, images):
    frame = pd.DataFrame({"image_path": [str(tmp_path / "a.png")] * 3}, index=[7, 5, 9])
    batch = read_image_table(frame)
    assert values(batch.table["image_id"]) == [0, 1, 2]
    assert batch.table.index.tolist() == [7, 5, 9]


def test_inline_store_pickles_with_its_bytes(images):
    batch = read_image_table(pd.DataFrame({"image_bytes": [b64(images["a.png"])]}))
    copy = pickle.loads(pickle.dumps(batch.store))
    assert isinstance(copy, InlineImageStore)
    assert copy.read_bytes("row-0") == images["a.png"]
    assert copy.root_uri == InlineImageStore.root_uri
    with pytest.raises(KeyError):
        copy.read_bytes("row-1")
