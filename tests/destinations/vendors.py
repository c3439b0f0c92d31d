"""Mock vendors enforcing each API's documented endpoint, authentication, payload and limits.

Sources of the contracts (as documented by the vendors):
- Brevo API v3: ``POST /v3/contacts/import`` (``api-key`` header, ``jsonBody`` or
  ``fileBody``, ``listIds``; 202 with ``processId``), ``POST
  /v3/contacts/lists/{listId}/contacts/remove`` (``emails``, at most 150; 201).
- Mailchimp Marketing API 3.0: HTTP basic auth with the API key as password; ``POST
  /3.0/lists/{list_id}`` batch subscribe (``members``, at most 500, ``update_existing``);
  ``POST /3.0/lists/{list_id}/segments/{segment_id}`` (``members_to_add`` /
  ``members_to_remove``, at most 500 each) for static segments (tags).
- Meta Marketing API: ``POST`` / ``DELETE /{version}/{audience_id}/users`` with
  ``payload.schema`` and ``payload.data`` (SHA-256 lower-case hex, at most 10 000 rows),
  ``session`` (``session_id``, ``batch_seq``, ``last_batch_flag``), ``access_token``.
- Google Ads API REST: ``offlineUserDataJobs:create`` (type CUSTOMER_MATCH_USER_LIST),
  ``{job}:addOperations`` (``enablePartialFailure``, ``operations`` of ``create`` or
  ``remove`` user data, at most 100 000 per request), ``{job}:run``; headers
  ``Authorization: Bearer``, ``developer-token``; ``googleAds:search`` for job status.
- FCM HTTP v1: ``POST /v1/projects/{project}/messages:send`` with ``Authorization:
  Bearer``, one ``message`` with one ``token``; data values are strings; 404 UNREGISTERED
  and 400 INVALID_ARGUMENT for dead or malformed tokens.
"""

import base64
import hashlib
import hmac
import re
from collections import Counter
from typing import Any

from destinations.server import Answer, ContractViolation, MockVendor, Request, require

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class WebhookVendor(MockVendor):
    def __init__(self, secret: str, max_batch: int = 10_000) -> None:
        super().__init__()
        self.secret = secret.encode()
        self.max_batch = max_batch
        self.upserts: Counter[str] = Counter()
        self.removes: Counter[str] = Counter()
        self.reject: set[str] = set()  # profile ids answered with a permanent error

    def route(self, request: Request) -> Answer:
        require(request.method == "POST" and request.path == "/hooks/cdp", "unknown endpoint")
        require(request.headers.get("content-type") == "application/json", "not JSON")
        expected = "sha256=" + hmac.new(self.secret, request.body, hashlib.sha256).hexdigest()
        signature = request.headers.get("x-cdp-signature", "")
        require(hmac.compare_digest(signature, expected), "bad signature", 401)
        body = request.json()
        require(body.get("action") in {"upsert", "remove"}, "bad action")
        members = body.get("members")
        require(isinstance(members, list) and 0 < len(members) <= self.max_batch, "batch size")
        errors = []
        for member in members:
            profile_id = member["profile_id"]
            if profile_id in self.reject:
                errors.append({"profile_id": profile_id, "code": "opted_out", "permanent": True})
            elif body["action"] == "upsert":
                self.upserts[profile_id] += 1
            else:
                self.removes[profile_id] += 1
        return Answer(200, {"errors": errors})


