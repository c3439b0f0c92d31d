"""The marketer web app (FastAPI + Jinja2 templates, plain HTML forms, no JavaScript build).

Every page needs a login; pages that change matching rules or execute erasures need the
admin role (403 otherwise). Every decision goes to the identity decisions file the next
identity run reads, or to the UI's own state files, and to the UI audit log with who and
when; nothing here writes the warehouse.
"""

import csv
import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import duckdb
import yaml
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from cdp_pipeline.activation.config import load_destinations
from cdp_pipeline.activation.state import read_history
from cdp_pipeline.activation.sync import dry_run
from cdp_pipeline.identity import explain_profile, mark_different, mark_same, review_queue
from cdp_pipeline.identity.decisions import read_decisions
from cdp_pipeline.identity.review import decide_pair
from cdp_pipeline.privacy.state import read_audit as read_privacy_audit
from cdp_pipeline.publish import current_snapshot
from cdp_pipeline.segments.compiler import SEGMENT_CONFIG_DIR, load_segments
from cdp_pipeline.settings import CONFIG_DIR, Settings, get_settings
from cdp_pipeline.ui import audit, segment_builder
from cdp_pipeline.ui.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SessionSigner,
    User,
    authenticate,
    known_user,
    session_secret,
)
from cdp_pipeline.ui.data import (
    Store,
    columns_of,
    destinations_of,
    profile_360,
    rows,
    segment_sizes,
    table_exists,
)

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
PRIVACY_REQUEST_TYPES = ("erasure", "access")
PRIVACY_IDENTIFIER_TYPES = ("email", "phone", "a_profiel_id", "profile_id", "device_id")


def _pair(a: str, b: str) -> tuple[str, str]:
    """A record pair in the order the decisions file folds it to."""
    return (a, b) if a <= b else (b, a)


class NotLoggedIn(Exception):
    """Raised by the user dependency; answered with a redirect to the login page."""


