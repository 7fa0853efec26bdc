"""An S3 server on loopback (moto, as DVC's own tests use) and helpers to point a workspace's DVC remote at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.workspace import dvc

BUCKET = "dogs-vs-cats-cache"
REMOTE = "storage"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lineage-tests", "AWS_SECRET_ACCESS_KEY": "lineage-tests-secret"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """http://127.0.0.1:PORT of a moto S3 server holding an empty bucket; credentials only in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    patch = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("aws-home")
    # boto3's usual chain reads these; the files are pointed away so no real profile on this machine leaks in.
    for name, value in {
        **CREDENTIALS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
    }.items():
        patch.setenv(name, value)
    patch.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
        patch.undo()


def add_remote(workspace: Path, endpoint: str) -> None:
    """Make the bucket the workspace's default remote (committed config: the URL and endpoint, never a secret)."""
    dvc(workspace, "remote", "add", "-d", REMOTE, f"s3://{BUCKET}/cache")
    dvc(workspace, "remote", "modify", REMOTE, "endpointurl", endpoint)


def workspace_state(workspace: Path) -> dict[str, bytes]:
    """Every file outside .git and DVC's scratch folder, with its bytes: to show a failed command changed nothing."""
    skip = {".git", ".dvc/tmp", ".dvc/config.local"}
    return {
        p.relative_to(workspace).as_posix(): p.read_bytes()
        for p in sorted(workspace.rglob("*"))
        if p.is_file() and not any(p.relative_to(workspace).as_posix().startswith(s) for s in skip)
    }
