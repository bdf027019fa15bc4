"""The registered model served over HTTP by a real `mlflow models serve` process.

A tiny model is trained and registered in a copy of the project, then served with
``--env-manager local`` on a free port and called with HTTP requests: the body is strict JSON
(an image that cannot be scored has a null probability, never NaN); base64 images and paths
under ``inference.allowed_roots`` are scored; ``/etc/passwd``, a symlink out of the root and
an ``http://`` URL are refused as error rows without being read, and ``params`` in a request
cannot widen the roots.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kedro_project import OPEN_GATE, demo_images, env, kedro, make_project, tiny_parameters

pytestmark = pytest.mark.slow

MODEL = "deepfake-detector"
# Tiny data, the weight-free spectral branch only, every gate open so that the model
# registers, short training: serving is what is tested here.
PARAMETERS = tiny_parameters(OPEN_GATE, {
    "feature_extraction": {"backbones": {"resnet": {"enabled": False}, "clip": {"enabled": False}}},
    "data_ingestion": {"num_workers": 1},
    "ensemble_training": {"epochs": 2, "patience": 1},
    "validation": {"robustness": {"enabled": False}},
})
KEDRO_LOGGING_MESSAGE = (
    "Using 'conf/logging.yml' as logging configuration. You can change this by setting the "
    "KEDRO_LOGGING_CONFIG environment variable accordingly."
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strict_json(body: bytes) -> dict:
    """``json.loads`` that refuses NaN / Infinity, as JavaScript's JSON.parse does."""

    def refuse(constant: str):
        raise ValueError(f"{constant} in the response body: not valid JSON")

    return json.loads(body, parse_constant=refuse)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A project with a registered champion, and the training run's (piped) output."""
    path = make_project(tmp_path_factory.mktemp("serving_project"), PARAMETERS)
    demo_images(path / "data" / "01_raw")
    run = kedro(path, "run")
    return path, run.stdout + run.stderr


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    project, _ = trained
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
            cwd=log.parent,  # anywhere but the project
            env=env(
                MLFLOW_TRACKING_URI=f"sqlite:///{project / 'mlflow.db'}",
                # the server execs `uvicorn` from PATH: this interpreter's, venv or not
                PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            ),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise AssertionError(f"mlflow models serve exited:\n{log.read_text()[-5000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log.read_text()[-5000:]}")
            time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def trap():
    """A local HTTP server that records every request it receives."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def invoke(url: str, records: list[dict], **extra) -> tuple[int, bytes]:
    columns = ("image_id", "image_path", "image_bytes")
    payload = {"dataframe_records": [{c: r.get(c) for c in columns} for r in records], **extra}
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_training_logs_are_full_lines_when_piped(trained):
    _, output = trained
    assert any(line.endswith(KEDRO_LOGGING_MESSAGE) for line in output.splitlines()), output[:3000]


def test_served_model_scores_bytes_and_allowed_paths_and_refuses_the_rest(trained, server, trap):
    project, _ = trained
    raw = project / "data" / "01_raw"
    image = sorted((raw / "images").glob("*/*.png"))[0]
    escape = raw / "escape.png"
    escape.symlink_to("/etc/passwd")
    trap_url, requests_seen = trap
    records = [
        {"image_id": "bytes", "image_bytes": base64.b64encode(image.read_bytes()).decode()},
        {"image_id": "junk", "image_bytes": base64.b64encode(b"not an image").decode()},
        {"image_id": "allowed", "image_path": str(image)},
        {"image_id": "passwd", "image_path": "/etc/passwd"},
        {"image_id": "dotdot", "image_path": f"{raw}/../../../../../../etc/passwd"},
        {"image_id": "symlink", "image_path": str(escape)},
        {"image_id": "http", "image_path": f"{trap_url}/x.png"},
    ]
    # `params` would be the one way to change the model's settings from a request: the model
    # has no params schema, so MLflow drops them.
    status, body = invoke(server, records, params={"inference": {"allowed_roots": ["/"]}})
    assert status == 200, body[:3000]
    rows = {row["image_id"]: row for row in strict_json(body)["predictions"]}
    assert list(rows) == [r["image_id"] for r in records]

    for name in ("bytes", "allowed"):
        row = rows[name]
        assert row["error"] is None, row
        assert 0.0 <= row["fake_probability"] <= 1.0
        assert row["prediction"] == ("fake" if row["fake_probability"] >= row["threshold"] else "real")
    assert rows["allowed"]["fake_probability"] == pytest.approx(rows["bytes"]["fake_probability"])
    assert rows["allowed"]["image_path"] == str(image) and rows["bytes"]["image_path"] is None

    for name in ("junk", "passwd", "dotdot", "symlink", "http"):
        row = rows[name]
        assert row["fake_probability"] is None and row["is_fake"] is None, row
        assert row["prediction"] == "error" and row["content_hash"] is None
    assert rows["junk"]["error"].startswith("UnidentifiedImageError")
    assert rows["passwd"]["error"] == (
        "ImagePathRefused: image_path /etc/passwd is outside inference.allowed_roots (after "
        "resolving '..' and symlinks); add its folder (or URL prefix) there, or send the image "
        "as image_bytes"
    )
    for name in ("dotdot", "symlink", "http"):
        assert "is outside inference.allowed_roots" in rows[name]["error"], rows[name]
    assert requests_seen == []  # the URL was never fetched


def test_a_batch_of_only_unreadable_images_is_strict_json(server):
    status, body = invoke(server, [{"image_id": "x", "image_bytes": "bm90IGFuIGltYWdl"}])
    assert status == 200, body[:3000]
    (row,) = strict_json(body)["predictions"]
    assert row["fake_probability"] is None and row["error"]
