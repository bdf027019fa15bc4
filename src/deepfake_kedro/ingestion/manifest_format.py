"""What a manifest file that does not read as a comma-separated table looks like, and the fix.

Used where the manifest is read (:class:`deepfake_kedro.datasets.ManifestCSVDataset`): a binary
file (an image, a spreadsheet, a parquet file), text in another encoding, or a table separated
by another character, which pandas reads as one column whose name holds every header.
"""

from __future__ import annotations

import csv

#: Separators a manifest is likely to have been saved with, besides the comma.
CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
# File signatures a manifest path is likely to point at by mistake.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PAR1", "a Parquet file"),
    (b"PK\x03\x04", "a zip archive (an .xlsx spreadsheet is one)"),
    (b"\xd0\xcf\x11\xe0", "an Office document (an .xls spreadsheet?)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
)
CSV_FIX = (
    "point the manifest's catalog entry (raw_manifest, or --params raw_manifest_path=...) at a "
    "comma-separated UTF-8 text file with a header row (image_path,label,source_id,...); from "
    "a spreadsheet, save it as 'CSV UTF-8'"
)


def describe_unreadable(head: bytes) -> str:
    """What the first bytes of a file that did not decode as UTF-8 text show it to be."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return f"it is {kind}, not a CSV text file"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "it is UTF-16 text; save it as UTF-8 (or set load_args encoding: utf-16)"
    if b"\x00" in head:
        return "it is a binary file (it holds NUL bytes), not a CSV text file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not just a character cut at the end of the sample
            return (
                f"it is not UTF-8 text (byte {head[err.start]:#04x} at offset {err.start}); "
                "save it as UTF-8, or set the catalog entry's load_args encoding (e.g. "
                "latin-1) to the one it was saved in"
            )
    return "it does not read as UTF-8 text"


def sniff_delimiter(sample: str) -> str | None:
    """The separator a text sample's lines use, among :data:`CANDIDATE_DELIMITERS`; ``None``
    when no candidate splits its header into two fields or more."""
    lines = [line for line in sample.splitlines() if line.strip()][:20]
    if not lines:
        return None
    try:
        found = csv.Sniffer().sniff("\n".join(lines), delimiters="".join(CANDIDATE_DELIMITERS))
        delimiter: str | None = found.delimiter
    except csv.Error:
        delimiter = None
    if delimiter is None or lines[0].count(delimiter) == 0:
        counts = {d: lines[0].count(d) for d in CANDIDATE_DELIMITERS}
        delimiter = max(counts, key=counts.__getitem__)
        if counts[delimiter] == 0:
            return None
    return delimiter


def delimiter_hint(sample: str, sep: str = ",", columns: list[str] | None = None) -> str | None:
    """Why a table read with ``sep`` came out wrong, and the fix; ``None`` if the sample's
    separator is ``sep`` (or none is found).

    Args:
        sample: The start of the file as text.
        sep: The separator it was read with (the catalog entry's ``load_args.sep``).
        columns: The columns pandas read, if it read any: only a single column is a sign of
            the wrong separator.
    """
    if columns is not None and len(columns) != 1:
        return None
    delimiter = sniff_delimiter(sample)
    if delimiter is None or delimiter == sep:
        return None
    name = _NAMES.get(delimiter, repr(delimiter))
    value = "'\\t'" if delimiter == "\t" else f"'{delimiter}'"
    header = next((line for line in sample.splitlines() if line.strip()), "")
    shown = header if len(header) <= 80 else header[:77] + "..."
    return (
        f"looks {name}-delimited, not {_NAMES.get(sep, repr(sep))}-delimited (header: "
        f"{shown!r}); save it comma-separated, or set the catalog entry's load_args "
        f"sep: {value}"
    )
