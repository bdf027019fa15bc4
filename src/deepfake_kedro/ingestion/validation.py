"""Manifest schema and image checks.

:func:`validate_manifest` checks every row of a manifest (``image_path``, ``label``,
``source_id`` and optional ``manipulation``, group columns, ``captured_at``, ``face_box``) and
every image it points at, records each problem as a row of a *problems* table, and applies the
``on_invalid`` policy: ``fail`` raises one error listing the first problems, ``drop`` keeps
the good rows and goes on.

Each family of checks (duplicate rows, cell values, paths, timestamps, face boxes, images) is
its own function returning its problems; ``validate_manifest`` runs them in that order and
combines them, so a row's problems are listed in the order of the families.

Group sizes are not a problem of a row: a value of a group column with fewer than
``min_group_size`` rows is too small to judge the model's fairness on, which says nothing
about its images. :func:`small_groups` finds them; validation logs a warning and keeps the
rows (under both policies), the data-quality report lists them, and the validation
pipeline's fairness check reports such groups as too small to judge.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import struct
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, ImageFile, UnidentifiedImageError

from deepfake_kedro.ingestion.config import IngestionConfig
from deepfake_kedro.ingestion.face_box import COLUMN as FACE_BOX
from deepfake_kedro.ingestion.face_box import FaceBox, format_face_box, parse_face_box
from deepfake_kedro.io.image_store import ImageStore, PathEscapeError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_path", "label", "source_id")
LABELS = ("real", "fake")
PROBLEM_COLUMNS = ("row", "image_path", "reason", "check")
#: Columns that validate_manifest computes; a manifest column of the same name is replaced.
ADDED_COLUMNS = ("row", "content_hash", "width", "height", "file_size", "captured_at_source")
DEFAULT_MANIPULATION = {"real": "none", "fake": "unknown"}

_PROGRESS_MIN_IMAGES = 100
_DROP_HINT = (
    "Fix the manifest or the images, or set data_ingestion.on_invalid: drop to drop the bad "
    "rows and continue (every dropped row and its reason is kept in the problems table)."
)


class DataValidationError(ValueError):
    """The manifest or its images cannot be used.

    Attributes:
        problems: The problems table (columns ``row``, ``image_path``, ``reason``, ``check``)
            when the error comes from per-row checks, else ``None``.
    """

    def __init__(self, message: str, problems: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class _ImageInfo:
    content_hash: str
    width: int
    height: int
    file_size: int
    modified: pd.Timestamp | None = None
    modified_error: str | None = None


@dataclass(frozen=True)
class _ImageProblem:
    check: str
    reason: str


class _Problem(NamedTuple):
    """One problem of one manifest row (``index``: its 0-based position)."""

    index: int
    check: str
    reason: str


def validate_manifest(
    manifest: pd.DataFrame, store: ImageStore, config: IngestionConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check a manifest and its images, and return the usable rows and the problems found.

    Args:
        manifest: One row per image: ``image_path`` (relative to the store root), ``label``
            (``real``/``fake``), ``source_id``, optional ``manipulation``, the configured group
            columns, optional ``captured_at`` and optional ``face_box`` (relative
            ``x0,y0,x1,y1`` of the face, or empty).
        store: Where the images live; every image is read through ``store.read_bytes``.
        config: Ingestion parameters (policy, group columns, size limits, threads).

    Returns:
        ``(valid, problems)``. ``valid`` holds the good rows with ``label`` normalised,
        ``manipulation`` filled, ``captured_at`` as ISO-8601 UTC strings and the added columns
        ``row`` (1-based manifest row), ``content_hash`` (sha256 of the file), ``width``,
        ``height``, ``file_size`` and ``captured_at_source`` (``manifest``/``file_mtime``);
        ``face_box``, when the manifest has it, in one canonical form (``""`` for none).
        ``problems`` has one row per problem: ``row``, ``image_path``, ``reason``, ``check``.

    Raises:
        DataValidationError: if columns are missing or the manifest is empty; with
            ``on_invalid: fail`` if any problem is found; with ``on_invalid: drop`` if no
            valid row (or no row of one label) remains.
    """
    _check_columns(manifest, config)
    df = manifest.reset_index(drop=True)
    paths = [_clean(v) for v in df["image_path"]]
    cells = {c: [_clean(v) for v in df[c]] for c in (*REQUIRED_COLUMNS, *config.group_columns)}

    # Each check family returns its problems; a row with any problem is rejected. Exact
    # copies of an earlier row are reported once and checked no further (the first copy is).
    copy_of = _first_duplicate_rows(df)
    problems = _duplicate_row_problems(copy_of)
    checked = [i for i in range(len(df)) if i not in copy_of]
    labels, found = _value_problems(cells, checked, config.group_columns)
    problems += found
    resolved, found = _path_problems(store, paths, checked)
    problems += found
    timestamps, need_mtime, found = _parse_captured_at(df, checked)
    problems += found
    boxes, found = _face_box_problems(df, checked)
    problems += found
    images = _read_images(store, paths, resolved, need_mtime, config.num_workers)
    file_times, found = _image_problems(images, need_mtime, config.min_image_size)
    timestamps.update(file_times)
    problems += found
    group_values = {
        column: df[column].map(lambda v: v.strip() if isinstance(v, str) else v)
        for column in config.group_columns
    }

    bad = _rejected(problems, len(df))
    problems_table = _problems_table(problems, paths)
    _report_policy(problems_table, int(bad.sum()), len(df), config)
    valid = _valid_table(
        df, ~bad, paths, labels, cells["source_id"], group_values, timestamps, need_mtime, images
    )
    if FACE_BOX in df.columns:
        valid[FACE_BOX] = pd.Series(
            [format_face_box(boxes.get(i)) for i in np.flatnonzero(~bad)], dtype=object
        ).astype(str)
    _check_labels_left(valid, problems_table, len(df), config)
    _warn_duplicate_content(valid)
    _warn_small_groups(valid, config)
    logger.info(
        "Validated %d manifest rows: %d valid, %d rejected (%d problems)",
        len(df),
        len(valid),
        int(bad.sum()),
        len(problems_table),
    )
    return valid, problems_table


