"""A real S3 server for the data-lake tests: moto's server mode on 127.0.0.1 and a free port.

Authentication is switched on (moto accepts any key by default), so a wrong access key or
secret fails as it would on AWS. One IAM user with full S3 access is created; its key is the
valid credential of every test. Each test gets its own bucket.

Two broken endpoints for the fault tests: ``silent_endpoint`` accepts connections and never
answers (a store that hangs), ``closed_endpoint`` is a port nothing listens on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


@dataclass(frozen=True)
class LakeServer:
    """Where the moto S3 server listens and a valid key for it."""

    endpoint_url: str
    key: str
    secret: str

    def client(self) -> Any:
        """A boto3 S3 client with the valid key."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name=REGION,
        )

    def storage_options(self, **overrides: Any) -> dict[str, Any]:
        """s3fs options as the catalog's credentials produce them."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            **overrides,
        }

    def env(self) -> dict[str, str]:
        """Environment variables that point boto3, s3fs and MLflow at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _set_no_auth_requests(endpoint: str, count: str) -> None:
    """moto checks signatures after ``count`` more requests (``inf``: never)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture(scope="session")
def lake_server() -> Iterator[LakeServer]:
    """A running moto S3 server with authentication on, stopped after the session."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        # The three IAM calls below run unauthenticated; every later request is checked.
        _set_no_auth_requests(endpoint, "3")
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="lake-tests")
        iam.put_user_policy(
            UserName="lake-tests",
            PolicyName="s3-full",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="lake-tests")["AccessKey"]
        yield LakeServer(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        # moto's auth switch is process-wide: leave it off for other in-process moto tests.
        _set_no_auth_requests(endpoint, "inf")
        server.stop()


@pytest.fixture
def bucket(lake_server: LakeServer) -> str:
    """A fresh, empty bucket on the lake server."""
    name = f"lake-{uuid.uuid4().hex[:12]}"
    lake_server.client().create_bucket(Bucket=name)
    return name


@dataclass
class SilentEndpoint:
    """A TCP server that accepts connections and never sends a byte."""

    url: str
    accepted: list[float]  # time.time() of each accepted connection

    @property
    def first_contact(self) -> float | None:
        return self.accepted[0] if self.accepted else None


@pytest.fixture(scope="session")
def silent_endpoint() -> Iterator[SilentEndpoint]:
    """``http://127.0.0.1:<port>`` of a server that holds every connection unanswered."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.5)
    endpoint = SilentEndpoint(f"http://127.0.0.1:{server.getsockname()[1]}", [])
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            endpoint.accepted.append(time.time())
            held.append(conn)  # never read, never answered, never closed until the end

    thread = threading.Thread(target=serve, name="silent-endpoint", daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        server.close()


@pytest.fixture
def closed_endpoint() -> str:
    """``http://127.0.0.1:<port>`` of a port nothing listens on (connections are refused)."""
    return f"http://127.0.0.1:{_free_port()}"
