"""The profile API: read-only look-ups on the current serving snapshot, per API key scope.

Started by ``cdp api`` (:func:`serve`); :func:`create_app` builds the ASGI app for tests and
other servers. The OpenAPI description is generated from this code at ``/openapi.json``.

The look-up routes declare their response models (for the OpenAPI description) but return
the pre-rendered JSON of :mod:`cdp_pipeline.api.lookup` as a plain ``Response``, which FastAPI
sends without validating or serialising it again.

Single look-ups that succeed skip FastAPI altogether (:class:`_FastLookup`): measured on a
1M-profile store, FastAPI's parameter and dependency solving took about 0.4 ms of CPU per
request and the look-up itself 0.02 ms. The fast path answers only a request it can answer
exactly as the route would (a valid key with the scopes asked for, a well-formed identifier;
found or 404); anything else (an auth or validation error, an odd header or query string)
goes on to the FastAPI route, which stays the one definition of behaviour and of the OpenAPI
document. A test compares both paths' answers.
"""

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cdp_pipeline.api.keys import SCOPES, ApiKey, KeyStore, default_keys_path
from cdp_pipeline.api.lookup import batch_body, find_card, find_cards, log_token, profile_body
from cdp_pipeline.api.models import (
    MAX_VALUE_LENGTH,
    VALUE_PATTERN,
    BatchRequest,
    BatchResponse,
    ErrorBody,
    Health,
    IdentifierKind,
    ProfileResponse,
    normalise_value,
)
from cdp_pipeline.api.snapshots import SnapshotReader, SnapshotUnavailable
from cdp_pipeline.publish.snapshot import snapshots_dir
from cdp_pipeline.settings import Settings, get_settings

logger = logging.getLogger("cdp_pipeline.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

# Unknown and erased identifiers get this very body: nothing tells them apart.
NOT_FOUND_DETAIL = "No profile for this identifier"
_JSON = "application/json"

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The API key, as an alternative header"
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No API key, or not a valid one"},
    403: {"model": ErrorBody, "description": "The key lacks a scope the request asks for"},
    503: {"model": ErrorBody, "description": "No serving snapshot published yet"},
}


