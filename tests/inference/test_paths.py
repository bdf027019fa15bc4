"""Which image_path values a model reads: allowed roots, '..' and symlinks, URLs, batch roots."""

from __future__ import annotations

import base64
import io
import json
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydantic import ValidationError

from deepfake_kedro.inference.config import InferenceConfig
from deepfake_kedro.inference.images import read_image_table
from deepfake_kedro.inference.paths import (
    ImagePathRefused,
    PathPolicy,
    allow_roots,
    normalise_root,
)
from deepfake_kedro.inference.scoring import score_batch


def png(seed: int = 0, size: int = 16) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def tree(tmp_path):
    """``allowed/`` with an image, a sub-folder and a symlink out; ``secret/`` beside it."""
    allowed, secret = tmp_path / "allowed", tmp_path / "secret"
    (allowed / "sub").mkdir(parents=True)
    secret.mkdir()
    (allowed / "a.png").write_bytes(png(1))
    (allowed / "sub" / "b.png").write_bytes(png(2))
    (secret / "s.png").write_bytes(png(3))
    (allowed / "out.png").symlink_to(secret / "s.png")
    (allowed / "outdir").symlink_to(secret)
    return tmp_path


def refused(policy: PathPolicy, uri: str) -> str:
    with pytest.raises(ImagePathRefused) as info:
        policy.locate(uri)
    return str(info.value)


# ----------------------------------------------------------------------------- local paths


def test_paths_under_a_root_are_read_at_their_real_path(tree):
    policy = PathPolicy([str(tree / "allowed")])
    assert policy.locate(str(tree / "allowed" / "a.png")) == str(tree / "allowed" / "a.png")
    assert policy.locate(str(tree / "allowed/sub/../a.png")) == str(tree / "allowed" / "a.png")
    assert policy.locate(f"file://{tree}/allowed/sub/b.png") == str(tree / "allowed/sub/b.png")


@pytest.mark.parametrize(
    "relative",
    ["secret/s.png", "allowed/../secret/s.png", "allowed/out.png", "allowed/outdir/s.png"],
)
def test_dot_dot_and_symlinks_do_not_escape(tree, relative):
    message = refused(PathPolicy([str(tree / "allowed")]), str(tree / relative))
    assert "outside inference.allowed_roots" in message
    assert "send the image as image_bytes" in message


def test_a_root_that_is_a_symlink_is_its_target(tree):
    (tree / "link").symlink_to(tree / "allowed")
    policy = PathPolicy([str(tree / "link")])
    assert policy.locate(str(tree / "allowed" / "a.png")) == str(tree / "allowed" / "a.png")
    assert policy.locate(str(tree / "link" / "a.png")) == str(tree / "allowed" / "a.png")


def test_a_folder_whose_name_extends_the_root_is_outside(tree):
    (tree / "allowed2").mkdir()
    refused(PathPolicy([str(tree / "allowed")]), str(tree / "allowed2" / "x.png"))


def test_no_roots_refuses_every_path():
    message = refused(PathPolicy([]), "/etc/passwd")
    assert message.startswith("image_path /etc/passwd is outside inference.allowed_roots")


def test_file_url_of_another_host_is_refused(tree):
    refused(PathPolicy([str(tree / "allowed")]), f"file://server{tree}/allowed/a.png")


# ------------------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8000/x.png",
        "https://169.254.169.254/latest/meta-data/",
        "ftp://example.com/a.png",
        "s3://bucket/a.png",
        "gs://bucket/a.png",
        "memory://bucket/a.png",
    ],
)
def test_remote_urls_are_refused_unless_listed(uri):
    assert "outside inference.allowed_roots" in refused(PathPolicy([]), uri)


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("s3://bucket/incoming/a.png", True),
        ("S3://Bucket/incoming/sub/a.png", True),  # scheme and bucket are case-insensitive
        ("s3://bucket/incoming", True),
        ("s3://bucket/incomingx/a.png", False),
        ("s3://bucket/other/a.png", False),
        ("s3://other-bucket/incoming/a.png", False),
        ("s3://bucket/incoming/../other/a.png", False),
        ("s3://bucket/incoming/%2e%2e/other/a.png", False),
        ("s3://bucket/incoming%2F..%2Fother/a.png", False),
        ("https://cdn.example.com/public/a.png?sig=1", True),
        ("http://cdn.example.com/public/a.png", False),  # the scheme is part of the root
        ("https://cdn.example.com:8443/public/a.png", False),
        ("https://cdn.example.com@evil.example/public/a.png", False),
        ("https://evil.example/cdn.example.com/public/a.png", False),
        ("simplecache::s3://bucket/incoming/a.png", False),
    ],
)
def test_url_prefixes(uri, allowed):
    policy = PathPolicy(["s3://bucket/incoming/", "https://cdn.example.com/public"])
    if allowed:
        assert policy.locate(uri) == uri
    else:
        refused(policy, uri)


def test_chained_urls_are_never_read():
    assert "chained fsspec URL" in refused(PathPolicy(["/"]), "zip://a.png::file:///tmp/x.zip")


# ----------------------------------------------------------------------------- the setting


def test_config_default_allows_no_path():
    assert InferenceConfig().allowed_roots == []


