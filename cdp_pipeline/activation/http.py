"""One HTTP session per sync: retries on 429 and transient failures, never on other 4xx.

urllib3's ``Retry`` does the waiting: it honours ``Retry-After`` on 429 and 503 and backs
off exponentially on connection errors and 5xx. The vendors' upsert and removal calls are
idempotent (keyed by e-mail, hash or token), so POSTs are retried too. What is still wrong
after the retries is returned to the caller, which records it against the members.
"""

from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class _CappedRetry(Retry):
    """Retry that never sleeps longer than ``max_retry_after`` seconds for one Retry-After."""

    max_retry_after: float = 60.0

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.max_retry_after)

    def new(self, **kw: Any) -> "_CappedRetry":
        retry = super().new(**kw)
        retry.max_retry_after = self.max_retry_after
        return retry


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before a batch is recorded as failed (and retried next sync)."""

    attempts: int = 5
    backoff_factor: float = 0.5
    max_retry_after: float = 60.0
    timeout: float = 30.0


def make_session(policy: RetryPolicy | None = None) -> requests.Session:
    """A session that retries transient failures with back-off, for every method."""
    policy = policy or RetryPolicy()
    retry = _CappedRetry(
        total=policy.attempts,
        connect=policy.attempts,
        read=policy.attempts,
        status=policy.attempts,
        backoff_factor=policy.backoff_factor,
        status_forcelist=sorted(TRANSIENT_STATUSES),
        allowed_methods=None,
        respect_retry_after_header=True,
        # Give the last response back instead of raising: its body says what went wrong.
        raise_on_status=False,
    )
    retry.max_retry_after = policy.max_retry_after
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class VendorError(RuntimeError):
    """A request the vendor refused; ``permanent`` errors are not retried on later syncs."""

    def __init__(self, message: str, status: int | None, permanent: bool) -> None:
        super().__init__(message)
        self.status = status
        self.permanent = permanent


def check(response: requests.Response, what: str) -> requests.Response:
    """Raise a VendorError for a failed response, transient or permanent by status."""
    if response.ok:
        return response
    permanent = response.status_code not in TRANSIENT_STATUSES
    # The status and the vendor's error code only: bodies may echo a member's data.
    raise VendorError(
        f"{what}: HTTP {response.status_code} {_error_code(response)}".strip(),
        response.status_code,
        permanent,
    )


def _error_code(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("status") or error.get("code") or error.get("type") or "")
        return str(body.get("code") or body.get("title") or "")
    return ""
