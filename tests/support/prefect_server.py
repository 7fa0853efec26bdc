"""A real Prefect server and process worker on loopback, each in its own process group, always torn down."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.workspace import tool_env

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start a process in a new session (its own process group), output to log."""
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen, grace: float = 15) -> None:
    """Stop the process and everything it started: SIGTERM to its group, SIGKILL after grace seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


@dataclass
class PrefectServer:
    """A running server: its API URL, the environment that points clients at it, and its logs."""

    url: str
    env: dict[str, str]
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def cli(self, *args: str, cwd: Path) -> str:
        """Run the prefect CLI against this server; its output, or AssertionError with it."""
        result = subprocess.run(
            [sys.executable, "-m", "prefect", "--no-prompt", *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call the REST API; the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def start_worker(
        self, pool: str, cwd: Path, name: str | None = None, limit: int | None = None, env: dict | None = None
    ) -> subprocess.Popen:
        """A process worker on pool, polling every second, stopped with the server; name, limit (flow runs at once)
        and extra environment variables optional. Its log is <name or "worker">.log."""
        args = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process"]
        args += ["--name", name] if name else []
        args += ["--limit", str(limit)] if limit else []
        worker = start(args, cwd, {**self.env, **(env or {})}, self.logs / f"{name or 'worker'}.log")
        self.processes.append(worker)
        return worker

    def run_deployment(self, name: str, cwd: Path, params: dict | None = None) -> str:
        """Trigger a run of deployment `flow/deployment` by hand, as a person would; its flow run id."""
        args = ["deployment", "run", name] + (["--params", json.dumps(params)] if params else [])
        output = self.cli(*args, cwd=cwd)
        match = UUID.search(output.split("UUID", 1)[-1])
        assert match, f"no flow run id in:\n{output}"
        return match.group(0)

    def wait_for_run(self, flow_run_id: str, timeout: float) -> dict:
        """Poll the flow run until it reaches a terminal state; the flow run as the API returns it."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.api("GET", f"/flow_runs/{flow_run_id}")
            if run["state_type"] in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"flow run {flow_run_id} still {run['state_name']} after {timeout}s:\n{self.tail()}"
                )
            time.sleep(2)

    def task_runs(self, flow_run_id: str, expected: int, timeout: float = 60) -> dict[str, dict]:
        """Task runs of a flow run by task name; waits until `expected` are terminal (the server records them
        from events, a moment after the flow run ends)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.api("POST", "/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
            by_name = {run["name"].rsplit("-", 1)[0]: run for run in runs}
            done = [r for r in by_name.values() if r["state_type"] in TERMINAL]
            if len(done) >= expected or time.monotonic() > deadline:
                return by_name
            time.sleep(1)

    def artifacts(self, flow_run_id: str) -> dict[str, dict]:
        """Artifacts of a flow run, by key."""
        found = self.api("POST", "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}})
        return {a["key"]: a for a in found}

    def logs_of(self, flow_run_id: str) -> str:
        """The flow run's log messages (its own and its tasks'), oldest first."""
        logs = self.api(
            "POST", "/logs/filter", {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC"}
        )
        return "\n".join(entry["message"] for entry in logs)

    def tail(self) -> str:
        """The end of every log file, for failure messages."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.logs.glob("*.log"))
        )


@contextmanager
def prefect_server(home: Path, startup_timeout: float = 180) -> Iterator[PrefectServer]:
    """`prefect server start` on 127.0.0.1 with SQLite under home; yields once /api/health answers; stops
    the server and every worker started through it, even when the test fails."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = tool_env()
    env = {k: v for k, v in env.items() if not k.startswith("PREFECT_")}  # nothing from the caller's own profile
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_WORKER_HEARTBEAT_SECONDS="5",
        PREFECT_LOGGING_TO_API_BATCH_INTERVAL="0.5",
        PYTHONUNBUFFERED="1",
    )
    server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    args = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--no-ui", "--analytics-off", "--no-scheduler", "--no-late-runs"]
    server = PrefectServer(url, env, home)
    server.processes.append(start(args, home, server_env, home / "server.log"))
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if server.api("GET", "/health") is True:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if server.processes[0].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prefect server did not come up on {url}:\n{server.tail()}")
            time.sleep(1)
        yield server
    finally:
        for process in reversed(server.processes):
            stop(process)
