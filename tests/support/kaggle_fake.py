"""A Kaggle API stand-in on loopback that the real `kaggle` client (2.2.5) talks to unmodified.

It speaks the calls the client makes for our pipeline, as read from kagglesdk: every API call is a
JSON POST to /api/v1/<service>/<method>; DownloadDataFiles answers with a redirect to a storage URL;
StartSubmissionUpload hands out an upload URL that takes a PUT; CreateSubmission and ListSubmissions
return JSON. Faults are queued per endpoint so a test can say "429 once, then behave".
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import math
import os
import socket
import threading
import uuid
import zipfile
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from PIL import Image

COMPETITION = "dogs-vs-cats-redux-kernels-edition"
CANARY_USER = "canary-user"  # a username is not a secret, but is distinct enough to spot
CANARY_KEY = "canary-key-9f8e7d"
CANARY_TOKEN = "canary-token-5c4b3a"
API_PREFIX = "/api/v1/"
STORAGE_PREFIX = "/storage/"
UPLOAD_PREFIX = "/upload/"
RULES_MESSAGE = "You must accept this competition's rules before you'll be able to download files."

# What a queued fault may be: an HTTP status, "drop" (close without answering), "lose-answer" (an API
# call does its work, then the connection closes before the answer) or, for the storage download only,
# "truncate" (announce the full length, send half, close).
Fault = int | str


@dataclass(frozen=True)
class CompetitionArchive:
    """The competition zip's bytes and the true labels (1 = dog) of its test images."""

    data: bytes
    test_labels: dict[int, int]


def _jpeg(rgb: tuple[int, int, int], size: int) -> bytes:
    """A small solid-colour JPEG."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(out, format="JPEG")
    return out.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    """Zip bytes holding members."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def build_competition_archive(
    per_class: int = 3, n_test: int = 4, size: int = 32, padding_bytes: int = 0
) -> CompetitionArchive:
    """A Kaggle-format competition zip: train.zip, test.zip and sample_submission.csv.

    Cats are reddish and dogs bluish, so a model can learn something from them. padding_bytes adds an
    incompressible padding.bin, for downloads bigger than the client's 1 MiB read size.
    """
    cat, dog = (200, 60, 40), (40, 60, 200)
    train = {
        f"train/{kind}.{i}.jpg": _jpeg(rgb, size)
        for kind, rgb in (("cat", cat), ("dog", dog))
        for i in range(1, per_class + 1)
    }
    labels = {i: i % 2 for i in range(1, n_test + 1)}
    test = {f"test/{i}.jpg": _jpeg(dog if label else cat, size) for i, label in labels.items()}
    sample = "id,label\n" + "".join(f"{i},0.5\n" for i in labels)
    members = {"train.zip": _zip(train), "test.zip": _zip(test), "sample_submission.csv": sample.encode()}
    if padding_bytes:
        members["padding.bin"] = os.urandom(padding_bytes)
    data = _zip(members)
    return CompetitionArchive(data, labels)


def log_loss(csv_bytes: bytes, labels: dict[int, int]) -> float:
    """Kaggle's metric for this competition; raises ValueError for a CSV Kaggle would reject."""
    rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8"))))
    if not rows or [c.strip() for c in rows[0]] != ["id", "label"]:
        raise ValueError("Submission must have the header id,label")
    predicted = {int(row[0]): float(row[1]) for row in rows[1:] if row}
    if set(predicted) != set(labels):
        raise ValueError(f"Submission must have {len(labels)} rows, one per test id")
    eps = 1e-15
    total = 0.0
    for image_id, label in labels.items():
        p = min(max(predicted[image_id], eps), 1 - eps)
        total -= math.log(p) if label else math.log(1 - p)
    return total / len(labels)


@dataclass
class Submission:
    """One submission as the fake keeps it."""

    ref: int
    description: str
    file_name: str
    content: bytes
    date: datetime
    status: str = "PENDING"
    public_score: str | None = None
    private_score: str | None = None
    error: str | None = None
    polls: int = 0

    def as_api(self) -> dict[str, object]:
        """The ApiSubmission JSON the client parses."""
        body: dict[str, object] = {
            "ref": self.ref,
            "date": self.date.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.date.microsecond // 1000:03d}Z",
            "description": self.description,
            "fileName": self.file_name,
            "status": self.status,
            "totalBytes": len(self.content),
        }
        if self.public_score is not None:
            body["publicScore"] = self.public_score
            body["privateScore"] = self.private_score
        if self.error is not None:
            body["errorDescription"] = self.error
        return body


