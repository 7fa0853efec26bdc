"""The official Kaggle client, signed in and called with retries: transient failures are retried with backoff,
the rest become one-line StageErrors, and nothing it prints reaches stdout unmasked.

The `kaggle` package is imported only inside functions, after credentials were found: importing it
authenticates at once and prints help (or calls the network) as a side effect.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from tasks.core.errors import StageError
from tasks.kaggle.credentials import TOKEN_URL, CredentialSource, redact

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
T = TypeVar("T")


@contextlib.contextmanager
def client_output() -> Iterator[None]:
    """Send what the client prints to our log, secrets masked, instead of letting it reach stdout."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.info("kaggle client: %s", redact(line))


def _import_client() -> Any:
    """Import KaggleApi quietly; its package authenticates at import, verbosely when VERBOSE is set."""
    # With VERBOSE set, that import-time login prints request bodies and headers, secrets included.
    hidden = {name: os.environ.pop(name) for name in ("VERBOSE", "VERBOSE_OUTPUT") if name in os.environ}
    try:
        with client_output():
            from kaggle.api.kaggle_api_extended import KaggleApi
    finally:
        os.environ.update(hidden)
    return KaggleApi


def login(source: CredentialSource) -> Any:
    """A KaggleApi for this call's environment, authenticated with source's credentials."""
    api = _import_client()()
    # The class froze these from the environment it was first imported in; this call's environment decides.
    api.config_dir = str(source.config_dir)
    api.config = str(source.config_dir / "kaggle.json")
    environment = os.environ.get("KAGGLE_API_ENVIRONMENT")
    if environment not in (None, "PROD", "LOCALHOST"):
        log.warning(
            "KAGGLE_API_ENVIRONMENT=%s is ignored by the kaggle client's API calls: they go to api.kaggle.com",
            environment,
        )
    api.args = ["--local"] if environment == "LOCALHOST" else []  # never "--verbose": it prints credentials
    try:
        api.authenticate()
    except SystemExit:  # the client exits when a token or OAuth login is refused and nothing else is configured
        what = {"access_token": "access token", "oauth": "OAuth login"}.get(source.kind, "credentials")
        raise StageError(
            f"Kaggle did not accept the {what} from {source.origin}. Create a new token at {TOKEN_URL}."
        ) from None
    return api


class TransientError(Exception):
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
    if isinstance(
        err,
        (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.ProtocolError,
        ),
    ):
        return f"connection dropped ({type(err).__name__})"
    if isinstance(err, TransientError):
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
        return StageError(f"Kaggle refused the request (HTTP {status}): {redact(str(err))}")
    return StageError(f"talking to Kaggle failed: {type(err).__name__}: {redact(str(err))}")


def _retry_delay(err: BaseException, attempt: int, backoff_s: float) -> float:
    """Exponential backoff, or the server's Retry-After when it gives one; both capped."""
    response = getattr(err, "response", None)
    retry_after = response.headers.get("Retry-After") if response is not None else None
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after), MAX_BACKOFF_S)
    return min(backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S)


@dataclass(frozen=True)
class KaggleCalls:
    """Runs calls to Kaggle for one competition: retries transient failures, turns the rest into StageErrors."""

    competition: str
    source: CredentialSource
    attempts: int  # tries per step, the first included
    backoff_s: float  # first retry delay; doubles each time, capped at MAX_BACKOFF_S

    def run(self, step: str, call: Callable[[], T]) -> T:
        """call(), retried with backoff while its failures are transient; step names it in messages."""
        for attempt in range(1, self.attempts + 1):
            try:
                with client_output():
                    return call()
            except StageError:
                raise
            except Exception as err:  # every failure must become a message without secrets
                reason = _transient(err)
                if reason is None:
                    raise _explain(err, self.competition, self.source) from None
                if attempt == self.attempts:
                    raise StageError(
                        f"{step} failed {self.attempts} times, last because {redact(reason)}. Kaggle may be busy "
                        "or unreachable: try again later."
                    ) from None
                delay = _retry_delay(err, attempt, self.backoff_s)
                log.warning(
                    "%s: %s; attempt %d of %d, retrying in %.1f s", step, redact(reason), attempt, self.attempts, delay
                )
                time.sleep(delay)
        raise StageError(f"{step}: attempts must be at least 1, got {self.attempts}")
