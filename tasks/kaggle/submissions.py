"""Submit a CSV to a competition through the official Kaggle client, find earlier submissions, read the score."""

from __future__ import annotations

import logging
import time
from datetime import UTC
from pathlib import Path
from typing import Any

from tasks.core.errors import StageError
from tasks.kaggle.client import KaggleCalls, TransientError, login
from tasks.kaggle.credentials import find_credentials, redact

log = logging.getLogger(__name__)


def _list_submissions(api: Any, competition: str) -> list[Any]:
    """The newest submissions of this account to competition (the client's first page, newest first)."""
    return list(api.competition_submissions(competition) or [])


def _upload(api: Any, competition: str, csv_path: Path) -> str:
    """Upload csv_path the way `kaggle competitions submit` does; return the blob token for the submission."""
    from kaggle.models.kaggle_models_extended import ResumableUploadResult
    from kagglesdk.competitions.types.competition_api_service import ApiStartSubmissionUploadRequest

    with api.build_kaggle_client() as kaggle:
        request = ApiStartSubmissionUploadRequest()
        request.competition_name = competition
        request.file_name = csv_path.name
        request.content_length = csv_path.stat().st_size
        request.last_modified_epoch_seconds = int(csv_path.stat().st_mtime)
        response = kaggle.competitions.competition_api_client.start_submission_upload(request)
        result = api.upload_complete(str(csv_path), response.create_url, quiet=True)
    if result != ResumableUploadResult.COMPLETE:
        raise TransientError("the upload of the CSV did not complete")
    return response.token


def _create(api: Any, competition: str, blob_token: str, message: str) -> int:
    """Create the submission from an uploaded blob; return its ref (0 if Kaggle gave none)."""
    from kagglesdk.competitions.types.competition_api_service import ApiCreateSubmissionRequest

    with api.build_kaggle_client() as kaggle:
        request = ApiCreateSubmissionRequest()
        request.competition_name = competition
        request.blob_file_tokens = blob_token
        request.submission_description = message
        return kaggle.competitions.competition_api_client.create_submission(request).ref or 0


def _ours(submissions: list[Any], ref: int, known: set[int], message: str) -> Any | None:
    """Our submission in a listing: by ref, or else the newest new one with our message."""
    if ref:
        return next((s for s in submissions if s.ref == ref), None)
    return next((s for s in submissions if s.ref not in known and s.description == message), None)


def _score(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _receipt(competition: str, submission: Any | None, ref: int, message: str, csv_path: Path) -> dict[str, Any]:
    """What the submit stage records: JSON-able, no secrets."""
    if submission is None:
        return {
            "competition": competition,
            "ref": ref,
            "status": "pending",
            "public_score": None,
            "private_score": None,
            "date": None,
            "message": message,
            "file_name": csv_path.name,
        }
    return {
        "competition": competition,
        "ref": submission.ref,
        "status": submission.status.name.lower(),
        "public_score": _score(submission.public_score),
        "private_score": _score(submission.private_score),
        "date": submission.date.replace(tzinfo=UTC).isoformat() if submission.date else None,
        "message": submission.description or message,
        "file_name": submission.file_name or csv_path.name,
    }


def submit_csv(
    competition: str,
    csv_path: Path,
    message: str,
    *,
    poll_timeout_s: float,
    poll_interval_s: float = 10.0,
    attempts: int = 5,
    backoff_s: float = 2.0,
) -> dict[str, Any]:
    """Submit csv_path to competition with message, then poll up to poll_timeout_s for its score.

    Returns the receipt: competition, ref, status ("complete", or "pending" when the poll ran out),
    public_score, private_score, date, message, file_name.
    """
    if not csv_path.is_file():
        raise StageError(f"there is no submission file at {csv_path}")
    source = find_credentials()
    calls = KaggleCalls(competition, source, attempts, backoff_s)
    api = calls.run("signing in to Kaggle", lambda: login(source))
    known = {s.ref for s in calls.run("listing submissions", lambda: _list_submissions(api, competition))}
    blob_token = calls.run("uploading the CSV", lambda: _upload(api, competition, csv_path))

    tried: list[bool] = []

    def create_once() -> int:
        # A dropped answer to CreateSubmission may hide a submission that was made: look before trying
        # again, since Kaggle allows only a few submissions a day.
        if tried and (made := _ours(_list_submissions(api, competition), 0, known, message)) is not None:
            return int(made.ref)
        tried.append(True)
        return _create(api, competition, blob_token, message)

    ref = calls.run("creating the submission", create_once)
    log.info(
        "submitted %s to %s as ref %s; waiting up to %.0f s for the score",
        csv_path.name,
        competition,
        ref,
        poll_timeout_s,
    )

    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    deadline = time.monotonic() + poll_timeout_s
    while True:
        listed = calls.run("listing submissions", lambda: _list_submissions(api, competition))
        submission = _ours(listed, ref, known, message)
        if submission is not None and submission.status != SubmissionStatus.PENDING:
            break
        if time.monotonic() + poll_interval_s > deadline:
            log.warning(
                "submission %s is not scored after %.0f s; see https://www.kaggle.com/competitions/%s/submissions",
                ref or "(no ref)",
                poll_timeout_s,
                competition,
            )
            break
        time.sleep(poll_interval_s)

    if submission is not None and submission.status == SubmissionStatus.ERROR:
        raise StageError(
            f"Kaggle could not score submission {submission.ref} ({csv_path.name}): "
            f"{redact(submission.error_description or 'no reason given')}. "
            "Compare the CSV with sample_submission.csv."
        )
    if submission is None and not ref:
        raise StageError(
            f"Kaggle accepted the submission to '{competition}' but did not list it; check its submissions page."
        )
    return _receipt(competition, submission, ref, message, csv_path)


def find_submission(
    competition: str, marker: str, *, attempts: int = 5, backoff_s: float = 2.0
) -> dict[str, Any] | None:
    """The receipt of this account's newest submission whose message contains marker, or None."""
    source = find_credentials()
    calls = KaggleCalls(competition, source, attempts, backoff_s)
    api = calls.run("signing in to Kaggle", lambda: login(source))
    listed = calls.run("listing submissions", lambda: _list_submissions(api, competition))
    match = next((s for s in listed if marker in (s.description or "")), None)
    return (
        None
        if match is None
        else _receipt(competition, match, match.ref, match.description, Path(match.file_name or ""))
    )