@pytest.mark.parametrize(
    ("root", "why"),
    [
        ("data/01_raw", "not an absolute path"),
        ("", "empty entry"),
        ("s3://", "names no host or bucket"),
        ("s3://bucket/a/../b", "'..' segment"),
        ("simplecache::s3://bucket/", "chained"),
    ],
)
def test_config_rejects_roots_it_cannot_check(root, why):
    with pytest.raises(ValidationError, match="allowed_roots") as info:
        InferenceConfig(allowed_roots=[root])
    assert why in str(info.value)


def test_normalised_roots():
    assert normalise_root("s3://Bucket/in/") == "s3://bucket/in"
    assert normalise_root("file:///srv/images/") == "/srv/images"


# ------------------------------------------------------------ read_image_table with a policy


def test_refused_paths_are_error_rows_and_bytes_always_pass(tree):
    frame = pd.DataFrame(
        {
            "image_path": [
                str(tree / "allowed" / "a.png"),
                "/etc/passwd",
                str(tree / "allowed" / "out.png"),
                None,
            ],
            "image_bytes": [None, None, None, base64.b64encode(png(4)).decode()],
        }
    )
    table = read_image_table(frame, allowed_roots=[str(tree / "allowed")]).table
    errors = [None if pd.isna(e) else e for e in table["error"]]
    assert errors[0] is None and errors[3] is None
    assert errors[1] == (
        "ImagePathRefused: image_path /etc/passwd is outside inference.allowed_roots (after "
        "resolving '..' and symlinks); add its folder (or URL prefix) there, or send the image "
        "as image_bytes"
    )
    assert errors[2].startswith(f"ImagePathRefused: image_path {tree}/allowed/out.png is outside")


def test_relative_paths_are_checked_after_base_dir(tree):
    frame = pd.DataFrame({"image_path": ["a.png", "../secret/s.png"]})
    table = read_image_table(
        frame, base_dir=str(tree / "allowed"), allowed_roots=[str(tree / "allowed")]
    ).table
    assert pd.isna(table["error"].iloc[0])
    assert table["error"].iloc[1].startswith("ImagePathRefused")


def test_refused_url_is_never_fetched(monkeypatch):
    import fsspec

    def fetch(*args, **kwargs):
        raise AssertionError("a refused URL was opened")

    monkeypatch.setattr(fsspec.core, "url_to_fs", fetch)
    table = read_image_table(
        pd.DataFrame({"image_path": ["http://127.0.0.1:9/x.png"]}), allowed_roots=[]
    ).table
    assert table["error"].iloc[0].startswith("ImagePathRefused")


def test_without_a_policy_any_path_is_read(tree):
    """Library callers reading their own files pass no roots (the model always does)."""
    table = read_image_table(pd.DataFrame({"image_path": [str(tree / "secret" / "s.png")]})).table
    assert pd.isna(table["error"].iloc[0])


# ------------------------------------------------------------------------------ allow_roots


def test_allow_roots_adds_roots_for_this_thread_only(tree):
    secret = str(tree / "secret" / "s.png")
    seen = {}

    def other_thread():
        try:
            PathPolicy([]).locate(secret)
            seen["other"] = "read"
        except ImagePathRefused:
            seen["other"] = "refused"

    with allow_roots([secret, None, float("nan"), "", "s3://bucket/../x"]):
        assert PathPolicy([]).locate(secret) == secret
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert seen["other"] == "refused"
    refused(PathPolicy([]), secret)  # and gone after the block


def test_allow_roots_of_listed_files_reads_those_files_only(tree):
    listed = str(tree / "allowed" / "a.png")
    with allow_roots([listed]):
        policy = PathPolicy([])
        assert policy.locate(listed) == listed
        refused(policy, str(tree / "allowed" / "sub" / "b.png"))


# ------------------------------------------------------------------- strict JSON of a score


class Half:
    def score(self, rows, store, runtime):
        return np.full(len(rows), 0.5)


def test_scores_serialise_to_strict_json_as_the_mlflow_server_writes_them():
    """``mlflow models serve`` writes predictions with predictions_to_json; no NaN in it."""
    from mlflow.pyfunc.scoring_server import predictions_to_json

    frame = pd.DataFrame(
        {
            "image_id": ["ok", "bad", "refused"],
            "image_bytes": [base64.b64encode(png(1)).decode(), "bm90IGFuIGltYWdl", None],
            "image_path": [None, None, "/etc/passwd"],
        }
    )
    batch = read_image_table(frame, allowed_roots=[])
    out = score_batch(batch, Half(), 0.5, InferenceConfig())
    body = io.StringIO()
    predictions_to_json(out, body)

    def no_constant(name):
        raise ValueError(f"{name} in the response body")

    rows = json.loads(body.getvalue(), parse_constant=no_constant)["predictions"]
    assert rows[0]["fake_probability"] == 0.5 and rows[0]["error"] is None
    assert rows[0]["image_path"] is None
    for row in rows[1:]:
        assert row["fake_probability"] is None and row["is_fake"] is None
        assert row["prediction"] == "error" and row["content_hash"] is None
    assert rows[1]["error"].startswith("UnidentifiedImageError")
    assert rows[2]["error"].startswith("ImagePathRefused: image_path /etc/passwd")
