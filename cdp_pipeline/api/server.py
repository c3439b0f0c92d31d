"""The profile API: read-only look-ups on the current serving snapshot, per API key scope.

Started by ``cdp api`` (:func:`serve`); :func:`create_app` builds the ASGI app for tests and
other servers. The OpenAPI description is generated from this code at ``/openapi.json``.
"""

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from cdp_pipeline.api.keys import SCOPES, ApiKey, KeyStore, default_keys_path
from cdp_pipeline.api.lookup import find_card, find_cards, log_token, render
from cdp_pipeline.api.models import (
    MAX_VALUE_LENGTH,
    VALUE_PATTERN,
    BatchRequest,
    BatchResponse,
    BatchResult,
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

# Unknown and erased identifiers get this very body: nothing tells them apart.
NOT_FOUND_DETAIL = "No profile for this identifier"

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
) -> FastAPI:
    """The profile API reading the snapshots of ``settings`` with the keys of ``keys_path``.

    ``check_interval_s`` is how often the snapshot pointer and the key file are looked at.
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
    app.add_middleware(_RequestLog)

    def authenticate(
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
    def health() -> Health:
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
    def get_profile(
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
    ) -> ProfileResponse:
        """One profile by one identifier."""
        parts = _parts(key, _split_fields(fields), location=("query", "fields"))
        try:
            normalised = normalise_value(kind, value)
        except ValueError as error:
            raise _validation_error(("path", "value"), str(error)) from error
        request.state.lookup = log_token(kind, normalised)
        with _RequestSnapshot(reader) as snapshot:
            card = find_card(snapshot, kind, normalised)
            if card is None:
                raise HTTPException(status_code=404, detail=NOT_FOUND_DETAIL)
            return ProfileResponse(snapshot=snapshot.name, profile=render(card, parts))

    @app.post(
        "/v1/profiles/batch",
        response_model=BatchResponse,
        response_model_exclude_unset=True,
        responses=_ERRORS,
        tags=["profiles"],
    )
    def get_profiles(
        request: Request, body: BatchRequest, key: Annotated[ApiKey, Depends(authenticate)]
    ) -> BatchResponse:
        """Up to 500 identifiers in one call; each answers found or not, in request order."""
        parts = _parts(key, body.fields, location=("body", "fields"))
        wanted = [(item.kind, item.value) for item in body.identifiers]
        request.state.lookup = f"batch:{len(wanted)}"
        with _RequestSnapshot(reader) as snapshot:
            cards = find_cards(snapshot, wanted)
            results = []
            for kind, value in wanted:
                card = cards.get(f"{kind.value}:{value}")
                results.append(
                    BatchResult(
                        kind=kind,
                        value=value,
                        found=card is not None,
                        profile=render(card, parts) if card is not None else None,
                    )
                )
            return BatchResponse(snapshot=snapshot.name, results=results)

    return app


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the API with uvicorn until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # uvicorn's access log prints the full path, which holds the identifier; our own request
    # log says which kind was looked up and a hash prefix only.
    uvicorn.run(create_app(), host=host, port=port, access_log=False, log_config=None)


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


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


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
            route = getattr(scope.get("route"), "path", "-")
            state = scope.get("state") or {}
            logger.info(
                "%s %s %d %.1fms key=%s id=%s",
                scope["method"],
                route,
                status,
                (time.perf_counter() - started) * 1000,
                state.get("key_id", "-"),
                state.get("lookup", "-"),
            )
