"""Kaggle credentials, found the way the official client finds them, and the masking of their secrets in messages.

Nothing here imports the `kaggle` package: importing it authenticates at once, as a side effect.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tasks.core.errors import StageError

log = logging.getLogger(__name__)

TOKEN_URL = "https://www.kaggle.com/settings/api"
OFFLINE_HINT = (
    "To run without Kaggle, set download.source to synthetic (generated images) or archive "
    "(a local copy of the competition zip) in params.yaml."
)


@dataclass(frozen=True)
class CredentialSource:
    """Where the kaggle client will find credentials; it never holds the secret itself."""

    kind: str  # "access_token", "api_key" or "oauth": how the client signs its requests
    origin: str  # what a user reads in messages: environment variable names or a file path
    config_dir: Path  # where the client looks for kaggle.json; it freezes this at import, so we set it per call


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


def secrets() -> list[str]:
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
    for path, fields in (
        (_config_dir(os.environ, home) / "kaggle.json", ("key",)),
        (home / ".kaggle" / "credentials.json", ("refresh_token", "access_token")),
    ):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            data = json.loads(path.read_text())
            values += [str(data.get(f) or "") for f in fields]
    user = os.environ.get("KAGGLE_USERNAME", "")
    values += [base64.b64encode(f"{user}:{v}".encode()).decode() for v in list(values) if v]  # Basic auth headers
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def redact(text: str) -> str:
    """text with secrets masked and URL query strings (signed download links) cut off."""
    for secret in secrets():
        text = text.replace(secret, "***")
    return re.sub(r"(https?://[^\s?'\"]+)\?[^\s'\"]*", r"\1?...", text)
