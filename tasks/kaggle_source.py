"""Kaggle through the official client: find credentials, download a competition's archive, submit and read the score.

The `kaggle` package is imported only inside functions, after credentials were found: importing it
authenticates at once and prints help (or calls the network) as a side effect.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any, TypeVar

from tasks.atomic_output import atomic_file
from tasks.competition_archive import REQUIRED_MEMBERS
from tasks.errors import StageError

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
TOKEN_URL = "https://www.kaggle.com/settings/api"
OFFLINE_HINT = (
    "To run without Kaggle, set download.source to synthetic (generated images) or archive "
    "(a local copy of the competition zip) in params.yaml."
)

T = TypeVar("T")


@dataclass(frozen=True)
class CredentialSource:
    """Where the kaggle client will find credentials; it never holds the secret itself."""

    kind: str  # "access_token", "api_key" or "oauth": how the client signs its requests
    origin: str  # what a user reads in messages: environment variable names or a file path
    config_dir: Path  # where the client looks for kaggle.json; it freezes this at import, so we set it per call


# ---------------------------------------------------------------- credentials


def _config_dir(env: Mapping[str, str], home: Path) -> Path:
    """The client's rule: KAGGLE_CONFIG_DIR, else ~/.kaggle, else (on Linux, when that is absent) XDG's kaggle dir."""
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"])
    legacy = home / ".kaggle"
    if legacy.exists():
        return legacy
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"


def _warn_if_shared(path: Path) -> None:
    """Warn when a file holding a Kaggle secret is readable by group or others."""
    try:
        shared = path.stat().st_mode & 0o044
    except OSError:
        return
    if shared:
        log.warning("%s holds a Kaggle secret and is readable by other users; run: chmod 600 %s", path, path)


def _token_file(path: Path) -> bool:
    """Whether path is a file with a non-empty token in it (the client skips empty ones)."""
    try:
        return path.is_file() and bool(path.read_text().strip())
    except OSError:
        return False


def _token_origin(env: Mapping[str, str], kaggle_home: Path) -> str | None:
    """Where the client would take an access token from, in the client's order; None if nowhere."""
    notebook_token = env.get("KAGGLE_API_V1_TOKEN")
    in_notebook = "KAGGLE_KERNEL_RUN_TYPE" in env and "KAGGLE_DATA_PROXY_URL" in env
    if in_notebook and notebook_token and _token_file(Path(notebook_token)):
        return f"KAGGLE_API_V1_TOKEN ({notebook_token})"
    value = env.get("KAGGLE_API_TOKEN")
    if value:
        if not Path(value).exists():  # the value is the token itself: never echo it
            return "KAGGLE_API_TOKEN"
        if not _token_file(Path(value)):
            return None  # the client stops looking for tokens here too, and falls back to a key
        _warn_if_shared(Path(value))
        return f"the file named by KAGGLE_API_TOKEN ({value})"
    for name in ("access_token", "access_token.txt"):
        if _token_file(kaggle_home / name):
            _warn_if_shared(kaggle_home / name)
            return str(kaggle_home / name)
    return None


def _read_kaggle_json(path: Path) -> tuple[dict[str, str], str | None]:
    """kaggle.json's fields, and a problem to report if it exists but is unusable."""
    if not path.is_file():
        return {}, None
    _warn_if_shared(path)
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}, f"{path} exists but is not valid JSON"
    if not isinstance(data, dict):
        return {}, f"{path} exists but is not a JSON object"
    return {k: str(v) for k, v in data.items() if k in ("username", "key") and v}, None


def _oauth_cache(kaggle_home: Path) -> Path | None:
    """The OAuth cache written by `kaggle auth login`, if it holds a refresh token."""
    path = kaggle_home / "credentials.json"
    try:
        usable = path.is_file() and bool(json.loads(path.read_text()).get("refresh_token"))
    except (OSError, ValueError, AttributeError):
        return None
    return path if usable else None