def _rejected(problems: list[_Problem], n_rows: int) -> np.ndarray:
    """The rows (by position) that have at least one problem."""
    bad = np.zeros(n_rows, dtype=bool)
    bad[[p.index for p in problems]] = True
    return bad


def _duplicate_row_problems(copy_of: dict[int, int]) -> list[_Problem]:
    return [
        _Problem(i, "duplicate_row", f"duplicate row: identical to manifest row {first + 1}")
        for i, first in copy_of.items()
    ]


def _value_problems(
    cells: dict[str, list[str | None]], checked: list[int], group_columns: list[str]
) -> tuple[list[str | None], list[_Problem]]:
    """Empty required or group cells, and labels other than real/fake.

    Returns:
        The normalised label of each row (``None`` where it is missing or unknown) and the
        problems.
    """
    labels: list[str | None] = [None] * len(cells["label"])
    problems: list[_Problem] = []
    for i in checked:
        problems += [
            _Problem(i, "missing_value", f"missing value: {column} is empty")
            for column in REQUIRED_COLUMNS
            if cells[column][i] is None
        ]
        problems += [
            _Problem(
                i,
                "missing_value",
                f"missing value: group column {column} is empty (it is listed in "
                "data_ingestion.group_columns)",
            )
            for column in group_columns
            if cells[column][i] is None
        ]
        raw_label = cells["label"][i]
        if raw_label is None:
            continue
        if raw_label.lower() in LABELS:
            labels[i] = raw_label.lower()
        else:
            problems.append(
                _Problem(i, "label", f"label {raw_label!r} is not one of {', '.join(LABELS)}")
            )
    return labels, problems


def _path_problems(
    store: ImageStore, paths: list[str | None], checked: list[int]
) -> tuple[dict[int, str], list[_Problem]]:
    """Paths outside the image root, and paths naming an image an earlier row names.

    Returns:
        The store key of each row whose image is to be read, and the problems.
    """
    resolved: dict[int, str] = {}
    first_row_of_key: dict[str, int] = {}
    problems: list[_Problem] = []
    for i in checked:
        if paths[i] is None:
            continue
        try:
            key = store.resolve(paths[i])
        except PathEscapeError as exc:
            problems.append(_Problem(i, "path_escape", f"path outside the image root: {exc}"))
            continue
        if key in first_row_of_key:
            first = first_row_of_key[key]
            same = "" if paths[first] == paths[i] else f" (as {paths[first]!r})"
            problems.append(
                _Problem(
                    i,
                    "duplicate_path",
                    "duplicate path: the same image is already listed at manifest row "
                    f"{first + 1}{same}",
                )
            )
            continue
        first_row_of_key[key] = i
        resolved[i] = key
    return resolved, problems


