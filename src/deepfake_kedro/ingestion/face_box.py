"""The optional ``face_box`` manifest column: where the face is, relative to the image.

A value is ``"x0,y0,x1,y1"``, four numbers relative to the image width and height with
0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1; an empty cell means no box for that row. Ingestion
checks every value (check ``face_box``) and writes it back in one canonical form; consumers
(synthetic fakes draw their blending region inside it) parse it with :func:`parse_face_box`.
"""

from __future__ import annotations

import math

COLUMN = "face_box"

FaceBox = tuple[float, float, float, float]
"""Relative ``(x0, y0, x1, y1)``, 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1."""


def parse_face_box(value: object) -> FaceBox | None:
    """A ``face_box`` manifest value as ``(x0, y0, x1, y1)``; None when empty.

    Raises:
        ValueError: naming the value and the expected form when it is not four relative
            coordinates with x0 < x1 and y0 < y1 inside [0, 1].
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        numbers = tuple(float(part) for part in text.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise ValueError(
            f"face_box {text!r} is not four numbers: write relative 'x0,y0,x1,y1', "
            "e.g. '0.25,0.2,0.75,0.8'"
        )
    x0, y0, x1, y1 = numbers
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError(
            f"face_box {text!r} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
            "(coordinates relative to the image width and height)"
        )
    return (x0, y0, x1, y1)


def box_pixels(box: FaceBox | None, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` in pixels of a relative box (the image when None)."""
    height, width = shape
    if box is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = box
    left, top = int(math.floor(x0 * width)), int(math.floor(y0 * height))
    right, bottom = int(math.ceil(x1 * width)), int(math.ceil(y1 * height))
    return left, top, max(right, left + 1), max(bottom, top + 1)


def format_face_box(box: FaceBox | None) -> str:
    """The canonical manifest form of a box (``""`` for none), e.g. ``"0.25,0.2,0.75,0.8"``."""
    return "" if box is None else ",".join(f"{v:.6g}" for v in box)