class BrevoVendor(MockVendor):
    MAX_BODY = 8 * 1024 * 1024

    def __init__(self, api_key: str, list_id: int) -> None:
        super().__init__()
        self.api_key = api_key
        self.list_id = list_id
        self.contacts: dict[str, dict[str, Any]] = {}
        self.list_members: set[str] = set()
        self.imports = 0

    def route(self, request: Request) -> Answer:
        require(request.headers.get("api-key") == self.api_key, "unauthorized", 401)
        require(request.method == "POST", "method")
        body = request.json()
        if request.path == "/v3/contacts/import":
            require(len(request.body) <= self.MAX_BODY, "jsonBody over 8 MB")
            rows = body.get("jsonBody")
            require(isinstance(rows, list) and rows, "jsonBody required")
            require(body.get("listIds") == [self.list_id], "listIds")
            require(isinstance(body.get("updateExistingContacts"), bool), "updateExistingContacts")
            for row in rows:
                require(isinstance(row.get("email"), str) and "@" in row["email"], "email")
                attributes = row.get("attributes", {})
                require(set(attributes) <= {"FIRSTNAME", "LASTNAME", "SMS"}, "unknown attribute")
                self.contacts[row["email"]] = attributes
                self.list_members.add(row["email"])
            self.imports += 1
            return Answer(202, {"processId": self.imports})
        if request.path == f"/v3/contacts/lists/{self.list_id}/contacts/remove":
            emails = body.get("emails")
            require(isinstance(emails, list) and 0 < len(emails) <= 150, "emails: 1 to 150")
            success = [email for email in emails if email in self.list_members]
            self.list_members -= set(success)
            failure = [email for email in emails if email not in success]
            return Answer(201, {"contacts": {"success": success, "failure": failure}})
        raise ContractViolation("unknown endpoint", 404)


class MailchimpVendor(MockVendor):
    STATUSES = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}

    def __init__(self, api_key: str, list_id: str, tag_id: int) -> None:
        super().__init__()
        self.api_key = api_key
        self.list_id = list_id
        self.tag_id = tag_id
        self.members: dict[str, dict[str, Any]] = {}
        self.tagged: set[str] = set()
        self.compliance_state: set[str] = set()  # unsubscribed at Mailchimp: cannot be re-added

    def route(self, request: Request) -> Answer:
        auth = request.headers.get("authorization", "")
        require(auth.startswith("Basic "), "basic auth required", 401)
        _, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        require(password == self.api_key, "bad API key", 401)
        require(request.method == "POST", "method")
        body = request.json()
        if request.path == f"/3.0/lists/{self.list_id}":
            members = body.get("members")
            require(isinstance(members, list) and 0 < len(members) <= 500, "members: 1 to 500")
            new, updated, errors = [], [], []
            for member in members:
                email = member.get("email_address", "")
                require("@" in email, "email_address")
                require(member.get("status") in self.STATUSES, "status")
                key = email.lower()
                if key in self.compliance_state:
                    errors.append(
                        {
                            "email_address": email,
                            "error": f"{email} is in a compliance state",
                            "error_code": "ERROR_GENERIC",
                        }
                    )
                    continue
                (updated if key in self.members else new).append({"email_address": email})
                self.members[key] = member
            return Answer(
                200,
                {
                    "new_members": new,
                    "updated_members": updated,
                    "errors": errors,
                    "total_created": len(new),
                    "total_updated": len(updated),
                    "error_count": len(errors),
                },
            )
        if request.path == f"/3.0/lists/{self.list_id}/segments/{self.tag_id}":
            to_add = body.get("members_to_add", [])
            to_remove = body.get("members_to_remove", [])
            require(len(to_add) <= 500 and len(to_remove) <= 500, "at most 500 per list")
            require(bool(to_add) or bool(to_remove), "nothing to do")
            errors = []
            for email in to_add:
                if email.lower() not in self.members:
                    errors.append({"email_addresses": [email], "error": "not a list member"})
                else:
                    self.tagged.add(email.lower())
            for email in to_remove:
                self.tagged.discard(email.lower())
            return Answer(
                200,
                {
                    "members_added": [],
                    "members_removed": [],
                    "errors": errors,
                    "total_added": len(to_add) - len(errors),
                    "total_removed": len(to_remove),
                    "error_count": len(errors),
                },
            )
        raise ContractViolation("unknown endpoint", 404)


