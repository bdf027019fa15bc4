"""Which ``image_path`` values a model may read: its allowed roots.

A served model reads what its callers name, with the server's files, network and
credentials. So a model reads an ``image_path`` only under one of ``inference.allowed_roots``
(absolute local folders, or URL prefixes such as ``s3://bucket/incoming/``), after resolving
``..`` and symlinks; everything else (``/etc/passwd``, ``http://169.254.169.254/...``, chained
fsspec URLs) is refused with an error row, never read. ``image_bytes`` needs no root.

Code that calls a model in its own process for its own images (batch scoring of the run's
input) adds roots for the duration of the call with :func:`allow_roots`; that state is local
to the calling thread, so nothing a caller sends over HTTP can widen it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import unquote, urlsplit

SETTING = "inference.allowed_roots"

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_LOCAL_SCHEMES = ("file", "local")
_EXTRA_ROOTS: ContextVar[tuple[str, ...]] = ContextVar("deepfake_kedro_extra_roots", default=())


class ImagePathRefused(PermissionError):
    """An ``image_path`` the model's configuration does not let it read."""


def normalise_root(value: str) -> str:
    """The canonical form of an allowed root (a local folder's real path, or a URL prefix).

    Raises:
        ValueError: for a relative local path, a URL without a host or bucket, a chained
            fsspec URL or a ``..`` segment, naming ``inference.allowed_roots``.
    """
    text = str(value).strip()
    if not text:
        raise ValueError(f"{SETTING}: an empty entry; give an absolute folder or a URL prefix")
    if "::" in text:
        raise ValueError(f"{SETTING}: {text!r} is a chained fsspec URL; list the URL itself")
    scheme = _scheme(text)
    if scheme is None or scheme in _LOCAL_SCHEMES:
        path = _local_part(text) if scheme else text
        if path is None or not os.path.isabs(path):
            raise ValueError(
                f"{SETTING}: {text!r} is not an absolute path; a model can be served from any "
                "folder, so give the folder in full (e.g. /srv/images)"
            )
        return os.path.realpath(path)
    parts = urlsplit(text)
    if not parts.netloc:
        raise ValueError(
            f"{SETTING}: {text!r} names no host or bucket; give e.g. s3://bucket/prefix/"
        )
    if _has_dot_segment(parts.path):
        raise ValueError(f"{SETTING}: {text!r} has a '.' or '..' segment")
    return f"{scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


@contextmanager
def allow_roots(roots: Iterable[object]) -> Iterator[None]:
    """Let models called in this thread also read under ``roots`` (files or folders).

    For code that calls a model in-process on images it chose itself (the batch pipeline
    scoring the run's input); a served model never sees these. Missing values and entries that
    cannot be roots are skipped (their images are then checked against the model's own roots).
    """
    extra = []
    for value in roots:
        if not isinstance(value, str) or not value.strip():
            continue
        text = value if _scheme(value) else os.path.abspath(value)
        try:
            extra.append(normalise_root(text))
        except ValueError:
            continue
    token = _EXTRA_ROOTS.set(_EXTRA_ROOTS.get() + tuple(extra))
    try:
        yield
    finally:
        _EXTRA_ROOTS.reset(token)


class PathPolicy:
    """Allowed roots, and the check of one ``image_path`` against them.

    Args:
        roots: ``inference.allowed_roots`` (already validated by ``InferenceConfig``); the
            roots added by :func:`allow_roots` in this thread are added to them.
    """

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = frozenset(normalise_root(r) for r in roots) | frozenset(_EXTRA_ROOTS.get())

    def locate(self, uri: str) -> str:
        """What to open for ``uri``: its real path (local) or the URL itself (remote).

        Raises:
            ImagePathRefused: if ``uri`` is not under an allowed root, saying which setting to
                change.
        """
        if "::" in uri:
            raise ImagePathRefused(
                f"image_path {uri} is a chained fsspec URL, which a model does not read; send "
                "the image as image_bytes"
            )
        scheme = _scheme(uri)
        if scheme is None or scheme in _LOCAL_SCHEMES:
            path = _local_part(uri) if scheme else os.path.abspath(uri)
            if path is not None:
                path = os.path.realpath(path)
                if _under(path, self.roots, os.path.dirname):
                    return path
        else:
            # Matched on the URL as sent (fsspec reads it so); '..' is refused also encoded,
            # as an HTTP server decodes it.
            parts = urlsplit(uri)
            if not _has_dot_segment(parts.path):
                base = f"{scheme}://{parts.netloc.lower()}"
                if _under(base + parts.path.rstrip("/"), self.roots, _url_parent(len(base))):
                    return uri
        raise ImagePathRefused(
            f"image_path {uri} is outside {SETTING} (after resolving '..' and symlinks); add "
            "its folder (or URL prefix) there, or send the image as image_bytes"
        )


def _scheme(text: str) -> str | None:
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def _local_part(uri: str) -> str | None:
    """The local path of a ``file://`` URL (``None`` for one naming another host)."""
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.netloc in ("", "localhost") else None


def _has_dot_segment(path: str) -> bool:
    return any(
        segment in (".", "..") for text in (path, unquote(path)) for segment in text.split("/")
    )


def _url_parent(base_length: int):
    def parent(url: str) -> str:
        if len(url) <= base_length:
            return url
        return url[: max(url.rfind("/"), base_length)]

    return parent


def _under(location: str, roots: frozenset[str], parent) -> bool:
    """Whether ``location`` or one of its ancestors is a root (a set lookup per level)."""
    while True:
        if location in roots:
            return True
        up = parent(location)
        if up == location:
            return False
        location = up


__all__ = ["SETTING", "ImagePathRefused", "PathPolicy", "allow_roots", "normalise_root"]
