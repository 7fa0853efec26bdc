"""Pytest fixtures that point the real kaggle client at the fake Kaggle server, with canary credentials.

Use them with `pytest_plugins = ["tests.support.kaggle_fixtures"]` in a test module. Everything is set through
os.environ (monkeypatch), so subprocesses such as `dvc repro` inherit it.
"""

from __future__ import annotations

import errno
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kaggle_fake import (
    CANARY_KEY,
    CANARY_TOKEN,
    CANARY_USER,
    CompetitionArchive,
    FakeKaggle,
    FakeKaggleServer,
    build_competition_archive,
)

# KAGGLE_API_ENVIRONMENT=LOCALHOST makes the client call http://localhost/api/v1/...: port 80, fixed.
PORT = 80
PORT_LOCK = Path("/tmp/kaggle-fake-port-80.lock")  # serialises fakes of concurrent pytest runs on this machine
PORT_WAIT_S = 300


@pytest.fixture(scope="session")
def kaggle_archive() -> CompetitionArchive:
    """A small Kaggle-format competition zip (built once per session) and its test labels."""
    return build_competition_archive()


@pytest.fixture
def kaggle_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway HOME with an empty ~/.kaggle (also KAGGLE_CONFIG_DIR) and no Kaggle settings inherited."""
    import os

    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    for name in list(os.environ):
        if name.startswith("KAGGLE_") or name in ("VERBOSE", "VERBOSE_OUTPUT", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(home / ".kaggle"))
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "localhost", "127.0.0.1"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)  # a proxy from the environment must not see loopback traffic
    monkeypatch.setenv("no_proxy", no_proxy)
    return home


def _wait_for_port_lock(lock_file: object) -> None:
    """Take the machine-wide lock for port 80, waiting for another test run's fake to finish."""
    deadline = time.monotonic() + PORT_WAIT_S
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[arg-type]
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"another test run held {PORT_LOCK} (the fake Kaggle's port {PORT}) for {PORT_WAIT_S} s")
            time.sleep(0.2)


@pytest.fixture
def kaggle_server(
    kaggle_home: Path, kaggle_archive: CompetitionArchive, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKaggle]:
    """A running fake Kaggle on localhost:80 and an environment whose kaggle client talks to it.

    Sets KAGGLE_API_ENVIRONMENT=LOCALHOST, KAGGLE_USERNAME/KAGGLE_KEY (canary values; the fake also
    accepts CANARY_TOKEN as KAGGLE_API_TOKEN), HOME and KAGGLE_CONFIG_DIR. Yields the fake's state:
    set rules_accepted, fixed_score, never_scores, or queue faults with fail().
    """
    fake = FakeKaggle(kaggle_archive, username=CANARY_USER, key=CANARY_KEY, token=CANARY_TOKEN)
    with PORT_LOCK.open("w") as lock_file:
        _wait_for_port_lock(lock_file)
        try:
            server = FakeKaggleServer(fake, port=PORT)
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                pytest.fail(
                    f"the fake Kaggle cannot listen on port {PORT} ({err.strerror}); the kaggle client "
                    "only reaches http://localhost on port 80, so free it or run as root"
                )
            raise
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
        monkeypatch.setenv("KAGGLE_USERNAME", CANARY_USER)
        monkeypatch.setenv("KAGGLE_KEY", CANARY_KEY)
        with server:
            yield fake
