"""A loopback HTTP server that plays a vendor: it checks every request against the vendor's
documented contract, records what it accepted, and fails on demand (429, 5xx, …).

A request that breaks the contract is answered 400/401 *and* recorded in ``violations``,
so a test can assert the client never broke it (a retried 4xx would hide otherwise).
"""

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Fault:
    status: int
    times: int
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    path_contains: str = ""


class ContractViolation(Exception):
    """The client broke the vendor's documented contract."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class MockVendor:
    """Subclasses implement :meth:`route`; faults and bookkeeping live here."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---------- test controls
    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: str | None = None,
        body: dict[str, Any] | None = None,
        path_contains: str = "",
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead of serving them."""
        self._faults.append(Fault(status, times, retry_after, body, path_contains))

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---------- serving
    def route(self, request: Request) -> Answer:
        raise NotImplementedError

    def _fault_for(self, request: Request) -> Fault | None:
        for fault in self._faults:
            if fault.path_contains in request.path:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def dispatch(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            fault = self._fault_for(request)
            if fault is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return Answer(fault.status, fault.body or {"error": "injected"}, headers)
            try:
                return self.route(request)
            except ContractViolation as violation:
                self.violations.append(f"{request.method} {request.path}: {violation}")
                return Answer(violation.status, {"error": {"message": str(violation)}})

    @contextmanager
    def running(self) -> Iterator["MockVendor"]:
        vendor = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                answer = vendor.dispatch(request)
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return  # keep test output quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)


def require(condition: bool, message: str, status: int = 400) -> None:
    if not condition:
        raise ContractViolation(message, status)
