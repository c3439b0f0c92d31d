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
from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from cdp_pipeline.activation.config import load_destinations
from cdp_pipeline.activation.state import read_history
from cdp_pipeline.identity import explain_profile, mark_different, mark_same, review_queue
from cdp_pipeline.identity.decisions import read_decisions
from cdp_pipeline.identity.review import decide_pair
from cdp_pipeline.privacy.state import read_audit as read_privacy_audit
from cdp_pipeline.publish import current_snapshot
from cdp_pipeline.segments.compiler import SEGMENT_CONFIG_DIR, load_segments
from cdp_pipeline.settings import Settings, get_settings
from cdp_pipeline.ui import audit, matching_editor, segment_builder
from cdp_pipeline.ui.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    SessionSigner,
    User,
    authenticate,
    has_users,
    known_user,
    session_secret,
)
from cdp_pipeline.ui.data import (
    Store,
    columns_of,
    destinations_of,
    dry_run_on_replica,
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
    previews = matching_editor.PreviewRunner()
    app.state.previews = previews

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
        return render(
            request, "login.html", None, next=next, error=None, no_users=not has_users(settings)
        )

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

    def _segment_form_page(
        request: Request, user: User, form: segment_builder.SegmentForm, **extra: Any
    ) -> HTMLResponse:
        with store.replica() as replica:
            traits = (
                [c for c in columns_of(replica, "marts", "profile_traits") if c != "profile_id"]
                if replica is not None
                else []
            )
        return render(
            request,
            "segment_new.html",
            user,
            form=form,
            rows=segment_builder.ROWS,
            kinds=segment_builder.KINDS,
            traits=traits,
            ops=segment_builder.FORM_OPS,
            events=segment_builder.EVENTS,
            propensities=segment_builder.PROPENSITIES,
            segment_names=segment_builder.segment_names(segment_dir),
            statuses=segment_builder.CONSENT_STATUSES,
            groups=segment_builder.GROUPS,
            group_modes=segment_builder.GROUP_MODES,
            top_modes=segment_builder.TOP_MODES,
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
        form = segment_builder.form_from_fields(values)
        action = values.get("action", "estimate")
        problems: list[str] = []
        estimate_size = None
        members: list[dict] = []
        saved = None
        spec, types, problems = segment_builder.check_conditions(form, segment_dir)
        if spec is not None:
            with store.replica() as replica:
                if replica is None or not table_exists(replica, "marts", "profiles"):
                    problems.append("no warehouse copy yet: run the nightly job first")
                else:
                    estimate_size, members = segment_builder.estimate(
                        replica, spec, types, settings.as_of_date
                    )
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
        declared = {d.name: d for d in load_destinations(include_disabled=True)}
        if name not in declared:
            raise HTTPException(404, f"unknown destination {name!r}; declared: {sorted(declared)}")
        error = None
        report = None
        # Planned on the replica: the warehouse may be held by a run right now.
        with store.replica() as replica:
            if replica is None:
                error = "no warehouse copy yet: run the nightly job first"
            else:
                try:
                    plan = dry_run_on_replica(
                        store.replica_path, declared[name], settings.state_dir
                    )
                    report = asdict(plan)
                except Exception as problem:  # noqa: BLE001 - any failure is shown, not a 500
                    # A sync writing the destination's state right now holds its lock.
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

    def _matching_page(
        request: Request,
        user: User,
        values: dict[str, Any] | None = None,
        problems: list[str] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        current, path = matching_editor.read_current(settings)
        shown = values if values is not None else current
        response = render(
            request,
            "matching.html",
            user,
            config=shown,
            source=path,
            comparisons=matching_editor.COMPARISONS,
            guard_flags=matching_editor.GUARD_FLAGS,
            blocked_kinds=matching_editor.BLOCKED_KINDS,
            threshold_keys=matching_editor.THRESHOLD_KEYS,
            extra_rows=matching_editor.EXTRA_ATTRIBUTE_ROWS,
            problems=problems or [],
            saved=request.query_params.get("saved"),
            text=path.read_text(encoding="utf-8"),
        )
        response.status_code = status_code
        return response

    @app.get("/matching", response_class=HTMLResponse)
    def matching(request: Request, user: AdminDep, preview: str = "") -> HTMLResponse:
        job = previews.get(preview) if preview else None
        return _matching_page(request, user, job.candidate if job else None)

    @app.post("/matching", response_class=HTMLResponse)
    async def matching_change(request: Request, user: AdminDep) -> Response:
        # The attribute rows are numbered fields, so the form is read whole.
        data = await request.form()
        values: dict[str, Any] = {key: data.get(key) for key in data}
        return await run_in_threadpool(_matching_preview_start, request, user, values)

    def _matching_preview_start(request: Request, user: User, values: dict[str, Any]) -> Response:
        current, _ = matching_editor.read_current(settings)
        try:
            candidate = matching_editor.candidate_from_form(current, values)
        except ValueError as error:
            return _matching_page(request, user, None, [str(error)], status_code=400)
        parsed, problems = matching_editor.validate(candidate)
        if parsed is None:
            return _matching_page(request, user, candidate, problems, status_code=400)
        current_parsed, current_problems = matching_editor.validate(current)
        if current_parsed is None:
            return _matching_page(request, user, candidate, current_problems, status_code=400)
        with store.replica():
            replica_path = store.replica_path
        if not replica_path.exists():
            return _matching_page(
                request, user, candidate, ["no warehouse copy yet: run the nightly job first"], 503
            )
        job = previews.start(
            user.name,
            candidate,
            current_parsed,
            parsed,
            replica_path,
            settings.state_dir,
            matching_editor.digest(current),
        )
        return RedirectResponse(f"/matching/preview/{job.job_id}", status_code=303)

    @app.get("/matching/preview/{job_id}", response_class=HTMLResponse)
    def matching_preview(request: Request, user: AdminDep, job_id: str) -> HTMLResponse:
        job = previews.get(job_id)
        if job is None:
            raise HTTPException(404, f"no preview {job_id}")
        current, _ = matching_editor.read_current(settings)
        changes = matching_editor.config_diff(current, job.candidate)
        names: dict[str, str] = {}
        if job.preview is not None:
            wanted = {pid for group in job.preview.merge_sample for pid in group["profiles"]} | {
                item["profile_id"] for item in job.preview.split_sample
            }
            with store.snapshot() as snapshot:
                if snapshot is not None and wanted:
                    names = {
                        row["profile_id"]: " ".join(
                            part for part in (row["first_name"], row["last_name"]) if part
                        )
                        for row in rows(
                            snapshot,
                            "select profile_id, first_name, last_name from profiles"
                            " where profile_id in (select unnest(?::varchar[]))",
                            [sorted(wanted)],
                        )
                    }
        return render(
            request,
            "matching_preview.html",
            user,
            job=job,
            preview=job.preview,
            changes=changes,
            names=names,
            seconds=round(time.monotonic() - job.started_at),
            stale=job.base_digest != matching_editor.digest(current),
        )

    @app.post("/matching/save")
    def matching_save(user: AdminDep, preview_id: Annotated[str, Form()]) -> Response:
        job = previews.get(preview_id)
        if job is None or job.status != "done" or job.preview is None:
            raise HTTPException(400, "preview the change first; save after its result is shown")
        current, _ = matching_editor.read_current(settings)
        if job.base_digest != matching_editor.digest(current):
            raise HTTPException(
                409, "the matching settings changed since this preview; preview again"
            )
        changes = matching_editor.config_diff(current, job.candidate)
        path, kept = matching_editor.save(settings, job.candidate, user.name)
        preview = job.preview
        audit.record(
            settings,
            user.name,
            "matching_changed",
            file=str(path),
            previous_copy=kept.name if kept else None,
            changes=changes,
            preview={
                "records": preview.records,
                "merges": preview.merges,
                "profiles_merged": preview.profiles_merged,
                "splits": preview.splits,
                "sampled_fraction": preview.sampled_fraction,
            },
        )
        return RedirectResponse(
            f"/matching?saved={path.name}+({len(changes)}+change(s))", status_code=303
        )

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, user: AdminDep) -> HTMLResponse:
        return render(request, "audit.html", user, entries=audit.read(settings, limit=500))

    @app.post("/admin/refresh")
    def refresh(user: UserDep) -> Response:
        store.refresh_replica(force=True)
        audit.record(settings, user.name, "refresh_replica")
        return RedirectResponse("/", status_code=303)

    return app