def create_app(
    settings: Settings | None = None,
    keys_path: Path | None = None,
    snapshot_dir: Path | None = None,
    check_interval_s: float = 1.0,
    fast_path: bool = True,
) -> FastAPI:
    """The profile API reading the snapshots of ``settings`` with the keys of ``keys_path``.

    ``check_interval_s`` is how often the snapshot pointer and the key file are looked at.
    ``fast_path=False`` sends every request through FastAPI (tests compare the two).
    """
    resolved = settings or get_settings()
    reader = SnapshotReader(snapshot_dir or snapshots_dir(resolved), check_interval_s)
    keys = KeyStore(keys_path or default_keys_path(resolved), check_interval_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        reader.close()

    app = FastAPI(
        title="CDP profile API",
        version="1",
        summary="What the platform knows about a visitor, for the city's website and app.",
        description=(
            "Look up a profile by any identifier a touchpoint holds. Each API key has scopes "
            f"({', '.join(SCOPES)}); a response carries only the parts its key may read. "
            "Unknown and erased identifiers answer the same 404."
        ),
        lifespan=lifespan,
    )
    app.state.reader = reader
    app.state.keys = keys
    if fast_path:
        app.add_middleware(_FastLookup, reader=reader, keys=keys)
    # Added last, so it runs first: it logs the fast path's answers too.
    app.add_middleware(_RequestLog)

    # async, like every route that does no I/O worth a thread: FastAPI runs a plain def in
    # its thread pool, and the hop costs more than the key check itself.
    async def authenticate(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> ApiKey:
        presented = bearer.credentials if bearer else header_key
        if not presented:
            raise HTTPException(
                status_code=401,
                detail="Missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = keys.verify(presented)
        if key is None:
            raise HTTPException(
                status_code=401,
                detail="Invalid or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.state.key_id = key.key_id
        return key

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def health() -> Health:
        """Whether a snapshot is being served (no key needed, no data returned)."""
        reader.refresh()
        name = reader.current_name
        return Health(status="ok" if name else "no_snapshot", snapshot=name)

    @app.get(
        "/v1/profiles/{kind}/{value}",
        response_model=ProfileResponse,
        response_model_exclude_unset=True,
        responses={**_ERRORS, 404: {"model": ErrorBody, "description": NOT_FOUND_DETAIL}},
        tags=["profiles"],
    )
    async def get_profile(
        request: Request,
        kind: IdentifierKind,
        value: Annotated[
            str,
            PathParam(
                min_length=1,
                max_length=MAX_VALUE_LENGTH,
                pattern=VALUE_PATTERN,
                description="The identifier; for email_sha256 the hex SHA-256 of the e-mail "
                "address trimmed and lower-cased",
            ),
        ],
        key: Annotated[ApiKey, Depends(authenticate)],
        fields: Annotated[
            str | None,
            Query(
                max_length=200,
                description="Comma-separated parts to return (segments, traits, scores, "
                "consents, contact); default: every part the key may read",
            ),
        ] = None,
    ) -> Response:
        """One profile by one identifier."""
        parts = _parts(key, _split_fields(fields), location=("query", "fields"))
        try:
            normalised = normalise_value(kind, value)
        except ValueError as error:
            raise _validation_error(("path", "value"), str(error)) from error
        request.state.lookup = log_token(kind, normalised)
        # Run on the event loop, not in a thread: a look-up is two B-tree descents in a
        # memory-mapped file (tens of microseconds), less than a thread hand-off costs.
        with _RequestSnapshot(reader) as snapshot:
            card = find_card(snapshot, kind, normalised)
            if card is None:
                raise HTTPException(status_code=404, detail=NOT_FOUND_DETAIL)
            return Response(profile_body(snapshot.name, card, parts), media_type=_JSON)

    @app.post(
        "/v1/profiles/batch",
        response_model=BatchResponse,
        response_model_exclude_unset=True,
        responses=_ERRORS,
        tags=["profiles"],
    )
    def get_profiles(
        request: Request, body: BatchRequest, key: Annotated[ApiKey, Depends(authenticate)]
    ) -> Response:
        """Up to 500 identifiers in one call; each answers found or not, in request order."""
        # A plain def: 500 look-ups take a few milliseconds, which the thread pool keeps off
        # the event loop so single look-ups are not held up behind a batch.
        parts = _parts(key, body.fields, location=("body", "fields"))
        wanted = [(item.kind, item.value) for item in body.identifiers]
        request.state.lookup = f"batch:{len(wanted)}"
        with _RequestSnapshot(reader) as snapshot:
            cards = find_cards(snapshot, wanted)
            return Response(batch_body(snapshot.name, wanted, cards, parts), media_type=_JSON)

    return app


# Applied by uvicorn in every worker process (a worker is a fresh interpreter).
_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(process)d] %(name)s %(message)s"}
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"level": "INFO", "handlers": ["stderr"]},
}


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API with uvicorn until interrupted, in ``workers`` processes.

    uvicorn picks uvloop and httptools when they are installed (both are in the lock). Each
    worker opens the look-up store itself and follows CURRENT on its own; they share the OS
    page cache of the memory-mapped file, so a second worker costs little memory.
    """
    import uvicorn

    # uvicorn's access log prints the full path, which holds the identifier; our own request
    # log says which kind was looked up and a hash prefix only.
    uvicorn.run(
        "cdp_pipeline.api.server:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_config=_LOG_CONFIG,
    )


_LOOKUP_PREFIX = "/v1/profiles/"
_LOOKUP_ROUTE = "/v1/profiles/{kind}/{value}"
_KINDS = {kind.value: kind for kind in IdentifierKind}
_MAX_FIELDS_LENGTH = 200
# What FastAPI's HTTPException handler sends for the route's 404 (a test compares them).
_NOT_FOUND_BODY = b'{"detail":"' + NOT_FOUND_DETAIL.encode() + b'"}'


class _FastLookup:
    """Answers a successful single look-up without FastAPI's per-request machinery.

    Every check mirrors the ``get_profile`` route; when one does not pass, or the request
    has anything the route would parse differently, the request goes to the route.
    """

    def __init__(
        self, app: Callable[..., Awaitable[None]], reader: SnapshotReader, keys: KeyStore
    ) -> None:
        self._app = app
        self._reader = reader
        self._keys = keys

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = self._answer(scope)
            if answer is not None:
                status, body = answer
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [
                            (b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self._app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[int, bytes] | None:
        path: str = scope["path"]
        if not path.startswith(_LOOKUP_PREFIX):
            return None
        kind_text, slash, value = path[len(_LOOKUP_PREFIX) :].partition("/")
        kind = _KINDS.get(kind_text)
        if kind is None or not slash:
            return None
        try:
            normalised = normalise_value(kind, value)
        except ValueError:
            return None
        requested = self._fields(scope["query_string"])
        if requested is False:
            return None
        presented = self._presented_key(scope["headers"])
        key = self._keys.verify(presented) if presented else None
        if key is None:
            return None
        if requested is None:
            parts = key.scopes
        elif set(requested) <= key.scopes:
            parts = frozenset(requested)
        else:
            return None
        try:
            with self._reader.use() as snapshot:
                card = find_card(snapshot, kind, normalised)
                answer = (
                    (200, profile_body(snapshot.name, card, parts))
                    if card is not None
                    else (404, _NOT_FOUND_BODY)
                )
        except SnapshotUnavailable:
            return None
        state = scope.setdefault("state", {})
        state["key_id"] = key.key_id
        state["lookup"] = log_token(kind, normalised)
        state["route_path"] = _LOOKUP_ROUTE
        return answer

    @staticmethod
    def _fields(query: bytes) -> list[str] | None | bool:
        """The parts asked for; None for all; False when the route should parse the query."""
        if not query:
            return None
        if not query.startswith(b"fields=") or len(query) > 7 + _MAX_FIELDS_LENGTH:
            return False
        text = query[7:]
        # Anything URL-encoded, or a second parameter, is left to the route's parser.
        if any(character in text for character in b"&%+;"):
            return False
        return _split_fields(text.decode("ascii", errors="replace"))

    @staticmethod
    def _presented_key(headers: list[tuple[bytes, bytes]]) -> str | None:
        """The key as the route's Bearer/X-API-Key dependencies would read it, or None."""
        authorization = api_key = None
        for name, value in headers:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"x-api-key" and api_key is None:
                api_key = value.decode("latin-1")
        if authorization is not None:
            scheme, _, credentials = authorization.partition(" ")
            credentials = credentials.strip()
            if scheme.lower() == "bearer" and credentials:
                return credentials
            # Another scheme: the route falls back to X-API-Key; so may we, but rarely used.
        return api_key or None


def _split_fields(fields: str | None) -> list[str] | None:
    if fields is None:
        return None
    return [part.strip() for part in fields.split(",") if part.strip()]


def _parts(key: ApiKey, requested: list[str] | None, location: tuple[str, str]) -> frozenset[str]:
    """The parts to return: those asked for (default all the key may read), all granted."""
    if requested is None:
        return key.scopes
    unknown = sorted(set(requested) - set(SCOPES))
    if unknown:
        raise _validation_error(location, f"Unknown part(s) {unknown}; choose from {list(SCOPES)}")
    missing = sorted(set(requested) - key.scopes)
    if missing:
        raise HTTPException(
            status_code=403, detail=f"This API key has no scope for {', '.join(missing)}"
        )
    return frozenset(requested)


def _validation_error(location: tuple[str, str], message: str) -> RequestValidationError:
    # Same shape as FastAPI's own 422s, so clients handle one error format.
    return RequestValidationError([{"type": "value_error", "loc": location, "msg": message}])


class _RequestSnapshot:
    """The current snapshot for one request, or a 503 when none has been published."""

    def __init__(self, reader: SnapshotReader) -> None:
        self._context = reader.use()

    def __enter__(self) -> Any:
        try:
            return self._context.__enter__()
        except SnapshotUnavailable as error:
            raise HTTPException(status_code=503, detail=str(error)) from error

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)


class _RequestLog:
    """One log line per request: route template, status, time, key id, kind and hash prefix.

    The path itself is never logged because it contains the identifier.
    """

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self._app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_with_status)
        finally:
            state = scope.get("state") or {}
            route = getattr(scope.get("route"), "path", None) or state.get("route_path", "-")
            logger.info(
                "%s %s %d %.1fms key=%s id=%s",
                scope["method"],
                route,
                status,
                (time.perf_counter() - started) * 1000,
                state.get("key_id", "-"),
                state.get("lookup", "-"),
            )