def _image_problems(
    images: dict[int, _ImageInfo | _ImageProblem], need_mtime: set[int], min_size: int
) -> tuple[dict[int, pd.Timestamp], list[_Problem]]:
    """Unreadable, truncated or too small images, and missing file times where needed.

    Returns:
        The file modification time of each row that takes its ``captured_at`` from it, and
        the problems.
    """
    file_times: dict[int, pd.Timestamp] = {}
    problems: list[_Problem] = []
    for i, result in images.items():
        if isinstance(result, _ImageProblem):
            problems.append(_Problem(i, result.check, result.reason))
            continue
        shorter = min(result.width, result.height)
        if shorter < min_size:
            problems.append(
                _Problem(
                    i,
                    "too_small",
                    f"image too small: {result.width}x{result.height} pixels, shorter side "
                    f"{shorter} < data_ingestion.min_image_size {min_size}",
                )
            )
        if i not in need_mtime:
            continue
        if result.modified is None:
            problems.append(
                _Problem(
                    i,
                    "bad_timestamp",
                    "no captured_at in the manifest and the store gives no modification "
                    f"time ({result.modified_error}); add a captured_at column",
                )
            )
        else:
            file_times[i] = result.modified
    return file_times, problems


def _check_columns(manifest: pd.DataFrame, config: IngestionConfig) -> None:
    present = [str(c) for c in manifest.columns]
    if manifest.shape[1] == 0:
        raise DataValidationError(
            "the manifest is empty (no columns and no rows); point the catalog at a manifest "
            f"with the columns {', '.join(REQUIRED_COLUMNS)} and one row per image"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in manifest.columns]
    if missing:
        raise DataValidationError(
            f"the manifest is missing required column(s) {', '.join(missing)}"
            f"{_near_names(missing, present)}; columns present: {', '.join(present)}. "
            f"Add the column(s); every manifest needs {', '.join(REQUIRED_COLUMNS)}."
        )
    missing_groups = [c for c in config.group_columns if c not in manifest.columns]
    if missing_groups:
        raise DataValidationError(
            f"the manifest has no column(s) {', '.join(missing_groups)} listed in "
            f"data_ingestion.group_columns{_near_names(missing_groups, present)}; columns "
            f"present: {', '.join(present)}. Set data_ingestion.group_columns to the group "
            "columns you have (or to []) or add the column(s) to the manifest."
        )
    if len(manifest) == 0:
        raise DataValidationError(
            f"the manifest has no data rows (columns: {', '.join(present)}); point the catalog "
            "at a manifest with at least one image per label"
        )


def _near_names(missing: list[str], present: list[str]) -> str:
    """Hint at columns that differ only by case or surrounding spaces."""
    hints = [
        f"{p!r} for {m!r}"
        for m in missing
        for p in present
        if p.strip().lower() == m.lower() and p != m
    ]
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def _clean(value: Any) -> str | None:
    """A cell as a stripped string, or None when it is missing or blank."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return text or None


def _first_duplicate_rows(df: pd.DataFrame) -> dict[int, int]:
    """Map each row that exactly repeats an earlier row to that earlier row's position."""
    hashes = pd.util.hash_pandas_object(df, index=False).to_numpy()
    first_seen: dict[int, int] = {}
    copies: dict[int, int] = {}
    for i, h in enumerate(hashes):
        h = int(h)
        if h in first_seen:
            copies[i] = first_seen[h]
        else:
            first_seen[h] = i
    return copies