def find_credentials(env: Mapping[str, str] | None = None) -> CredentialSource:
    """Find the credentials the kaggle client will use (env: the environment, os.environ by default).

    Mirrors the client's order: an access token, then username + key, then an OAuth login.
    """
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    kaggle_home = home / ".kaggle"  # tokens and the OAuth cache live here whatever KAGGLE_CONFIG_DIR says
    config_dir = _config_dir(env, home)

    token_origin = _token_origin(env, kaggle_home)
    if token_origin:
        return CredentialSource("access_token", token_origin, config_dir)

    kaggle_json = config_dir / "kaggle.json"
    from_file, file_problem = _read_kaggle_json(kaggle_json)
    # The client lets KAGGLE_USERNAME / KAGGLE_KEY override kaggle.json field by field.
    origins: dict[str, str | None] = {}
    for field in ("username", "key"):
        variable = f"KAGGLE_{field.upper()}"
        origins[field] = variable if env.get(variable) else str(kaggle_json) if field in from_file else None
    named = [origin for origin in origins.values() if origin]
    if len(named) == 2:
        return CredentialSource("api_key", " and ".join(dict.fromkeys(named)), config_dir)

    oauth = _oauth_cache(kaggle_home)
    if oauth:
        _warn_if_shared(oauth)
        return CredentialSource("oauth", str(oauth), config_dir)

    problems = [p for p in (file_problem,) if p]
    for have, lack, variable in (("username", "key", "KAGGLE_KEY"), ("key", "username", "KAGGLE_USERNAME")):
        if origins[have] and not origins[lack]:
            problems.append(f"a {have} comes from {origins[have]} but no {lack} ({variable} or {lack} in kaggle.json)")
    found = f" Found: {'; '.join(problems)}." if problems else ""
    raise StageError(
        "no Kaggle credentials found. Set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN (a token, or the path "
        f"of a file holding one), or save kaggle.json from {TOKEN_URL} as ~/.kaggle/kaggle.json "
        "(or in the directory named by KAGGLE_CONFIG_DIR) with chmod 600; a token saved as ~/.kaggle/access_token "
        f"or a `kaggle auth login` (~/.kaggle/credentials.json) works too.{found} {OFFLINE_HINT}"
    )


# ---------------------------------------------------------------- secrets and client output


def _secrets() -> list[str]:
    """Every secret value the client may hold now, so that messages can mask them."""
    values = [os.environ.get("KAGGLE_KEY", ""), os.environ.get("KAGGLE_API_TOKEN", "")]
    home = Path(os.environ.get("HOME") or Path.home())
    files = [home / ".kaggle" / "access_token", home / ".kaggle" / "access_token.txt"]
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_API_V1_TOKEN"):
        if os.environ.get(name):
            files.append(Path(os.environ[name]))
    for path in files:
        with contextlib.suppress(OSError, ValueError):
            values.append(path.read_text().strip())
    for path, fields in ((_config_dir(os.environ, home) / "kaggle.json", ("key",)),
                         (home / ".kaggle" / "credentials.json", ("refresh_token", "access_token"))):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            data = json.loads(path.read_text())
            values += [str(data.get(f) or "") for f in fields]
    user = os.environ.get("KAGGLE_USERNAME", "")
    values += [base64.b64encode(f"{user}:{v}".encode()).decode() for v in list(values) if v]  # Basic auth headers
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _redact(text: str) -> str:
    """text with secrets masked and URL query strings (signed download links) cut off."""
    for secret in _secrets():
        text = text.replace(secret, "***")
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?...", text)


