"""Download a competition's archive through the official Kaggle client: atomic, zip-checked and resumable.

Any competition: its zip is kept as Kaggle sends it, whatever it holds (Dogs vs. Cats' inner train.zip and
test.zip, or a plain tree of folders); reorganize reads the layout.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from tasks.core.atomic_output import atomic_file
from tasks.core.errors import StageError
from tasks.kaggle.client import KaggleCalls, TransientError, login
from tasks.kaggle.credentials import find_credentials

log = logging.getLogger(__name__)


def _fetch_archive(api: Any, competition: str, partial: Path) -> None:
    """One attempt at the competition archive, resuming partial when the server allows it."""
    from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

    with api.build_kaggle_client() as kaggle:
        request = ApiDownloadDataFilesRequest()
        request.competition_name = competition
        response = kaggle.competitions.competition_api_client.download_data_files(request)
        try:
            # max_retries=0: our loop retries with backoff the caller controls; resume=True continues a
            # partial from an earlier attempt (the client checks ETag and size before appending).
            api.download_file(response, str(partial), kaggle.http_client(), quiet=True, resume=True, max_retries=0)
        except ValueError as err:  # the client's check that the body matched Content-Length
            raise TransientError(f"the download ended early ({err})") from None
        finally:
            response.close()


def _check_archive(path: Path, competition: str) -> None:
    """Raise StageError unless path is an intact zip holding some file."""
    try:
        with zipfile.ZipFile(path) as archive:
            empty = all(member.is_dir() for member in archive.infolist())
            corrupt = archive.testzip()
    except zipfile.BadZipFile:
        raise StageError(
            f"Kaggle sent something that is not a zip archive for '{competition}'; run again later."
        ) from None
    if empty:
        raise StageError(f"the archive of '{competition}' holds no files; is it the right competition?")
    if corrupt:
        raise StageError(f"the archive of '{competition}' is corrupt ({corrupt} fails its checksum); run again.")


def download_competition(
    competition: str,
    target: Path,
    *,
    attempts: int = 5,
    backoff_s: float = 2.0,
) -> None:
    """Download competition's whole archive to target (a .zip path), which appears only once verified."""
    source = find_credentials()
    calls = KaggleCalls(competition, source, attempts, backoff_s)
    api = calls.run("signing in to Kaggle", lambda: login(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    # The client writes a resume marker beside its file: keep both in a scratch dir that is always removed.
    with (
        atomic_file(target) as tmp,
        tempfile.TemporaryDirectory(prefix=f".{target.name}.", suffix=".parts", dir=target.parent) as scratch,
    ):
        partial = Path(scratch) / target.name
        calls.run(f"downloading {competition}", lambda: _fetch_archive(api, competition, partial))
        _check_archive(partial, competition)
        os.replace(partial, tmp)
    log.info("downloaded %s to %s (%d bytes)", competition, target, target.stat().st_size)