class MetaVendor(MockVendor):
    SCHEMA_KEYS = {"EMAIL", "PHONE", "FN", "LN", "ZIP", "CT", "ST", "COUNTRY", "DOBY", "GEN"}
    MAX_ROWS = 10_000

    def __init__(self, token: str, audience_id: str, version: str = "v21.0") -> None:
        super().__init__()
        self.token = token
        self.path = f"/{version}/{audience_id}/users"
        self.audience: set[tuple[str, ...]] = set()
        self.sessions: dict[int, list[tuple[int, bool]]] = {}

    def route(self, request: Request) -> Answer:
        require(request.path == self.path, "unknown endpoint", 404)
        require(request.method in {"POST", "DELETE"}, "method")
        body = request.json()
        require(body.get("access_token") == self.token, "invalid OAuth access token", 401)
        payload = body.get("payload", {})
        schema = payload.get("schema")
        require(isinstance(schema, list) and schema, "schema")
        require(set(schema) <= self.SCHEMA_KEYS and len(set(schema)) == len(schema), "schema")
        data = payload.get("data")
        require(isinstance(data, list) and 0 < len(data) <= self.MAX_ROWS, "1 to 10000 rows")
        for row in data:
            require(isinstance(row, list) and len(row) == len(schema), "row width != schema")
            require(all(v == "" or SHA256_HEX.match(v) for v in row), "not SHA-256 hex")
            require(any(row), "empty row")
        session = body.get("session", {})
        require(isinstance(session.get("session_id"), int), "session_id")
        require(isinstance(session.get("batch_seq"), int), "batch_seq")
        require(isinstance(session.get("last_batch_flag"), bool), "last_batch_flag")
        self.sessions.setdefault(session["session_id"], []).append(
            (session["batch_seq"], session["last_batch_flag"])
        )
        rows = {tuple(zip(schema, row, strict=True)) for row in data}
        for row in rows:
            key = tuple(value for _, value in row)
            if request.method == "POST":
                self.audience.add(key)
            else:
                self.audience.discard(key)
        return Answer(
            200,
            {
                "audience_id": self.path.split("/")[2],
                "session_id": session["session_id"],
                "num_received": len(data),
                "num_invalid_entries": 0,
                "invalid_entry_samples": {},
            },
        )


class GoogleAdsVendor(MockVendor):
    MAX_OPERATIONS = 100_000

    def __init__(
        self, developer_token: str, access_token: str, customer_id: str, user_list_id: str
    ) -> None:
        super().__init__()
        self.developer_token = developer_token
        self.access_token = access_token
        self.customer = f"customers/{customer_id}"
        self.user_list = f"{self.customer}/userLists/{user_list_id}"
        self.jobs: dict[str, dict[str, Any]] = {}
        self.members: set[tuple[tuple[str, str], ...]] = set()
        self.bad_identifiers: set[str] = set()  # hashes answered with a partial failure

    def route(self, request: Request) -> Answer:
        require(
            request.headers.get("authorization") == f"Bearer {self.access_token}",
            "UNAUTHENTICATED",
            401,
        )
        require(
            request.headers.get("developer-token") == self.developer_token,
            "DEVELOPER_TOKEN_INVALID",
            401,
        )
        require(request.method == "POST", "method")
        body = request.json()
        prefix = f"/v21/{self.customer}"
        if request.path == f"{prefix}/offlineUserDataJobs:create":
            job = body.get("job", {})
            require(job.get("type") == "CUSTOMER_MATCH_USER_LIST", "job type")
            require(
                job.get("customerMatchUserListMetadata", {}).get("userList") == self.user_list,
                "userList",
            )
            name = f"{self.customer}/offlineUserDataJobs/{len(self.jobs) + 1}"
            self.jobs[name] = {"operations": [], "kind": None, "status": "PENDING"}
            return Answer(200, {"resourceName": name})
        if request.path == f"{prefix}/googleAds:search":
            require("offline_user_data_job" in body.get("query", ""), "query")
            results = [
                {
                    "offlineUserDataJob": {
                        "resourceName": name,
                        "status": job["status"],
                        "operationMetadata": {"matchRateRange": "MATCH_RANGE_51_TO_60"},
                    }
                }
                for name, job in self.jobs.items()
                if name in body["query"]
            ]
            return Answer(200, {"results": results})
        match = re.fullmatch(rf"/v21/({self.customer}/offlineUserDataJobs/\d+):(\w+)", request.path)
        require(match is not None, "unknown endpoint", 404)
        assert match is not None
        name, verb = match.groups()
        require(name in self.jobs, "job not found", 404)
        job = self.jobs[name]
        if verb == "addOperations":
            require(job["status"] == "PENDING", "job already running")
            require(body.get("enablePartialFailure") is True, "partial failure must be on")
            operations = body.get("operations")
            require(isinstance(operations, list) and operations, "operations")
            require(len(operations) <= self.MAX_OPERATIONS, "too many operations")
            errors = []
            for index, operation in enumerate(operations):
                require(len(operation) == 1 and set(operation) <= {"create", "remove"}, "op")
                kind = next(iter(operation))
                # Additions and removals travel in separate jobs.
                require(job["kind"] in {None, kind}, "create and remove mixed in one job")
                job["kind"] = kind
                identifiers = operation[kind].get("userIdentifiers")
                require(isinstance(identifiers, list) and 0 < len(identifiers) <= 20, "ids")
                for identifier in identifiers:
                    require(len(identifier) == 1, "one identifier per entry")
                    ((field, value),) = identifier.items()
                    require(field in {"hashedEmail", "hashedPhoneNumber"}, "identifier type")
                    require(bool(SHA256_HEX.match(value)), "not SHA-256 hex")
                if any(next(iter(i.values())) in self.bad_identifiers for i in identifiers):
                    errors.append(
                        {
                            "errorCode": {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
                            "message": "rejected",
                            "location": {
                                "fieldPathElements": [{"fieldName": "operations", "index": index}]
                            },
                        }
                    )
                else:
                    job["operations"].append((kind, identifiers))
            answer: dict[str, Any] = {}
            if errors:
                answer["partialFailureError"] = {
                    "code": 3,
                    "message": "partial failure",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.ads.googleads.v21.errors"
                            ".GoogleAdsFailure",
                            "errors": errors,
                        }
                    ],
                }
            return Answer(200, answer)
        if verb == "run":
            require(job["status"] == "PENDING", "job already running")
            for kind, identifiers in job["operations"]:
                key = tuple(sorted(next(iter(i.items())) for i in identifiers))
                if kind == "create":
                    self.members.add(key)
                else:
                    self.members.discard(key)
            job["status"] = "SUCCESS"
            return Answer(200, {"name": f"{self.customer}/operations/{len(self.jobs)}"})
        raise ContractViolation("unknown verb", 404)


