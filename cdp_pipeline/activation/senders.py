"""The vendors: how one batch of members is upserted into, or removed from, each tool.

A sender turns member rows into the vendor's documented request and the vendor's answer
into per-member outcomes. It raises :class:`VendorError` when a whole request failed (after
the session's retries); the sync engine then records the batch as failed and stops.
Member-level refusals (an address in a compliance state, a dead push token) come back in
the :class:`BatchOutcome` and never stop the sync.

Errors recorded per member carry the vendor's error code, never the member's data.
"""

import hashlib
import hmac
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from cdp_pipeline.activation.config import (
    BrevoDestination,
    Destination,
    GoogleAdsDestination,
    MailchimpDestination,
    MetaDestination,
    PushDestination,
    WebhookDestination,
    secret,
)
from cdp_pipeline.activation.http import VendorError, check
from cdp_pipeline.activation.normalise import META_SCHEMA, google_identifiers, meta_hashed

Member = dict[str, Any]


@dataclass
class BatchOutcome:
    """What the vendor said about one batch; members not named were accepted."""

    failed: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    pruned_tokens: list[tuple[str, str]] = field(default_factory=list)
    invalid_entries: int = 0
    # Set when the sender had to stop part-way (push): record the outcome, then stop the sync.
    abort: VendorError | None = None