def _parse_captured_at(
    df: pd.DataFrame, checked: list[int]
) -> tuple[dict[int, pd.Timestamp], set[int], list[_Problem]]:
    """Parse ``captured_at``.

    Returns:
        The parsed timestamps, the rows that need file mtimes (no ``captured_at``) and the
        problems (values that are not a date/time).
    """
    if "captured_at" not in df.columns:
        return {}, set(checked), []
    column = df["captured_at"].tolist()
    texts = {i: _clean(column[i]) for i in checked}
    need_mtime = {i for i, t in texts.items() if t is None}
    given = {i: t for i, t in texts.items() if t is not None}
    parsed = pd.to_datetime(
        pd.Series(list(given.values()), index=list(given.keys()), dtype=object),
        utc=True,
        errors="coerce",
        format="ISO8601",
    )
    timestamps: dict[int, pd.Timestamp] = {}
    problems: list[_Problem] = []
    for i, text in given.items():
        ts = parsed.get(i)
        if ts is None or pd.isna(ts):
            ts = _parse_one_timestamp(text)
        if ts is None:
            problems.append(
                _Problem(
                    i,
                    "bad_timestamp",
                    f"captured_at {text!r} is not a date/time; use ISO-8601 such as "
                    "2024-05-01T12:00:00Z",
                )
            )
        else:
            timestamps[i] = ts
    if need_mtime:
        logger.info(
            "%d manifest rows have an empty captured_at; using the image files' modification "
            "times for them (captured_at_source = file_mtime)",
            len(need_mtime),
        )
    return timestamps, need_mtime, problems


def _face_box_problems(
    df: pd.DataFrame, checked: list[int]
) -> tuple[dict[int, FaceBox], list[_Problem]]:
    """Parse the optional ``face_box`` column (relative ``x0,y0,x1,y1``; empty: none).

    Returns:
        The box of each row that has a valid one, and a ``face_box`` problem per bad value.
    """
    if FACE_BOX not in df.columns:
        return {}, []
    boxes: dict[int, FaceBox] = {}
    problems: list[_Problem] = []
    for i in checked:
        try:
            box = parse_face_box(df[FACE_BOX].iloc[i])
        except ValueError as exc:
            problems.append(_Problem(i, "face_box", str(exc)))
            continue
        if box is not None:
            boxes[i] = box
    return boxes, problems


def _parse_one_timestamp(text: str) -> pd.Timestamp | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ts = pd.to_datetime(text, utc=True)
        except (ValueError, TypeError, OverflowError):
            return None
    return None if pd.isna(ts) else ts


def _format_timestamp(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_images(
    store: ImageStore,
    paths: list[str | None],
    resolved: dict[int, str],
    need_mtime: set[int],
    num_workers: int,
) -> dict[int, _ImageInfo | _ImageProblem]:
    """Read and check every resolved image on a thread pool (I/O bound, also on S3)."""
    total = len(resolved)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        logger.warning(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process; truncated JPEGs "
            "may pass the image checks"
        )
    logger.info("Checking %d images under %s with %d threads", total, store.root_uri, num_workers)
    step = max(1, math.ceil(total / 10))
    results: dict[int, _ImageInfo | _ImageProblem] = {}
    with ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="ingest") as pool:
        futures = {
            pool.submit(_inspect_image, store, paths[i], key, i in need_mtime): i
            for i, key in resolved.items()
        }
        for done, future in enumerate(as_completed(futures), start=1):
            results[futures[future]] = future.result()
            if total >= _PROGRESS_MIN_IMAGES and (done % step == 0 or done == total):
                logger.info("Checked %d/%d images (%.0f%%)", done, total, 100 * done / total)
    return results


def _inspect_image(
    store: ImageStore, path: str, key: str, want_mtime: bool
) -> _ImageInfo | _ImageProblem:
    """Read one image, hash it and check that it decodes completely."""
    try:
        data = store.read_bytes(path)
    except FileNotFoundError:
        return _ImageProblem(
            "missing_file", f"missing file: not found under the image root {store.root_uri!r}"
        )
    except IsADirectoryError:
        return _ImageProblem("missing_file", "missing file: the path is a folder, not a file")
    except PathEscapeError as exc:
        return _ImageProblem("path_escape", f"path outside the image root: {exc}")
    except Exception as exc:  # not every fsspec backend implements modified()  # PIL raises many types for bad data  # any store error is reported against its row
        return _ImageProblem(
            "unreadable_image", f"unreadable file: {type(exc).__name__}: {exc}"
        )
    if not data:
        return _ImageProblem("unreadable_image", "not an image: the file is empty (0 bytes)")
    fmt = "image"
    try:
        # verify() checks the structure (PNG chunk CRCs); only a full load() on a fresh
        # handle decodes all pixel data, which is what catches a truncated JPEG.
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or fmt
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            width, height = image.size
    except UnidentifiedImageError:
        return _ImageProblem(
            "unreadable_image",
            f"not an image: PIL cannot identify the file ({len(data)} bytes)",
        )
    except Exception as exc:
        if _looks_truncated(exc):
            return _ImageProblem(
                "truncated_image",
                f"truncated image: {fmt} data ends early ({len(data)} bytes): {exc}",
            )
        return _ImageProblem(
            "unreadable_image", f"corrupt image: {fmt} does not decode: {type(exc).__name__}: {exc}"
        )
    modified, modified_error = (None, None)
    if want_mtime:
        modified, modified_error = _modified_time(store, key)
    return _ImageInfo(
        content_hash=hashlib.sha256(data).hexdigest(),
        width=int(width),
        height=int(height),
        file_size=len(data),
        modified=modified,
        modified_error=modified_error,
    )