def create_app(settings: Settings | None = None, segments_dir: Path | None = None) -> FastAPI:
    """The app for ``settings`` (default: the environment's); tests pass their own folders."""
    settings = settings or get_settings()
    store = Store(settings)
    signer = SessionSigner(session_secret(settings))
    templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
    segment_dir = segments_dir or SEGMENT_CONFIG_DIR
    app = FastAPI(title="CDP marketer UI", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=str(PACKAGE_DIR / "static")), name="static")
    app.state.settings = settings
    app.state.store = store
    # Pairs a reviewer skipped, per user, until the server restarts: a skip decides nothing.
    skipped: dict[str, set[tuple[str, str]]] = {}

    @app.exception_handler(NotLoggedIn)
    async def _to_login(request: Request, exc: NotLoggedIn) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    def current_user(request: Request) -> User:
        name = signer.loads(request.cookies.get(SESSION_COOKIE))
        user = known_user(settings, name) if name else None
        if user is None:
            raise NotLoggedIn()
        return user

    def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
        if not user.is_admin:
            raise HTTPException(status_code=403, detail="administrators only")
        return user

    UserDep = Annotated[User, Depends(current_user)]
    AdminDep = Annotated[User, Depends(admin_user)]

    def render(request: Request, name: str, user: User | None, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"user": user, "replica_message": store.replica_message, **context}
        )

    # ------------------------------------------------------------------ login

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", None, next=next, error=None)

    @app.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        user = authenticate(settings, username, password)
        if user is None:
            audit.record(settings, username, "login_failed")
            response = render(
                request, "login.html", None, next=next, error="Wrong name or password."
            )
            response.status_code = 401
            return response
        audit.record(settings, user.name, "login")
        # Only local paths: an absolute URL in ?next= would make this an open redirect.
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            signer.dumps(user.name),
            max_age=SESSION_MAX_AGE,
            httponly=True,
            samesite="strict",
        )
        return response

    @app.post("/logout")
    def logout(user: UserDep) -> Response:
        audit.record(settings, user.name, "logout")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # ------------------------------------------------------------------ search and profile

    @app.get("/", response_class=HTMLResponse)
    def home(request: Request, user: UserDep, q: str = "") -> HTMLResponse:
        results: list[dict] = []
        seconds = None
        how = ""
        if q.strip():
            started = time.perf_counter()
            results, how = store.search(q)
            seconds = time.perf_counter() - started
        return render(
            request,
            "search.html",
            user,
            q=q,
            results=results,
            seconds=seconds,
            how=how,
            has_snapshot=current_snapshot(settings) is not None,
        )

    @app.get("/profiles/{profile_id}", response_class=HTMLResponse)
    def profile(request: Request, user: UserDep, profile_id: str) -> HTMLResponse:
        with store.snapshot() as snapshot, store.replica() as replica:
            page = profile_360(snapshot, replica, profile_id)
            if page is None:
                raise HTTPException(status_code=404, detail=f"no profile {profile_id}")
            explanation = None
            if replica is not None and table_exists(replica, "identity", "record_profiles"):
                try:
                    explanation = explain_profile(replica, profile_id)
                except KeyError:
                    explanation = None
        page["destinations"] = destinations_of(settings.state_dir, profile_id)
        return render(
            request,
            "profile.html",
            user,
            page=page,
            explanation=explanation,
            message=request.query_params.get("message"),
        )

    @app.post("/profiles/{profile_id}/split")
    def split(
        user: UserDep,
        profile_id: str,
        record_ids: Annotated[list[str], Form()],
        all_record_ids: Annotated[list[str], Form()],
        note: Annotated[str, Form()] = "",
    ) -> Response:
        moved = sorted(set(record_ids))
        stay = sorted(set(all_record_ids) - set(moved))
        if not moved or not stay:
            raise HTTPException(400, "choose some, not all, of the profile's records")
        # Pairwise: the moved records must never join the staying ones, but may stay
        # together (one different-decision over all of them would split them too).
        for moved_id in moved:
            for stay_id in stay:
                mark_different([moved_id, stay_id], by=user.name, note=note or "split in UI")
        audit.record(
            settings, user.name, "split", profile_id=profile_id, moved=moved, stay=stay, note=note
        )
        return RedirectResponse(
            f"/profiles/{profile_id}?message=Split+saved:+{len(moved)}+record(s)+will+leave"
            "+this+profile+at+the+next+run.",
            status_code=303,
        )

    @app.post("/profiles/{profile_id}/join")
    def join(
        user: UserDep,
        profile_id: str,
        other_profile_id: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
    ) -> Response:
        other_profile_id = other_profile_id.strip()
        with store.replica() as replica:
            if replica is None:
                raise HTTPException(503, "no warehouse copy yet")
            firsts = rows(
                replica,
                "select profile_id, min(record_id) as record_id from identity.record_profiles"
                " where profile_id in (?, ?) group by profile_id",
                [profile_id, other_profile_id],
            )
        if len(firsts) != 2:
            raise HTTPException(400, f"profile {other_profile_id!r} not found or the same")
        mark_same([row["record_id"] for row in firsts], by=user.name, note=note or "join in UI")
        audit.record(
            settings,
            user.name,
            "join",
            profile_id=profile_id,
            other_profile_id=other_profile_id,
            note=note,
        )
        return RedirectResponse(
            f"/profiles/{profile_id}?message=Join+saved:+the+profiles+merge+at+the+next+run.",
            status_code=303,
        )

    # ------------------------------------------------------------------ review queue

    def _open_pairs(user: User) -> list[dict]:
        decided = read_decisions()
        done = decided.same | decided.different | skipped.get(user.name, set())
        with store.replica() as replica:
            if replica is None or not table_exists(replica, "identity", "review_queue"):
                return []
            # The queue is small (hundreds of pairs); decisions since the copy are filtered
            # here so the count left moves with every click, not only after the next run.
            pairs = review_queue(replica, status="open", limit=100_000)
            wanted = {p["record_id_l"] for p in pairs} | {p["record_id_r"] for p in pairs}
            details = {
                row["record_id"]: row
                for row in rows(
                    replica,
                    "select record_id, source, record_key, first_name_normalised,"
                    " last_name_normalised, email_normalised, phone_e164, birth_date, postcode"
                    " from identity.record_profiles where record_id in"
                    " (select unnest(?::varchar[]))",
                    [sorted(wanted)],
                )
            }
        left = [p for p in pairs if _pair(p["record_id_l"], p["record_id_r"]) not in done]
        for pair in left:
            pair["left"] = details.get(pair["record_id_l"], {})
            pair["right"] = details.get(pair["record_id_r"], {})
        return left

    @app.get("/review", response_class=HTMLResponse)
    def review(request: Request, user: UserDep) -> HTMLResponse:
        pairs = _open_pairs(user)
        return render(
            request, "review.html", user, pair=pairs[0] if pairs else None, left=len(pairs)
        )

    @app.post("/review/decide")
    def review_decide(
        user: UserDep,
        record_id_l: Annotated[str, Form()],
        record_id_r: Annotated[str, Form()],
        action: Annotated[str, Form()],
    ) -> Response:
        if action not in ("accept", "reject", "skip"):
            raise HTTPException(400, f"action {action!r}; allowed: accept, reject, skip")
        if action == "skip":
            skipped.setdefault(user.name, set()).add(_pair(record_id_l, record_id_r))
        else:
            decide_pair(
                record_id_l,
                record_id_r,
                accept=action == "accept",
                by=user.name,
                note="review queue (UI)",
            )
        audit.record(
            settings,
            user.name,
            f"review_{action}",
            record_id_l=record_id_l,
            record_id_r=record_id_r,
        )
        return RedirectResponse("/review", status_code=303)

    # ------------------------------------------------------------------ segments

    @app.get("/segments", response_class=HTMLResponse)
    def segments(request: Request, user: UserDep) -> HTMLResponse:
        with store.snapshot() as snapshot, store.replica() as replica:
            sizes = segment_sizes(snapshot, replica)
        try:
            marketer = [loaded.spec.name for loaded in load_segments(segment_dir)]
        except ValueError as error:
            marketer = [f"(invalid: {error})"]
        return render(request, "segments.html", user, sizes=sizes, marketer=marketer)

    def _form_from(data: dict[str, Any]) -> segment_builder.SegmentForm:
        rules = []
        for index in range(5):
            kind = str(data.get(f"kind_{index}", "") or "")
            name = str(data.get(f"name_{index}", "") or "").strip()
            if kind in ("trait", "consent") and name:
                rules.append(
                    segment_builder.Rule(
                        kind=kind,
                        name=name,
                        op=str(data.get(f"op_{index}", "eq")),
                        value=str(data.get(f"value_{index}", "")),
                    )
                )
        channels = data.get("channels", [])
        return segment_builder.SegmentForm(
            name=str(data.get("name", "")),
            description=str(data.get("description", "")),
            owner=str(data.get("owner", "")),
            purpose=str(data.get("purpose", "email_marketing")),
            channels=[channels] if isinstance(channels, str) else list(channels),
            rules=rules,
        )

    def _segment_form_page(
        request: Request, user: User, form: segment_builder.SegmentForm, **extra: Any
    ) -> HTMLResponse:
        with store.snapshot() as snapshot:
            traits = (
                [c for c in columns_of(snapshot, "main", "traits") if c != "profile_id"]
                if snapshot is not None
                else []
            )
        return render(
            request,
            "segment_new.html",
            user,
            form=form,
            traits=traits,
            ops=segment_builder.FORM_OPS,
            purposes=segment_builder.PURPOSES,
            channels=segment_builder.CHANNELS,
            **extra,
        )

    @app.get("/segments/new", response_class=HTMLResponse)
    def segment_new(request: Request, user: UserDep) -> HTMLResponse:
        return _segment_form_page(request, user, segment_builder.SegmentForm(owner=user.name))

    @app.post("/segments/new", response_class=HTMLResponse)
    async def segment_post(request: Request, user: UserDep) -> HTMLResponse:
        # The rule rows are numbered fields, so the form is read whole; the DuckDB estimate
        # then runs in the thread pool like every other (synchronous) page.
        data = await request.form()
        values: dict[str, Any] = {key: data.get(key) for key in data}
        values["channels"] = data.getlist("channels")
        return await run_in_threadpool(_segment_submit, request, user, values)

    def _segment_submit(request: Request, user: User, values: dict[str, Any]) -> HTMLResponse:
        form = _form_from(values)
        action = values.get("action", "estimate")
        problems: list[str] = []
        estimate_size = None
        members: list[dict] = []
        saved = None
        with store.snapshot() as snapshot:
            if snapshot is None:
                problems.append("no published snapshot yet: run the nightly job first")
            elif not form.rules:
                problems.append("add at least one rule")
            else:
                try:
                    estimate_size, members = segment_builder.estimate(snapshot, form)
                except (ValueError, TypeError) as error:
                    problems.append(str(error))
        if action == "save" and not problems:
            spec, problems = segment_builder.validate(form, segment_dir)
            if spec is not None:
                try:
                    path = segment_builder.save(spec, segment_dir, user.name)
                    saved = path.name
                    audit.record(
                        settings,
                        user.name,
                        "segment_created",
                        segment=spec.name,
                        file=path.name,
                        estimated_size=estimate_size,
                    )
                except FileExistsError as error:
                    problems.append(str(error))
        return _segment_form_page(
            request,
            user,
            form,
            problems=problems,
            estimate=estimate_size,
            members=members,
            saved=saved,
        )

    # ------------------------------------------------------------------ destinations

    @app.get("/destinations", response_class=HTMLResponse)
    def destinations(request: Request, user: UserDep) -> HTMLResponse:
        return render(request, "destinations.html", user, **_destinations_context())

    def _destinations_context() -> dict[str, Any]:
        declared = load_destinations(include_disabled=True)
        history = read_history(settings.state_dir)
        by_destination: dict[str, list[dict]] = {}
        for entry in history:
            by_destination.setdefault(str(entry["destination"]), []).append(entry)
        return {"declared": declared, "history": by_destination}

    @app.post("/destinations/{name}/dry-run", response_class=HTMLResponse)
    def destination_dry_run(request: Request, user: UserDep, name: str) -> HTMLResponse:
        error = None
        report = None
        try:
            report = asdict(dry_run(name))
        except KeyError as problem:
            raise HTTPException(404, str(problem)) from None
        except Exception as problem:  # noqa: BLE001 - any failure is shown, not a 500
            # The nightly run holding the warehouse lock is the expected case here.
            error = f"{type(problem).__name__}: {problem}"
        audit.record(
            settings, user.name, "dry_run", destination=name, ok=error is None, error=error
        )
        return render(
            request,
            "destinations.html",
            user,
            dry_run_name=name,
            dry_run=report,
            dry_run_error=error,
            **_destinations_context(),
        )

    # ------------------------------------------------------------------ privacy

    def _requests_dir() -> Path:
        return settings.landing_dir / "privacy_requests"

    def _privacy_context(user: User) -> dict[str, Any]:
        requests: list[dict] = []
        state_file = settings.state_dir / "privacy" / "privacy.duckdb"
        if state_file.exists():
            try:
                with duckdb.connect(str(state_file), read_only=True) as con:
                    requests = rows(
                        con,
                        "select request_id, request_type, status, received_at, processed_at"
                        " from requests order by received_at desc nulls last limit 500",
                    )
            except duckdb.Error as error:
                logger.info("Privacy state busy: %s", error)
        handled = {row["request_id"] for row in requests}
        queued = [r for r in _queued_requests() if r["request_id"] not in handled]
        return {
            "requests": requests,
            "queued": queued,
            "privacy_audit": read_privacy_audit(settings.state_dir)[-50:] if user.is_admin else [],
            "ui_audit": audit.read(settings) if user.is_admin else [],
            "request_types": PRIVACY_REQUEST_TYPES,
            "identifier_types": PRIVACY_IDENTIFIER_TYPES,
        }

    def _queued_requests() -> list[dict]:
        found = []
        for path in sorted(_requests_dir().glob("ui-*.csv")):
            with path.open(encoding="utf-8", newline="") as handle:
                for row in csv.DictReader(handle):
                    found.append(
                        {
                            "request_id": row["request_id"],
                            "type": row["type"],
                            "received_at": row["received_at"],
                            "file": path.name,
                        }
                    )
        return found

    @app.get("/privacy", response_class=HTMLResponse)
    def privacy(request: Request, user: UserDep) -> HTMLResponse:
        return render(request, "privacy.html", user, **_privacy_context(user))

    @app.post("/privacy/requests", response_class=HTMLResponse)
    def privacy_request(
        request: Request,
        user: UserDep,
        request_type: Annotated[str, Form()],
        identifier_type: Annotated[str, Form()],
        identifier_value: Annotated[str, Form()],
    ) -> Response:
        if request_type not in PRIVACY_REQUEST_TYPES:
            raise HTTPException(400, f"request type {request_type!r}")
        if identifier_type not in PRIVACY_IDENTIFIER_TYPES:
            raise HTTPException(400, f"identifier type {identifier_type!r}")
        # An erasure cannot be undone: only an administrator may set one in motion.
        if request_type == "erasure" and not user.is_admin:
            raise HTTPException(403, "only an administrator may execute an erasure")
        now = datetime.now(UTC)
        request_id = f"ui-{now.strftime('%Y%m%dT%H%M%S%f')}"
        directory = _requests_dir()
        directory.mkdir(parents=True, exist_ok=True)
        # A delivery of the privacy_requests source: the nightly job's privacy step
        # carries it out, with the same tombstones and audit as requests from the office.
        path = directory / f"{request_id}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["request_id", "type", "identifier_type", "identifier_value", "received_at"]
            )
            writer.writerow(
                [
                    request_id,
                    request_type,
                    identifier_type,
                    identifier_value.strip(),
                    now.isoformat(timespec="seconds"),
                ]
            )
        # The identifier itself stays out of the UI audit log: it is personal data.
        audit.record(
            settings,
            user.name,
            f"privacy_{request_type}_requested",
            request_id=request_id,
            identifier_type=identifier_type,
        )
        return RedirectResponse("/privacy", status_code=303)

    # ------------------------------------------------------------------ matching settings

    @app.get("/matching", response_class=HTMLResponse)
    def matching(request: Request, user: AdminDep) -> HTMLResponse:
        config = yaml.safe_load((CONFIG_DIR / "matching.yml").read_text(encoding="utf-8"))
        return render(
            request,
            "matching.html",
            user,
            config=config,
            text=(CONFIG_DIR / "matching.yml").read_text(encoding="utf-8"),
        )

    @app.post("/matching")
    def matching_change(user: AdminDep) -> Response:
        # Editing with a preview is not built yet; the route exists so the role rule is
        # enforced and tested where the edit form will post.
        raise HTTPException(501, "editing matching rules from the UI is not available yet")

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, user: AdminDep) -> HTMLResponse:
        return render(request, "audit.html", user, entries=audit.read(settings, limit=500))

    @app.post("/admin/refresh")
    def refresh(user: UserDep) -> Response:
        store.refresh_replica(force=True)
        audit.record(settings, user.name, "refresh_replica")
        return RedirectResponse("/", status_code=303)

    return app