class Sender:
    """Base: a vendor that keys members by profile id and takes batches idempotently."""

    # A resent batch does no harm (upserts by key); push is the exception.
    idempotent = True
    supports_removal = True

    def __init__(self, destination: Destination, session: requests.Session, timeout: float):
        self.destination = destination
        self.session = session
        self.timeout = timeout
        self.match_rate: str | None = None

    def vendor_key(self, member: Member) -> str | None:
        """What the vendor knows the member by, as stored for a later removal.

        Here the profile id itself; vendors keyed by e-mail or hashes store JSON.
        """
        return str(member["profile_id"])

    def begin(self, action: str, total: int) -> None:
        """Called before the batches of one action (``upsert`` or ``remove``)."""

    def upsert(self, members: Sequence[Member], last: bool) -> BatchOutcome:
        raise NotImplementedError

    def remove(self, keys: Sequence[tuple[str, str]], last: bool) -> BatchOutcome:
        raise NotImplementedError

    def finish(self) -> None:
        """Called once after every batch was sent (match rates are read here)."""

    def _request(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as error:
            # Connection errors survived the session's retries: transient, try next sync.
            raise VendorError(f"{what}: {type(error).__name__}", None, False) from error
        return check(response, what)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


class WebhookSender(Sender):
    """JSON batches signed with HMAC-SHA256 over the exact body bytes."""

    destination: WebhookDestination

    def __init__(self, destination: WebhookDestination, session: requests.Session, timeout: float):
        super().__init__(destination, session, timeout)
        self._key = secret(destination.secret_env).encode("utf-8")
        self._sequence = 0

    def _post(self, action: str, members: list[Member]) -> BatchOutcome:
        self._sequence += 1
        body = json.dumps(
            {"destination": self.destination.name, "action": action, "members": members},
            separators=(",", ":"),
            default=_jsonable,
        ).encode("utf-8")
        signature = hmac.new(self._key, body, hashlib.sha256).hexdigest()
        response = self._request(
            "POST",
            self.destination.url,
            f"webhook {action}",
            data=body,
            headers={
                "Content-Type": "application/json",
                self.destination.signature_header: f"sha256={signature}",
            },
        )
        outcome = BatchOutcome()
        # The receiver may name members it could not take: {"errors": [{profile_id, ...}]}.
        try:
            answer = response.json() if response.content else {}
        except ValueError:
            answer = {}
        for error in answer.get("errors", []) if isinstance(answer, dict) else []:
            target = outcome.rejected if error.get("permanent") else outcome.failed
            target[str(error.get("profile_id"))] = str(error.get("code", "rejected"))
        return outcome

    def upsert(self, members: Sequence[Member], last: bool) -> BatchOutcome:
        fields = self.destination.send_fields
        return self._post(
            "upsert", [{name: member.get(name) for name in fields} for member in members]
        )

    def remove(self, keys: Sequence[tuple[str, str]], last: bool) -> BatchOutcome:
        return self._post("remove", [{"profile_id": profile_id} for profile_id, _ in keys])


class BrevoSender(Sender):
    """Brevo v3: ``/contacts/import`` into the list; ``/contacts/lists/{id}/contacts/remove``."""

    destination: BrevoDestination
    ATTRIBUTES = {"first_name": "FIRSTNAME", "last_name": "LASTNAME", "phone": "SMS"}

    def __init__(self, destination: BrevoDestination, session: requests.Session, timeout: float):
        super().__init__(destination, session, timeout)
        self._headers = {
            "api-key": secret(destination.api_key_env),
            "accept": "application/json",
            "content-type": "application/json",
        }
        self._base = (destination.base_url or "").rstrip("/")

    def vendor_key(self, member: Member) -> str | None:
        return json.dumps({"email": member.get("email")}) if member.get("email") else None

    def upsert(self, members: Sequence[Member], last: bool) -> BatchOutcome:
        outcome = BatchOutcome()
        rows = []
        for member in members:
            if not member.get("email"):
                outcome.rejected[member["profile_id"]] = "no_email"
                continue
            attributes = {
                attribute: _jsonable(member[name])
                for name, attribute in self.ATTRIBUTES.items()
                if name in self.destination.fields and member.get(name) is not None
            }
            rows.append({"email": member["email"], "attributes": attributes})
        if rows:
            # The import is asynchronous: Brevo answers 202 with a process id, no per-row result.
            self._request(
                "POST",
                f"{self._base}/contacts/import",
                "brevo import",
                headers=self._headers,
                json={
                    "jsonBody": rows,
                    "listIds": [self.destination.list_id],
                    "updateExistingContacts": True,
                    "emptyContactsAttributes": False,
                },
            )
        return outcome

    def remove(self, keys: Sequence[tuple[str, str]], last: bool) -> BatchOutcome:
        emails = [json.loads(key)["email"] for _, key in keys]
        # Addresses Brevo reports as not on the list are off it already: nothing to retry.
        self._request(
            "POST",
            f"{self._base}/contacts/lists/{self.destination.list_id}/contacts/remove",
            "brevo list remove",
            headers=self._headers,
            json={"emails": emails},
        )
        return BatchOutcome()


class MailchimpSender(Sender):
    """Mailchimp Marketing API 3.0: batch subscribe to the audience, then tag membership."""

    destination: MailchimpDestination
    MERGE_FIELDS = {"first_name": "FNAME", "last_name": "LNAME", "phone": "PHONE"}

    def __init__(
        self, destination: MailchimpDestination, session: requests.Session, timeout: float
    ):
        super().__init__(destination, session, timeout)
        api_key = secret(destination.api_key_env)
        # The key ends in its data centre (…-us6), which names the API host.
        data_centre = api_key.rsplit("-", 1)[-1]
        self._base = (
            destination.base_url or f"https://{data_centre}.api.mailchimp.com/3.0"
        ).rstrip("/")
        self._auth = ("cdp", api_key)

    def vendor_key(self, member: Member) -> str | None:
        email = member.get("email")
        return json.dumps({"email": email.strip().lower()}) if email else None

    def upsert(self, members: Sequence[Member], last: bool) -> BatchOutcome:
        outcome = BatchOutcome()
        by_email: dict[str, str] = {}
        rows = []
        for member in members:
            email = member.get("email")
            if not email:
                outcome.rejected[member["profile_id"]] = "no_email"
                continue
            by_email[email.strip().lower()] = member["profile_id"]
            merge_fields = {
                tag: _jsonable(member[name])
                for name, tag in self.MERGE_FIELDS.items()
                if name in self.destination.fields and member.get(name) is not None
            }
            rows.append(
                {"email_address": email, "status": "subscribed", "merge_fields": merge_fields}
            )
        if not rows:
            return outcome
        answer = self._request(
            "POST",
            f"{self._base}/lists/{self.destination.list_id}",
            "mailchimp batch subscribe",
            auth=self._auth,
            json={"members": rows, "update_existing": True},
        ).json()
        # Per-member errors (compliance state after an unsubscribe, invalid address) are
        # Mailchimp's final word on that address: recorded as rejected, not retried.
        for error in answer.get("errors", []):
            profile_id = by_email.get(str(error.get("email_address", "")).strip().lower())
            if profile_id:
                outcome.rejected[profile_id] = str(error.get("error_code") or "ERROR_GENERIC")
        accepted = [email for email, pid in by_email.items() if pid not in outcome.rejected]
        if accepted:
            tagged = self._request(
                "POST",
                f"{self._base}/lists/{self.destination.list_id}/segments/{self.destination.tag_id}",
                "mailchimp tag add",
                auth=self._auth,
                json={"members_to_add": accepted},
            ).json()
            for error in tagged.get("errors", []):
                for email in error.get("email_addresses", []):
                    profile_id = by_email.get(str(email).strip().lower())
                    if profile_id:
                        outcome.failed[profile_id] = "tag_error"
        return outcome

    def remove(self, keys: Sequence[tuple[str, str]], last: bool) -> BatchOutcome:
        # Leaving the segment takes the tag off; the subscription itself is the person's own.
        emails = [json.loads(key)["email"] for _, key in keys]
        self._request(
            "POST",
            f"{self._base}/lists/{self.destination.list_id}/segments/{self.destination.tag_id}",
            "mailchimp tag remove",
            auth=self._auth,
            json={"members_to_remove": emails},
        )
        return BatchOutcome()


class MetaSender(Sender):
    """Meta Marketing API ``/{audience_id}/users``: POST adds, DELETE removes, same schema."""

    destination: MetaDestination

    def __init__(self, destination: MetaDestination, session: requests.Session, timeout: float):
        super().__init__(destination, session, timeout)
        self._token = secret(destination.access_token_env)
        base = (destination.base_url or "").rstrip("/")
        self._url = f"{base}/{destination.api_version}/{destination.audience_id}/users"
        self._schema_fields = [name for name in destination.send_fields if name in META_SCHEMA]
        self._action = "upsert"
        self._session_id = 0
        self._batch_seq = 0
        self._total = 0

    @staticmethod
    def _new_session_id() -> int:
        return random.SystemRandom().randrange(1, 2**53)

    def vendor_key(self, member: Member) -> str | None:
        row = [
            meta_hashed(name, member.get(name), self.destination.default_region)
            for name in self._schema_fields
        ]
        if not any(row):
            return None
        return json.dumps(
            {"schema": [META_SCHEMA[name] for name in self._schema_fields], "data": row}
        )

    def begin(self, action: str, total: int) -> None:
        # One upload session per action and sync, so Meta can tell the batches belong together.
        self._action = action
        self._session_id = self._new_session_id()
        self._batch_seq = 0
        self._total = total

    def _send(self, method: str, rows: dict[tuple[str, ...], list[list[str]]], last: bool) -> int:
        invalid = 0
        # Old rows of members whose identifiers changed are deleted during the upsert
        # session: they get a one-batch session of their own, never the additions' session.
        own_session = (method == "DELETE") != (self._action == "remove")
        for schema, data in rows.items():
            if own_session:
                session_id, batch_seq, last_batch = self._new_session_id(), 1, True
            else:
                self._batch_seq += 1
                session_id, batch_seq, last_batch = self._session_id, self._batch_seq, last
            answer = self._request(
                method,
                self._url,
                f"meta {method.lower()} users",
                json={
                    "access_token": self._token,
                    "payload": {"schema": list(schema), "data": data},
                    "session": {
                        "session_id": session_id,
                        "batch_seq": batch_seq,
                        "last_batch_flag": last_batch,
                        "estimated_num_total": len(data) if own_session else self._total,
                    },
                },
            ).json()
            invalid += int(answer.get("num_invalid_entries", 0) or 0)
        return invalid

    def upsert(self, members: Sequence[Member], last: bool) -> BatchOutcome:
        outcome = BatchOutcome()
        rows: dict[tuple[str, ...], list[list[str]]] = defaultdict(list)
        for member in members:
            key = self.vendor_key(member)
            if key is None:
                outcome.rejected[member["profile_id"]] = "no_identifier"
                continue
            parsed = json.loads(key)
            rows[tuple(parsed["schema"])].append(parsed["data"])
        if rows:
            outcome.invalid_entries = self._send("POST", rows, last)
        return outcome

    def remove(self, keys: Sequence[tuple[str, str]], last: bool) -> BatchOutcome:
        rows: dict[tuple[str, ...], list[list[str]]] = defaultdict(list)
        for _, key in keys:
            parsed = json.loads(key)
            rows[tuple(parsed["schema"])].append(parsed["data"])
        outcome = BatchOutcome()
        outcome.invalid_entries = self._send("DELETE", rows, last)
        return outcome


class GoogleAdsSender(Sender):
    """Customer Match: per batch one offline user data job (create, addOperations, run).

    Additions and removals go in separate jobs, with partial failure on so one bad row does
    not sink the batch. A job runs before its members are recorded as sent, so a crash
    never leaves members recorded against a job that did not run.
    """

    destination: GoogleAdsDestination

    def __init__(
        self, destination: GoogleAdsDestination, session: requests.Session, timeout: float
    ):
        super().__init__(destination, session, timeout)
        self._headers = {
            "Authorization": f"Bearer {secret(destination.access_token_env)}",
            "developer-token": secret(destination.developer_token_env),
            "content-type": "application/json",
        }
        if destination.login_customer_id:
            self._headers["login-customer-id"] = destination.login_customer_id
        base = (destination.base_url or "").rstrip("/")
        self._api = f"{base}/{destination.api_version}"
        self._customer = f"customers/{destination.customer_id}"
        self._jobs: list[str] = []

    def vendor_key(self, member: Member) -> str | None:
        identifiers = google_identifiers(
            member.get("email") if "email" in self.destination.send_fields else None,
            member.get("phone") if "phone" in self.destination.send_fields else None,
            self.destination.default_region,
        )
        return json.dumps({"userIdentifiers": identifiers}) if identifiers else None

    def _job(self, operation: str, user_data: list[dict[str, Any]]) -> dict[int, str]:
        created = self._request(
            "POST",
            f"{self._api}/{self._customer}/offlineUserDataJobs:create",
            "google create job",
            headers=self._headers,
            json={
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "customerMatchUserListMetadata": {
                        "userList": f"{self._customer}/userLists/{self.destination.user_list_id}"
                    },
                }
            },
        ).json()
        job = created["resourceName"]
        answer = self._request(
            "POST",
            f"{self._api}/{job}:addOperations",
            "google add operations",
            headers=self._headers,
            json={
                "enablePartialFailure": True,
                "operations": [{operation: data} for data in user_data],
            },
        ).json()
        self._request(
            "POST", f"{self._api}/{job}:run", "google run job", headers=self._headers, json={}
        )
        self._jobs.append(job)
        return _google_failed_operations(answer)

    def upsert(self, members: Sequence[Member], last: bool) -> BatchOutcome:
        outcome = BatchOutcome()
        sendable = []
        for member in members:
            key = self.vendor_key(member)
            if key is None:
                outcome.rejected[member["profile_id"]] = "no_identifier"
            else:
                sendable.append((member["profile_id"], json.loads(key)))
        if sendable:
            for index, code in self._job("create", [data for _, data in sendable]).items():
                # Partial failures are row problems (bad hash format, …): not worth a retry.
                outcome.rejected[sendable[index][0]] = code
        return outcome

    def remove(self, keys: Sequence[tuple[str, str]], last: bool) -> BatchOutcome:
        outcome = BatchOutcome()
        failures = self._job("remove", [json.loads(key) for _, key in keys])
        for index, code in failures.items():
            outcome.failed[keys[index][0]] = code
        return outcome

    def finish(self) -> None:
        # The match rate range of the last job, if Google has processed it already.
        if not self._jobs:
            return
        query = (
            "SELECT offline_user_data_job.status,"
            " offline_user_data_job.operation_metadata.match_rate_range"
            " FROM offline_user_data_job"
            f" WHERE offline_user_data_job.resource_name = '{self._jobs[-1]}'"
        )
        try:
            answer = self._request(
                "POST",
                f"{self._api}/{self._customer}/googleAds:search",
                "google job status",
                headers=self._headers,
                json={"query": query},
            ).json()
        except VendorError:
            return
        for result in answer.get("results", []):
            metadata = result.get("offlineUserDataJob", {}).get("operationMetadata", {})
            self.match_rate = metadata.get("matchRateRange") or self.match_rate