def _looks_truncated(exc: Exception) -> bool:
    return isinstance(exc, (EOFError, struct.error)) or "truncat" in str(exc).lower()


def _modified_time(store: ImageStore, key: str) -> tuple[pd.Timestamp | None, str | None]:
    """File modification time from the store (local mtime, S3 LastModified...), as UTC."""
    value: Any = None
    error = "no modification time"
    try:
        value = store.fs.modified(key)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        try:
            info = store.fs.info(key)
        except Exception as info_exc:
            return None, f"{type(info_exc).__name__}: {info_exc}"
        for name in ("mtime", "LastModified", "last_modified", "modified", "updated", "created"):
            if info.get(name) is not None:
                value = info[name]
                break
    if value is None:
        return None, error
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, tz=UTC)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        return None, f"unparseable modification time {value!r}: {exc}"
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts, None


def small_groups(
    valid: pd.DataFrame, group_columns: list[str], min_size: int
) -> dict[str, dict[str, int]]:
    """Values of group columns with fewer than ``min_size`` rows: too small to judge.

    Args:
        valid: Validated rows (one per image).
        group_columns: The group columns to count (absent ones are skipped).
        min_size: ``data_ingestion.min_group_size``.

    Returns:
        Column -> {value: rows} for each small value, smallest first; columns without a small
        value are left out.
    """
    found: dict[str, dict[str, int]] = {}
    for column in group_columns:
        if column not in valid.columns:
            continue
        counts = valid[column].astype(str).value_counts()
        small = counts[counts < min_size].sort_index(kind="stable").sort_values(kind="stable")
        if not small.empty:
            found[column] = {str(value): int(n) for value, n in small.items()}
    return found


def small_group_lines(groups: dict[str, dict[str, int]], min_size: int) -> list[str]:
    """One sentence per small group, as the warning and the data-quality report give it."""
    return [
        f"group {column} {value!r} has {n} image(s), fewer than data_ingestion.min_group_size "
        f"{min_size}: too small to judge fairness on; its rows are kept (add images of the "
        "group, merge it with another, or lower min_group_size)"
        for column, values in groups.items()
        for value, n in values.items()
    ]


def _warn_small_groups(valid: pd.DataFrame, config: IngestionConfig) -> None:
    for line in small_group_lines(
        small_groups(valid, config.group_columns, config.min_group_size), config.min_group_size
    ):
        logger.warning("Small group: %s", line)


def _problems_table(problems: list[_Problem], paths: list[str | None]) -> pd.DataFrame:
    """The problems as a table, by manifest row (a row's problems in the order found)."""
    rows = [
        {"row": p.index + 1, "image_path": paths[p.index] or "", "reason": p.reason,
         "check": p.check}
        for p in problems
    ]
    table = pd.DataFrame(rows, columns=list(PROBLEM_COLUMNS))
    table = table.sort_values("row", kind="stable").reset_index(drop=True)
    table["row"] = table["row"].astype("int64")
    for column in ("image_path", "reason", "check"):
        table[column] = table[column].astype(str)
    return table


def _format_problems(problems: pd.DataFrame, limit: int) -> str:
    lines = [
        f"  manifest row {r.row} ({r.image_path or '<no path>'}): {r.reason}"
        for r in problems.head(limit).itertuples(index=False)
    ]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def _count_by_check(problems: pd.DataFrame) -> str:
    counts = Counter(problems["check"])
    return ", ".join(f"{check}: {n}" for check, n in counts.most_common())