@contextlib.contextmanager
def _client_output() -> Iterator[None]:
    """Send what the client prints to our log, secrets masked, instead of letting it reach stdout."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.info("kaggle client: %s", _redact(line))


def _import_client() -> Any:
    """Import KaggleApi quietly; its package authenticates at import, verbosely when VERBOSE is set."""
    # With VERBOSE set, that import-time login prints request bodies and headers, secrets included.
    hidden = {name: os.environ.pop(name) for name in ("VERBOSE", "VERBOSE_OUTPUT") if name in os.environ}
    try:
        with _client_output():
            from kaggle.api.kaggle_api_extended import KaggleApi
    finally:
        os.environ.update(hidden)
    return KaggleApi


def _login(source: CredentialSource) -> Any:
    """A KaggleApi for this call's environment, authenticated with source's credentials."""
    api = _import_client()()
    # The class froze these from the environment it was first imported in; this call's environment decides.
    api.config_dir = str(source.config_dir)
    api.config = str(source.config_dir / "kaggle.json")
    environment = os.environ.get("KAGGLE_API_ENVIRONMENT")
    if environment not in (None, "PROD", "LOCALHOST"):
        log.warning("KAGGLE_API_ENVIRONMENT=%s is ignored by the kaggle client's API calls: they go to "
                    "api.kaggle.com", environment)
    api.args = ["--local"] if environment == "LOCALHOST" else []  # never "--verbose": it prints credentials
    try:
        api.authenticate()
    except SystemExit:  # the client exits when a token or OAuth login is refused and nothing else is configured
        what = {"access_token": "access token", "oauth": "OAuth login"}.get(source.kind, "credentials")
        raise StageError(
            f"Kaggle did not accept the {what} from {source.origin}. Create a new token at {TOKEN_URL}."
        ) from None
    return api


# ---------------------------------------------------------------- errors and retries


class _TransientError(Exception):
    """A failure that another attempt may not meet (a broken download, a failed upload)."""


def _status(err: BaseException) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _transient(err: BaseException) -> str | None:
    """What went wrong, when another attempt may succeed; None when retrying cannot help."""
    import requests
    import urllib3.exceptions

    status = _status(err)
    if isinstance(err, requests.HTTPError) and status is not None:
        if status == 429:
            return "rate limited (HTTP 429)"
        if status >= 500:
            return f"server error (HTTP {status})"
        if status == 403 and "/api/v1/" not in str(err.response.url):
            return "the storage link was refused (HTTP 403), it may have expired"
        return None
    if isinstance(err, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                        urllib3.exceptions.ProtocolError)):
        return f"connection dropped ({type(err).__name__})"
    if isinstance(err, _TransientError):
        return str(err)
    return None


def _explain(err: BaseException, competition: str, source: CredentialSource) -> StageError:
    """The message a user reads for a failure that retrying cannot fix."""
    status = _status(err)
    if status == 401:
        return StageError(
            f"Kaggle rejected the credentials from {source.origin} (HTTP 401). Check them, or create a new API "
            f"token at {TOKEN_URL}."
        )
    if status == 403:
        return StageError(
            f"Kaggle refused access to competition '{competition}' (HTTP 403): its rules have not been accepted "
            f"by the account whose credentials come from {source.origin}. Sign in to kaggle.com as that account, "
            f"accept the rules at https://www.kaggle.com/competitions/{competition}/rules and run again "
            "(the API cannot accept them for you)."
        )
    if status == 404:
        return StageError(
            f"Kaggle has no competition '{competition}' (HTTP 404). Check the name: it is the last part of the "
            "competition's address, https://www.kaggle.com/competitions/<name>."
        )
    if status is not None:
        return StageError(f"Kaggle refused the request (HTTP {status}): {_redact(str(err))}")
    return StageError(f"talking to Kaggle failed: {type(err).__name__}: {_redact(str(err))}")


def _retry_delay(err: BaseException, attempt: int, backoff_s: float) -> float:
    """Exponential backoff, or the server's Retry-After when it gives one; both capped."""
    response = getattr(err, "response", None)
    retry_after = response.headers.get("Retry-After") if response is not None else None
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after), MAX_BACKOFF_S)
    return min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)


@dataclass(frozen=True)
class _Calls:
    """Runs calls to Kaggle for one competition: retries transient failures, turns the rest into StageErrors."""

    competition: str
    source: CredentialSource
    attempts: int  # tries per step, the first included
    backoff_s: float  # first retry delay; doubles each time, capped at MAX_BACKOFF_S

    def run(self, step: str, call: Callable[[], T]) -> T:
        """call(), retried with backoff while its failures are transient; step names it in messages."""
        for attempt in range(1, self.attempts + 1):
            try:
                with _client_output():
                    return call()
            except StageError:
                raise
            except Exception as err:  # every failure must become a message without secrets
                reason = _transient(err)
                if reason is None:
                    raise _explain(err, self.competition, self.source) from None
                if attempt == self.attempts:
                    raise StageError(
                        f"{step} failed {self.attempts} times, last because {_redact(reason)}. Kaggle may be busy "
                        "or unreachable: try again later."
                    ) from None
                delay = _retry_delay(err, attempt, self.backoff_s)
                log.warning("%s: %s; attempt %d of %d, retrying in %.1f s",
                            step, _redact(reason), attempt, self.attempts, delay)
                time.sleep(delay)
        raise StageError(f"{step}: attempts must be at least 1, got {self.attempts}")


# ---------------------------------------------------------------- download


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
            raise _TransientError(f"the download ended early ({err})") from None
        finally:
            response.close()


