"""What an unreadable or mis-delimited manifest looks like, and the fix the message gives."""

import pytest

from deepfake_kedro.ingestion.manifest_format import (
    delimiter_hint,
    describe_unreadable,
    sniff_delimiter,
)

HEADER = ["image_path", "label", "source_id", "captured_at"]
ROWS = [["a/1.png", "real", "s1", "2026-01-02T03:04:05Z"], ["a/2.png", "fake", "s1", ""]]


def _table(sep: str) -> str:
    return "\n".join(sep.join(row) for row in [HEADER, *ROWS]) + "\n"


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_sniffs_the_separator(sep):
    assert sniff_delimiter(_table(sep)) == sep


def test_no_separator_in_a_one_column_text():
    assert sniff_delimiter("image_path\na.png\nb.png\n") is None
    assert sniff_delimiter("") is None


@pytest.mark.parametrize(
    ("sep", "named", "value"), [(";", "';'", "';'"), ("\t", "tab", "'\\t'"), ("|", "'|'", "'|'")]
)
def test_a_one_column_read_says_the_separator_and_the_fix(sep, named, value):
    hint = delimiter_hint(_table(sep), ",", [sep.join(HEADER)])
    assert hint.startswith(f"looks {named}-delimited, not ','-delimited")
    assert "image_path" in hint
    assert "save it comma-separated" in hint and f"load_args sep: {value}" in hint


def test_no_hint_when_the_table_read_fine():
    assert delimiter_hint(_table(","), ",", HEADER) is None
    assert delimiter_hint(_table(";"), ";", [";".join(HEADER)]) is None  # read with its sep
    assert delimiter_hint(_table(";"), ",", HEADER) is None  # several columns came out


@pytest.mark.parametrize(
    ("head", "said"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
        (b"PAR1\x15\x04\x15", "a Parquet file"),
        (b"PK\x03\x04\x14\x00\x06\x00", ".xlsx spreadsheet"),
        (b"\x00\x01\x02\x03binary", "binary file"),
        (b"\xff\xfei\x00m\x00a\x00", "UTF-16"),
        ("image_path,label\nb\xe9b\xe9.png,real\n".encode("latin-1"), "not UTF-8 text"),
    ],
)
def test_describes_what_a_non_text_manifest_is(head, said):
    assert said in describe_unreadable(head)