@dataclass
class Upload:
    """A file announced by StartSubmissionUpload; content arrives with the PUT."""

    file_name: str
    content: bytes | None = None


@dataclass
class FakeKaggle:
    """State and behaviour of the fake; the HTTP handler only translates requests to these methods."""

    archive: CompetitionArchive
    username: str
    key: str
    token: str | None = None
    competition: str = COMPETITION
    rules_accepted: bool = True
    fixed_score: float | None = None  # when set, every scored submission gets it instead of the log loss
    polls_until_scored: int = 1  # list calls that still show a new submission as PENDING
    never_scores: bool = False
    retry_after: str | None = None  # Retry-After header sent with an injected 429
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    submissions: list[Submission] = field(default_factory=list)
    uploads: dict[str, Upload] = field(default_factory=dict)
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, Range header
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, endpoint: str, *faults: Fault) -> None:
        """Queue faults for endpoint: an API method name (e.g. "DownloadDataFiles"), "storage" or "upload"."""
        self.faults.setdefault(endpoint, deque()).extend(faults)

    def next_fault(self, endpoint: str) -> Fault | None:
        """Pop the next queued fault for endpoint, if any."""
        with self.lock:
            queue = self.faults.get(endpoint)
            return queue.popleft() if queue else None

    def calls(self, path_suffix: str) -> int:
        """How many requests reached a path ending with path_suffix."""
        return sum(1 for _, path, _ in self.seen if path.endswith(path_suffix))

    @property
    def etag(self) -> str:
        """A strong validator for the archive, so the client may resume a broken download."""
        return '"' + hashlib.sha256(self.archive.data).hexdigest()[:32] + '"'

    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries the configured key or token."""
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme == "Basic":
            return value == base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        return scheme == "Bearer" and self.token is not None and value == self.token

    def score(self, submission: Submission) -> None:
        """Give a submission its score, or the error Kaggle would show."""
        try:
            value = self.fixed_score
            if value is None:
                value = log_loss(submission.content, self.archive.test_labels)
        except (ValueError, UnicodeDecodeError) as err:
            submission.status, submission.error = "ERROR", str(err)
            return
        submission.status = "COMPLETE"
        submission.public_score = submission.private_score = f"{value:.5f}"

    def list_submissions(self) -> list[dict[str, object]]:
        """Newest first, as Kaggle sorts by date; each listing moves pending submissions towards scored."""
        with self.lock:
            for sub in self.submissions:
                if sub.status == "PENDING" and not self.never_scores:
                    if sub.polls >= self.polls_until_scored:
                        self.score(sub)
                    sub.polls += 1
            return [sub.as_api() for sub in reversed(self.submissions)]


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the FakeKaggle attached to the server."""

    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean; requests are recorded in FakeKaggle.seen instead

    @property
    def fake(self) -> FakeKaggle:
        return self.server.fake

    def do_POST(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def _route(self) -> None:
        path = urlsplit(self.path).path
        self.fake.seen.append((self.command, path, self.headers.get("Range")))
        try:
            if self.command == "POST" and path.startswith(API_PREFIX):
                self._api(path[len(API_PREFIX) :])
            elif self.command == "GET" and path.startswith(STORAGE_PREFIX):
                self._storage(path[len(STORAGE_PREFIX) :])
            elif self.command == "PUT" and path.startswith(UPLOAD_PREFIX):
                self._upload(path[len(UPLOAD_PREFIX) :])
            else:
                self._json(404, {"code": 404, "message": f"No route for {self.command} {path}"})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, as it does when it abandons a stream to resume elsewhere

    # -- helpers --

    def _body(self) -> bytes:
        """The request body, whether sent with Content-Length or chunked."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        """An error shaped like Kaggle's: JSON with code and message (the client raises HTTPError on it)."""
        headers = {"Retry-After": self.fake.retry_after} if status == 429 and self.fake.retry_after else None
        self._json(status, {"code": status, "message": message}, headers)

    def _injected(self, endpoint: str) -> bool:
        """Apply a queued fault for endpoint; True when it answered (or dropped) the request."""
        return self._apply(self.fake.next_fault(endpoint))

    def _apply(self, fault: Fault | None) -> bool:
        """Answer with an injected status or drop the connection; False when there is nothing to inject."""
        if fault is None:
            return False
        if fault == "drop":
            self._hang_up()
        else:
            status = int(fault)
            self._error(status, {429: "Too many requests", 401: "Unauthenticated"}.get(status, "Injected failure"))
        return True

    def _hang_up(self) -> None:
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _absolute(self, path: str) -> str:
        return f"http://{self.headers.get('Host', 'localhost')}{path}"

    # -- endpoints --

    def _api(self, route: str) -> None:
        request = json.loads(self._body() or b"{}")
        method = route.rsplit("/", 1)[-1]
        fault = self.fake.next_fault(method)
        if fault == "lose-answer":
            answer, self.wfile = self.wfile, io.BytesIO()  # do the work, write the answer nowhere
            self._api_call(method, request)
            self.wfile = answer
            self._hang_up()
            return
        if self._apply(fault):
            return
        self._api_call(method, request)

    def _api_call(self, method: str, request: dict[str, object]) -> None:
        if method == "IntrospectToken":
            token_ok = self.fake.token is not None and request.get("token") == self.fake.token
            self._json(200, {"active": token_ok, "username": self.fake.username if token_ok else ""})
            return
        if not self.fake.authorized(self.headers.get("Authorization")):
            self._error(401, "Unauthenticated")
            return
        if request.get("competitionName") != self.fake.competition:
            self._error(404, "Competition not found")
            return
        handlers = {
            "DownloadDataFiles": self._download_data_files,
            "StartSubmissionUpload": self._start_submission_upload,
            "CreateSubmission": self._create_submission,
            "ListSubmissions": self._list_submissions,
        }
        if method not in handlers:
            self._error(404, f"Method {method} is not faked")
            return
        if not self.fake.rules_accepted and method != "ListSubmissions":
            self._error(403, RULES_MESSAGE)
            return
        handlers[method](request)

    def _download_data_files(self, _: dict[str, object]) -> None:
        # Kaggle redirects to a signed storage URL; the query mimics one (the client strips it for naming).
        self.send_response(302)
        location = f"{STORAGE_PREFIX}{self.fake.competition}.zip?X-Goog-Signature=fake"
        self.send_header("Location", self._absolute(location))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _list_submissions(self, _: dict[str, object]) -> None:
        self._json(200, {"submissions": self.fake.list_submissions(), "nextPageToken": ""})

    def _start_submission_upload(self, request: dict[str, object]) -> None:
        token = uuid.uuid4().hex
        self.fake.uploads[token] = Upload(str(request.get("fileName") or "submission.csv"))
        self._json(200, {"token": token, "createUrl": self._absolute(f"{UPLOAD_PREFIX}{token}")})

    def _create_submission(self, request: dict[str, object]) -> None:
        upload = self.fake.uploads.get(str(request.get("blobFileTokens", "")))
        if upload is None or upload.content is None:
            self._error(400, "The uploaded file for this submission was not found")
            return
        with self.fake.lock:
            ref = 40_000_000 + len(self.fake.submissions) + 1
            self.fake.submissions.append(
                Submission(
                    ref=ref,
                    description=str(request.get("submissionDescription") or ""),
                    file_name=upload.file_name,
                    content=upload.content,
                    date=datetime.now(UTC).replace(tzinfo=None),
                )
            )
        self._json(200, {"message": "Successfully submitted to Dogs vs. Cats Redux: Kernels Edition", "ref": ref})

    def _storage(self, name: str) -> None:
        if name != f"{self.fake.competition}.zip":
            self._error(404, "No such object")
            return
        fault = self.fake.next_fault("storage")
        if fault != "truncate" and self._apply(fault):
            return
        data = self.fake.archive.data
        start = 0
        range_header = self.headers.get("Range")
        if range_header and self.headers.get("If-Range", self.fake.etag) == self.fake.etag:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(data) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", self.fake.etag)
        self.send_header("Last-Modified", formatdate(1_500_000_000, usegmt=True))
        self.end_headers()
        body = data[start:]
        if fault == "truncate":
            self.wfile.write(body[: len(body) // 2])
            self._hang_up()
            return
        self.wfile.write(body)

    def _upload(self, token: str) -> None:
        if self._injected("upload"):
            return
        if token not in self.fake.uploads:
            self._error(404, "Upload session not found")
            return
        self.fake.uploads[token].content = self._body()
        self._json(200, {})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeKaggle


class FakeKaggleServer:
    """Runs a FakeKaggle on a loopback port in a background thread."""

    def __init__(self, fake: FakeKaggle, host: str = "127.0.0.1", port: int = 80) -> None:
        self.fake = fake
        self._server = _Server((host, port), _Handler)
        self._server.fake = fake
        # A short poll interval: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-kaggle", daemon=True
        )

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self) -> FakeKaggleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