def _check_archive(path: Path, competition: str, expected: Sequence[str]) -> None:
    """Raise StageError unless path is an intact zip holding the expected members."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = [name for name in expected if name not in set(archive.namelist())]
            corrupt = archive.testzip()
    except zipfile.BadZipFile:
        raise StageError(f"Kaggle sent something that is not a zip archive for '{competition}'; run again later.") \
            from None
    if missing:
        raise StageError(f"the archive of '{competition}' lacks {', '.join(missing)}; is it the right competition?")
    if corrupt:
        raise StageError(f"the archive of '{competition}' is corrupt ({corrupt} fails its checksum); run again.")


def download_competition(competition: str, target: Path, *, expected_members: Sequence[str] = REQUIRED_MEMBERS,
                         attempts: int = 5, backoff_s: float = 2.0) -> None:
    """Download competition's whole archive to target (a .zip path), which appears only once verified."""
    source = find_credentials()
    calls = _Calls(competition, source, attempts, backoff_s)
    api = calls.run("signing in to Kaggle", lambda: _login(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    # The client writes a resume marker beside its file: keep both in a scratch dir that is always removed.
    with atomic_file(target) as tmp, tempfile.TemporaryDirectory(
            prefix=f".{target.name}.", suffix=".parts", dir=target.parent) as scratch:
        partial = Path(scratch) / target.name
        calls.run(f"downloading {competition}", lambda: _fetch_archive(api, competition, partial))
        _check_archive(partial, competition, expected_members)
        os.replace(partial, tmp)
    log.info("downloaded %s to %s (%d bytes)", competition, target, target.stat().st_size)


# ---------------------------------------------------------------- submit


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
        raise _TransientError("the upload of the CSV did not complete")
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
        return {"competition": competition, "ref": ref, "status": "pending", "public_score": None,
                "private_score": None, "date": None, "message": message, "file_name": csv_path.name}
    return {
        "competition": competition,
        "ref": submission.ref,
        "status": submission.status.name.lower(),
        "public_score": _score(submission.public_score),
        "private_score": _score(submission.private_score),
        "date": submission.date.replace(tzinfo=timezone.utc).isoformat() if submission.date else None,
        "message": submission.description or message,
        "file_name": submission.file_name or csv_path.name,
    }


def submit_csv(competition: str, csv_path: Path, message: str, *, poll_timeout_s: float = 600.0,
               poll_interval_s: float = 10.0, attempts: int = 5, backoff_s: float = 2.0) -> dict[str, Any]:
    """Submit csv_path to competition with message, then poll up to poll_timeout_s for its score.

    Returns the receipt: competition, ref, status ("complete", or "pending" when the poll ran out),
    public_score, private_score, date, message, file_name.
    """
    if not csv_path.is_file():
        raise StageError(f"there is no submission file at {csv_path}")
    source = find_credentials()
    calls = _Calls(competition, source, attempts, backoff_s)
    api = calls.run("signing in to Kaggle", lambda: _login(source))
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
    log.info("submitted %s to %s as ref %s; waiting up to %.0f s for the score",
             csv_path.name, competition, ref, poll_timeout_s)

    from kagglesdk.competitions.types.submission_status import SubmissionStatus

    deadline = time.monotonic() + poll_timeout_s
    while True:
        listed = calls.run("listing submissions", lambda: _list_submissions(api, competition))
        submission = _ours(listed, ref, known, message)
        if submission is not None and submission.status != SubmissionStatus.PENDING:
            break
        if time.monotonic() + poll_interval_s > deadline:
            log.warning("submission %s is not scored after %.0f s; see https://www.kaggle.com/competitions/%s/"
                        "submissions", ref or "(no ref)", poll_timeout_s, competition)
            break
        time.sleep(poll_interval_s)

    if submission is not None and submission.status == SubmissionStatus.ERROR:
        raise StageError(
            f"Kaggle could not score submission {submission.ref} ({csv_path.name}): "
            f"{_redact(submission.error_description or 'no reason given')}. "
            "Compare the CSV with sample_submission.csv."
        )
    if submission is None and not ref:
        raise StageError(
            f"Kaggle accepted the submission to '{competition}' but did not list it; check its submissions page."
        )
    return _receipt(competition, submission, ref, message, csv_path)


def find_submission(competition: str, marker: str, *, attempts: int = 5, backoff_s: float = 2.0) -> dict[str, Any] | None:
    """The receipt of this account's newest submission whose message contains marker, or None."""
    source = find_credentials()
    calls = _Calls(competition, source, attempts, backoff_s)
    api = calls.run("signing in to Kaggle", lambda: _login(source))
    listed = calls.run("listing submissions", lambda: _list_submissions(api, competition))
    match = next((s for s in listed if marker in (s.description or "")), None)
    return None if match is None else _receipt(competition, match, match.ref, match.description, Path(match.file_name or ""))
