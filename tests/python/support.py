"""What several test modules share: a free loopback port, a bounded wait, a
query long enough to cancel, and a moto S3 server with one bucket. Imported by
the tests as ``support`` (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# A cross join that runs for many seconds, for cancellation tests; nothing in
# it is cached, so every run does the work.
LONG_QUERY = (
    "SELECT count(DISTINCT a.value + b.value) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 20.0, what: str = "condition") -> None:
    """Polls `condition` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class S3Bucket:
    """A bucket on a moto server: its endpoint, a boto3 client, lakewave's
    storage options and the AWS_* options delta-rs writers take."""

    name: str
    endpoint: str
    client: object
    options: dict[str, str] = field(default_factory=dict)
    delta_options: dict[str, str] = field(default_factory=dict)


@contextmanager
def moto_bucket(name: str) -> Iterator[S3Bucket]:
    """Starts a moto S3 server on loopback with one bucket, and stops it."""
    import boto3
    import moto.server

    port = free_port()
    server = moto.server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)
        yield S3Bucket(
            name=name,
            endpoint=endpoint,
            client=client,
            options={
                "endpoint": endpoint,
                "access_key_id": "test",
                "secret_access_key": "test",
                "region": "us-east-1",
                "allow_http": "true",
            },
            delta_options={
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true",
                "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
            },
        )
    finally:
        server.stop()
