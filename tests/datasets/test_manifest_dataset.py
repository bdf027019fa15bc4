"""ManifestCSVDataset: pandas.CSVDataset whose errors say what the file is and how to fix it."""

import pandas as pd
import pytest
from kedro.io import DatasetError

from deepfake_kedro.datasets import ManifestCSVDataset
from deepfake_kedro.ingestion import DataValidationError

GOOD = "image_path,label,source_id\na/1.png,real,s1\na/2.png,fake,s1\n"


def _load(path, **load_args):
    return ManifestCSVDataset(filepath=str(path), load_args=load_args or None).load()


def _cause(error: DatasetError) -> BaseException:
    assert isinstance(error.__cause__, DataValidationError)
    return error.__cause__


def test_a_comma_separated_manifest_loads_as_pandas_would(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(GOOD)
    pd.testing.assert_frame_equal(_load(path), pd.read_csv(path))
    path.write_text(GOOD.replace(",", ";"))
    assert list(_load(path, sep=";").columns) == ["image_path", "label", "source_id"]


def test_a_semicolon_manifest_says_so_and_how_to_fix_it(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text(GOOD.replace(",", ";"))
    with pytest.raises(DatasetError) as raised:
        _load(path)
    message = str(_cause(raised.value))
    assert message.startswith(f"the manifest {path} looks ';'-delimited")
    assert "save it comma-separated" in message and "load_args sep: ';'" in message


def test_a_binary_manifest_says_what_it_is(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(DatasetError) as raised:
        _load(path)
    message = str(_cause(raised.value))
    assert "cannot be read as a CSV table: it is a PNG image" in message
    assert "utf-8" not in message.lower().split("fix:")[0]  # not the codec's words
    assert "CSV UTF-8" in message


def test_an_empty_or_ragged_manifest_says_so(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("")
    with pytest.raises(DatasetError) as raised:
        _load(path)
    assert "is empty" in str(_cause(raised.value))
    path.write_text("image_path,label\na.png,real\nb.png,fake,extra,fields\n")
    with pytest.raises(DatasetError) as raised:
        _load(path)
    assert "is not a well-formed CSV table" in str(_cause(raised.value))


def test_a_missing_manifest_keeps_the_usual_error(tmp_path):
    with pytest.raises(DatasetError, match="No such file") as raised:
        _load(tmp_path / "none.csv")
    assert not isinstance(raised.value.__cause__, DataValidationError)
