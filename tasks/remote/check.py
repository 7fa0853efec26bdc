"""Check the DVC remote before a push or pull: the endpoint answers, the credentials are accepted, the bucket exists.

  python -m tasks.remote.check [REMOTE]     (default: the default remote)

DVC reports a refused key as a bare "403 Forbidden" on some object; this says which remote, endpoint and what to fix.
"""

from __future__ import annotations

import sys
from urllib.parse import urlparse

from tasks.core.errors import StageError
from tasks.core.project_root import enter_project_root
from tasks.core.tool_run import run_tool


def remote_config(name: str | None) -> tuple[str, dict]:
    """The named (or default) remote's merged DVC config: project, --local and --global levels alike."""
    from dvc.repo import Repo

    with Repo(".") as repo:
        config = repo.config
        name = name or config["core"].get("remote")
        if not name:
            raise StageError("no DVC remote is configured: add one with `dvc remote add -d storage s3://BUCKET/PATH`")
        if name not in config["remote"]:
            known = ", ".join(config["remote"]) or "none"
            raise StageError(f"there is no DVC remote named {name!r}; configured: {known}")
        return name, dict(config["remote"][name])


def s3_client(settings: dict):
    """A boto3 client built the way dvc-s3 builds its own: profile, keys from DVC config if any, else boto3's chain."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(
        profile_name=settings.get("profile"),
        aws_access_key_id=settings.get("access_key_id"),
        aws_secret_access_key=settings.get("secret_access_key"),
        aws_session_token=settings.get("session_token"),
        region_name=settings.get("region"),
    )
    # One quick attempt: this is a diagnosis, not a transfer.
    retries = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=30)
    return session.client("s3", endpoint_url=settings.get("endpointurl"), config=retries)


def check_remote(name: str | None = None) -> str:
    """Probe the remote's bucket; return a one-line description, or raise StageError saying what is wrong."""
    import botocore.exceptions as errors

    name, settings = remote_config(name)
    url = urlparse(settings["url"])
    if url.scheme != "s3":
        return f"remote {name} is {settings['url']}, not S3: nothing to check here"
    endpoint = f" at {settings['endpointurl']}" if settings.get("endpointurl") else ""
    where = f"remote {name} ({settings['url']}{endpoint})"
    try:
        s3_client(settings).head_bucket(Bucket=url.netloc)
    except errors.NoCredentialsError:
        raise StageError(
            f"{where}: no AWS credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE, or `dvc remote modify --local` the keys"
        ) from None
    except (errors.EndpointConnectionError, errors.ConnectTimeoutError) as err:
        raise StageError(f"{where}: cannot reach the endpoint ({err}); check `endpointurl` and the server") from None
    except errors.ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            raise StageError(
                f"{where}: the server refused the credentials (HTTP 403); check AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY or the profile, and that the key may read the bucket"
            ) from None
        if code in ("404", "NoSuchBucket"):
            raise StageError(f"{where}: bucket {url.netloc!r} does not exist on this endpoint") from None
        raise StageError(f"{where}: the server answered {code or 'an error'}: {err}") from None
    return f"{where}: reachable, credentials accepted, bucket {url.netloc} present"


def main() -> None:
    print(check_remote(sys.argv[1] if len(sys.argv) > 1 else None))


def main_from_root() -> None:
    """main() from the project's root, wherever it was started in the checkout."""
    enter_project_root([])
    main()


def cli() -> None:
    """The console script `lesson2-remote-check`: the same check from any folder of the checkout."""
    run_tool("remote_check", main_from_root)


if __name__ == "__main__":
    run_tool("remote_check", main)