def _report_policy(
    problems: pd.DataFrame, n_bad: int, n_rows: int, config: IngestionConfig
) -> None:
    if problems.empty:
        return
    if config.on_invalid == "fail":
        raise DataValidationError(
            f"manifest validation found {len(problems)} problem(s) in {n_bad} of {n_rows} rows "
            f"({_count_by_check(problems)}); data_ingestion.on_invalid is 'fail'. First "
            f"problems:\n{_format_problems(problems, config.max_errors_shown)}\n{_DROP_HINT}",
            problems=problems,
        )
    logger.warning(
        "Dropping %d of %d manifest rows with %d problem(s) (%s); see the problems table",
        n_bad,
        n_rows,
        len(problems),
        _count_by_check(problems),
    )


def _valid_table(
    df: pd.DataFrame,
    keep: np.ndarray,
    paths: list[str | None],
    labels: list[str | None],
    source_ids: list[str | None],
    group_values: dict[str, pd.Series],
    timestamps: dict[int, pd.Timestamp],
    need_mtime: set[int],
    images: dict[int, _ImageInfo | _ImageProblem],
) -> pd.DataFrame:
    replaced = [c for c in ADDED_COLUMNS if c in df.columns]
    if replaced:
        logger.warning("Manifest columns %s are recomputed by validation and replaced", replaced)
    index = np.flatnonzero(keep)
    valid = df.drop(columns=replaced).iloc[index].reset_index(drop=True)
    infos = [images[i] for i in index]
    valid.insert(0, "row", pd.Series(index + 1, dtype="int64"))
    valid["image_path"] = pd.Series([paths[i] for i in index], dtype=object).astype(str)
    valid["label"] = pd.Series([labels[i] for i in index], dtype=object).astype(str)
    valid["source_id"] = pd.Series([source_ids[i] for i in index], dtype=object).astype(str)
    for column, values in group_values.items():
        valid[column] = values.iloc[index].reset_index(drop=True)
    manipulation = (
        [_clean(v) for v in df["manipulation"].iloc[index]]
        if "manipulation" in df.columns
        else [None] * len(index)
    )
    valid["manipulation"] = pd.Series(
        [
            m if m is not None else DEFAULT_MANIPULATION[labels[i]]
            for i, m in zip(index, manipulation, strict=True)
        ],
        dtype=object,
    ).astype(str)
    valid["captured_at"] = pd.Series(
        [_format_timestamp(timestamps[i]) for i in index], dtype=object
    ).astype(str)
    valid["captured_at_source"] = pd.Series(
        ["file_mtime" if i in need_mtime else "manifest" for i in index], dtype=object
    ).astype(str)
    valid["content_hash"] = pd.Series([info.content_hash for info in infos], dtype=object).astype(
        str
    )
    for column in ("width", "height", "file_size"):
        valid[column] = pd.Series([getattr(info, column) for info in infos], dtype="int64")
    return valid


def _check_labels_left(
    valid: pd.DataFrame, problems: pd.DataFrame, n_rows: int, config: IngestionConfig
) -> None:
    if valid.empty:
        raise DataValidationError(
            f"no valid rows remain: all {n_rows} manifest rows were rejected "
            f"({_count_by_check(problems)}). First problems:\n"
            f"{_format_problems(problems, config.max_errors_shown)}",
            problems=problems,
        )
    counts = valid["label"].value_counts()
    absent = [label for label in LABELS if counts.get(label, 0) == 0]
    if absent:
        dropped = f" after dropping {n_rows - len(valid)} rejected rows" if len(problems) else ""
        raise DataValidationError(
            f"no {' or '.join(repr(a) for a in absent)} images remain{dropped} "
            f"({len(valid)} valid rows, all {counts.index[0]!r}); a detector needs both labels. "
            "Add images of the missing label or fix the rejected rows (see the problems table).",
            problems=problems,
        )


def _warn_duplicate_content(valid: pd.DataFrame) -> None:
    """Identical files under different paths leak across splits when sources differ."""
    repeated = valid[valid.duplicated("content_hash", keep=False)]
    if repeated.empty:
        return
    crossing = repeated.groupby("content_hash")["source_id"].nunique()
    example = repeated.groupby("content_hash")["row"].apply(list).iloc[0]
    logger.warning(
        "%d valid rows share file content with another row (%d contents, %d of them across "
        "different source_ids, which can leak between splits); e.g. manifest rows %s",
        len(repeated),
        len(crossing),
        int((crossing > 1).sum()),
        example,
    )
