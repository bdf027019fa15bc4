"""ImageTableDataset on real manifests and folders (local and fsspec's in-memory filesystem)."""

from __future__ import annotations

import uuid

import fsspec
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError

from deepfake_kedro.datasets import ImageTableDataset
from deepfake_kedro.inference.images import read_image_table


def write_tree(root, names):
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_csv_manifest_resolves_relative_paths_against_its_folder(tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    pd.DataFrame(
        {
            "image_path": [
                "images/a.png",
                "../shared/b.png",
                "/data/abs.png",
                "s3://bucket/key/c.png",
            ],
            "label": ["real", "fake", "real", "fake"],
        }
    ).to_csv(batch / "manifest.csv", index=False)

    table = ImageTableDataset(path=str(batch / "manifest.csv")).load()

    expected = [
        str(batch / "images/a.png"),
        str(tmp_path / "shared/b.png"),  # normalised, no ".."
        "/data/abs.png",
        "s3://bucket/key/c.png",
    ]
    assert table["image_path"].tolist() == expected
    assert table["label"].tolist() == ["real", "fake", "real", "fake"]  # other columns kept
    assert list(table.columns) == ["image_id", "image_path", "label"]
    assert table["image_id"].tolist() == expected


def test_manifest_image_id_is_kept(tmp_path):
    pd.DataFrame({"image_id": ["x", "y"], "image_path": ["a.png", "b.png"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    table = ImageTableDataset(path=str(tmp_path / "m.csv")).load()
    assert table["image_id"].tolist() == ["x", "y"]
    assert table["image_path"].tolist() == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]


def test_parquet_manifest(tmp_path):
    pd.DataFrame({"image_path": ["sub/a.png", "b.jpg"], "score_me": [1, 2]}).to_parquet(
        tmp_path / "manifest.parquet"
    )
    table = ImageTableDataset(path=str(tmp_path / "manifest.parquet")).load()
    assert table["image_path"].tolist() == [str(tmp_path / "sub/a.png"), str(tmp_path / "b.jpg")]
    assert table["score_me"].tolist() == [1, 2]


def test_manifest_with_only_image_bytes_gets_positional_ids(tmp_path):
    pd.DataFrame({"image_bytes": ["AAAA", "BBBB"]}).to_csv(tmp_path / "m.csv", index=False)
    table = ImageTableDataset(path=str(tmp_path / "m.csv")).load()
    assert table["image_id"].tolist() == ["0", "1"]
    assert table["image_bytes"].tolist() == ["AAAA", "BBBB"]


def test_mixed_manifest_ids_rows_of_inline_bytes_by_position(tmp_path):
    pd.DataFrame({"image_path": ["a.png", None], "image_bytes": [None, "AAAA"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    table = ImageTableDataset(path=str(tmp_path / "m.csv")).load()
    assert table["image_id"].tolist() == [str(tmp_path / "a.png"), "1"]
    assert table["image_path"].iloc[0] == str(tmp_path / "a.png")
    assert table["image_path"].isna().iloc[1]


def test_folder_is_listed_recursively_sorted_images_only(tmp_path):
    write_tree(
        tmp_path,
        ["b.png", "a/z.JPG", "a/y.webp", "c/d/e.tiff", "notes.txt", "manifest.csv", "a/.x.json"],
    )
    table = ImageTableDataset(path=str(tmp_path)).load()
    ids = ["a/y.webp", "a/z.JPG", "b.png", "c/d/e.tiff"]
    assert list(table.columns) == ["image_id", "image_path"]
    assert table["image_id"].tolist() == ids
    assert table["image_path"].tolist() == [str(tmp_path / i) for i in ids]
    # a trailing slash changes nothing
    assert ImageTableDataset(path=f"{tmp_path}/").load().equals(table)


def test_folder_without_images_is_an_error(tmp_path):
    write_tree(tmp_path, ["notes.txt"])
    with pytest.raises(DatasetError, match="no image files"):
        ImageTableDataset(path=str(tmp_path)).load()


def test_missing_path_says_how_to_point_at_the_input(tmp_path):
    dataset = ImageTableDataset(path=str(tmp_path / "nope.csv"))
    assert not dataset.exists()
    with pytest.raises(DatasetError, match="does not exist.*inference_input="):
        dataset.load()


def test_unsupported_file_suffix(tmp_path):
    (tmp_path / "images.json").write_text("[]")
    with pytest.raises(DatasetError, match=r"neither a folder nor a manifest \(\.csv, \.parquet"):
        ImageTableDataset(path=str(tmp_path / "images.json")).load()


def test_manifest_without_an_image_column(tmp_path):
    pd.DataFrame({"file": ["a.png"], "label": ["real"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(DatasetError, match="no 'image_path' column.*columns present: file, label"):
        ImageTableDataset(path=str(tmp_path / "m.csv")).load()


def test_save_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="read-only"):
        ImageTableDataset(path=str(tmp_path)).save(pd.DataFrame({"image_path": ["a.png"]}))


def test_catalog_entry_loads(tmp_path):
    write_tree(tmp_path, ["one.png"])
    catalog = DataCatalog.from_config(
        {"inference_images": {"type": "deepfake_kedro.datasets.ImageTableDataset", "path": str(tmp_path)}}
    )
    assert catalog.load("inference_images")["image_id"].tolist() == ["one.png"]


@pytest.fixture
def memory_root():
    """A unique folder on fsspec's in-memory filesystem, removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/tests-{uuid.uuid4().hex}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_remote_manifest_paths_keep_their_protocol_and_are_readable(memory_root):
    """A manifest on an fsspec filesystem yields URIs that read_image_table can open."""
    import io

    from PIL import Image

    fs, root = memory_root
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(buffer, "PNG")
    fs.pipe(f"{root}/batch/images/a.png", buffer.getvalue())
    with fs.open(f"{root}/batch/manifest.csv", "wb") as handle:
        handle.write(b"image_path\nimages/a.png\n")

    table = ImageTableDataset(path=f"memory://{root}/batch/manifest.csv").load()
    assert table["image_path"].tolist() == [f"memory://{root}/batch/images/a.png"]

    listed = ImageTableDataset(path=f"memory://{root}/batch").load()
    assert listed["image_id"].tolist() == ["images/a.png"]
    assert listed["image_path"].tolist() == [f"memory://{root}/batch/images/a.png"]

    batch = read_image_table(table)
    assert batch.table["error"].isna().all(), batch.table["error"].tolist()