def _google_failed_operations(answer: dict[str, Any]) -> dict[int, str]:
    """Operation index → error code, from a partial-failure response."""
    failed: dict[int, str] = {}
    for detail in (answer.get("partialFailureError") or {}).get("details", []):
        for error in detail.get("errors", []):
            code = ",".join(f"{k}:{v}" for k, v in (error.get("errorCode") or {}).items())
            for element in (error.get("location") or {}).get("fieldPathElements", []):
                if element.get("fieldName") == "operations" and "index" in element:
                    failed[int(element["index"])] = code or "partial_failure"
                    break
    return failed


class PushSender(Sender):
    """FCM HTTP v1 ``messages:send``, one request per device token.

    A token FCM calls UNREGISTERED (or an INVALID_ARGUMENT that names the token) is
    pruned; nothing else is — not the member, not their other devices.
    """

    destination: PushDestination
    # A push cannot be taken back or deduplicated by FCM: a resent batch would notify twice.
    idempotent = False
    supports_removal = False

    def __init__(self, destination: PushDestination, session: requests.Session, timeout: float):
        super().__init__(destination, session, timeout)
        self._headers = {"Authorization": f"Bearer {secret(destination.access_token_env)}"}
        base = (destination.base_url or "").rstrip("/")
        self._url = f"{base}/v1/projects/{destination.project_id}/messages:send"

    def vendor_key(self, member: Member) -> str | None:
        return None

    def _send_one(self, token: str) -> tuple[str, str | None]:
        """("sent" | "pruned" | "failed" | "rejected", error code)."""
        message: dict[str, Any] = {
            "token": token,
            "notification": {"title": self.destination.title, "body": self.destination.body},
        }
        if self.destination.data:
            message["data"] = dict(self.destination.data)
        try:
            response = self.session.request(
                "POST",
                self._url,
                json={"message": message},
                headers=self._headers,
                timeout=self.timeout,
            )
        except requests.RequestException as error:
            return "failed", type(error).__name__
        if response.ok:
            return "sent", None
        code = _fcm_error_code(response)
        if code == "UNREGISTERED" or (code == "INVALID_ARGUMENT" and _names_token(response)):
            return "pruned", code
        if response.status_code in {401, 403} and code not in {"SENDER_ID_MISMATCH"}:
            # Our credentials, not the token: every further request would fail the same way.
            raise VendorError(f"fcm send: HTTP {response.status_code} {code}", 401, True)
        if response.status_code == 429 or response.status_code >= 500:
            return "failed", code or f"HTTP {response.status_code}"
        return "rejected", code or f"HTTP {response.status_code}"

    def upsert(self, members: Sequence[Member], last: bool) -> BatchOutcome:
        outcome = BatchOutcome()
        for position, member in enumerate(members):
            results = []
            try:
                for token in member.get("_tokens") or []:
                    status, code = self._send_one(token)
                    results.append((status, code))
                    if status == "pruned":
                        outcome.pruned_tokens.append((token, code or "pruned"))
            except VendorError as error:
                # Our credentials failed: members already notified stay sent, the rest wait.
                # (A device of this member may have been reached before the failure; FCM
                # cannot tell, and one repeat beats silently dropping the member.)
                for waiting in members[position:]:
                    outcome.failed[waiting["profile_id"]] = str(error)
                outcome.abort = error
                return outcome
            statuses = {status for status, _ in results}
            codes = sorted({code for _, code in results if code})
            if "sent" in statuses:
                continue
            if "failed" in statuses:
                # Nobody's device got it: safe to try again next sync.
                outcome.failed[member["profile_id"]] = ",".join(codes)
            else:
                outcome.rejected[member["profile_id"]] = ",".join(codes) or "no_token"
        return outcome


def _fcm_error_code(response: requests.Response) -> str:
    try:
        error = response.json().get("error", {})
    except (ValueError, AttributeError):
        return ""
    for detail in error.get("details", []):
        if detail.get("@type", "").endswith("FcmError") and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(error.get("status", ""))


def _names_token(response: requests.Response) -> bool:
    try:
        details = response.json().get("error", {}).get("details", [])
    except (ValueError, AttributeError):
        return False
    return any(
        violation.get("field") == "message.token"
        for detail in details
        for violation in detail.get("fieldViolations", [])
    )


SENDERS: dict[str, type[Sender]] = {
    "webhook": WebhookSender,
    "brevo": BrevoSender,
    "mailchimp": MailchimpSender,
    "meta_custom_audience": MetaSender,
    "google_customer_match": GoogleAdsSender,
    "fcm_push": PushSender,
}


def make_sender(destination: Destination, session: requests.Session, timeout: float) -> Sender:
    """The sender of an API destination (file destinations are written by the engine)."""
    try:
        sender_class = SENDERS[destination.type]
    except KeyError as error:
        raise ValueError(f"no sender for destination type {destination.type!r}") from error
    return sender_class(destination, session, timeout)