class FcmVendor(MockVendor):
    def __init__(self, token: str, project_id: str) -> None:
        super().__init__()
        self.token = token
        self.path = f"/v1/projects/{project_id}/messages:send"
        self.delivered: Counter[str] = Counter()
        self.unregistered: set[str] = set()
        self.invalid: set[str] = set()
        self.revoke_after: int | None = None  # the access token expires after n messages

    def route(self, request: Request) -> Answer:
        require(request.method == "POST" and request.path == self.path, "endpoint", 404)
        require(request.headers.get("authorization") == f"Bearer {self.token}", "auth", 401)
        if self.revoke_after is not None and sum(self.delivered.values()) >= self.revoke_after:
            return Answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        message = request.json().get("message", {})
        token = message.get("token")
        require(isinstance(token, str) and token, "message.token")
        require(not {"topic", "condition"} & set(message), "one target only")
        notification = message.get("notification", {})
        require(all(isinstance(v, str) for v in notification.values()), "notification")
        require(all(isinstance(v, str) for v in message.get("data", {}).values()), "data")
        fcm_error = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
        if token in self.unregistered:
            return Answer(
                404,
                {
                    "error": {
                        "code": 404,
                        "status": "NOT_FOUND",
                        "message": "Requested entity was not found.",
                        "details": [{"@type": fcm_error, "errorCode": "UNREGISTERED"}],
                    }
                },
            )
        if token in self.invalid:
            return Answer(
                400,
                {
                    "error": {
                        "code": 400,
                        "status": "INVALID_ARGUMENT",
                        "message": "The registration token is not a valid FCM registration token",
                        "details": [
                            {"@type": fcm_error, "errorCode": "INVALID_ARGUMENT"},
                            {
                                "@type": "type.googleapis.com/google.rpc.BadRequest",
                                "fieldViolations": [
                                    {"field": "message.token", "description": "Invalid token"}
                                ],
                            },
                        ],
                    }
                },
            )
        self.delivered[token] += 1
        return Answer(200, {"name": f"projects/p/messages/{sum(self.delivered.values())}"})
