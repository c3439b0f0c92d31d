"""The digital sources: app devices, web and app events, consents and privacy requests.

Web events reproduce what makes Segment data hard: visitors who stay anonymous, visitors
who log in halfway (``identify``), client retries that repeat a ``messageId``, events that
arrive in the next day's file and phones whose clock is wrong.
"""

import string
from collections import defaultdict
from datetime import date, timedelta

from cdp_pipeline.sample_data.context import (
    DAY,
    WEB_DAYS,
    CatalogueEvent,
    Context,
    Device,
    Order,
    write_csv,
    write_jsonl,
)
from cdp_pipeline.sample_data.names import (
    APP_SCREENS,
    CULTURE_CATEGORIES,
    REFERRERS,
    USER_AGENTS,
    WEB_PAGES,
)
from cdp_pipeline.sample_data.population import Account, Person, poisson
from cdp_pipeline.sample_data.render import (
    brussels_date,
    day_start_utc,
    fmt_local_iso,
    fmt_utc_z,
)

APP_DEVICES_HEADER = [
    "device_id",
    "platform",
    "push_token",
    "app_version",
    "a_profiel_id",
    "push_opt_in",
    "first_seen_at",
    "last_seen_at",
]
PRIVACY_HEADER = ["request_id", "type", "identifier_type", "identifier_value", "received_at"]
APP_VERSIONS = ("4.2.1", "4.2.0", "4.1.3", "4.0.0", "3.9.1")
# How wrong a phone's clock can be: hours either way, a day or two, or far in the future.
CLOCK_SKEWS = (3 * 3600.0, -5 * 3600.0, 26 * 3600.0, -2 * DAY, 35 * DAY, 400 * DAY)
_TOKEN_CHARS = string.ascii_letters + string.digits + "-_"
LOCALES = {"nl": "nl-BE", "fr": "fr-BE", "en": "en-GB"}


# ------------------------------------------------------------------ app devices


def build_devices(ctx: Context) -> None:
    """App installs, some linked to an A-profiel, some replaced by a newer phone."""
    rng = ctx.rng
    rows = []
    recent = ctx.as_of_ts - (WEB_DAYS - 1) * DAY
    for p in ctx.people:
        age = p.age_on(ctx.as_of)
        if age < 13:
            continue
        prob = 0.2 if age < 18 else (0.12 + 0.35 * p.engagement) * (0.5 if age > 70 else 1)
        if rng.random() >= prob:
            continue
        acc = p.account_at(ctx.as_of_ts)
        first_seen = ctx.as_of_ts - rng.uniform(5, 900) * DAY
        installs = [
            (
                first_seen,
                rng.uniform(recent, ctx.as_of_ts - 600)
                if rng.random() < 0.75
                else max(first_seen + DAY, ctx.as_of_ts - rng.uniform(31, 300) * DAY),
            )
        ]
        if rng.random() < 0.12:
            # An earlier phone, abandoned when this one was installed.
            old_first = first_seen - rng.uniform(200, 900) * DAY
            installs.insert(0, (old_first, first_seen - rng.uniform(0, 20) * DAY))
        platform = "ios" if rng.random() < 0.45 else "android"
        for first, last in installs:
            dev = Device(
                device_id=ctx.new_id("d-", 8),
                person=p,
                platform=platform,
                a_profiel_id=acc.account_id
                if acc and acc.created_at <= last and rng.random() < 0.75
                else "",
                push_opt_in=rng.random() < 0.35 + 0.4 * p.engagement,
                first_seen=first,
                last_seen=last,
                app_version=APP_VERSIONS[
                    0 if last > recent and rng.random() < 0.6 else rng.randrange(len(APP_VERSIONS))
                ],
                clock_skew=rng.choice(CLOCK_SKEWS) if rng.random() < 0.05 else 0.0,
            )
            ctx.devices.append(dev)
            token = "fcm:" + "".join(rng.choice(_TOKEN_CHARS) for _ in range(40))
            if rng.random() < 0.05:
                token = ""
            rows.append(
                [
                    dev.device_id,
                    dev.platform,
                    token,
                    dev.app_version,
                    dev.a_profiel_id,
                    "true" if dev.push_opt_in else "false",
                    fmt_utc_z(dev.first_seen),
                    fmt_utc_z(dev.last_seen),
                ]
            )
            ctx.add_truth("app_devices", dev.device_id, "device", p)
    ctx.counts["app_devices"] = write_csv(
        ctx.source_dir("app_devices") / f"app_devices_{ctx.as_of.isoformat()}.csv",
        APP_DEVICES_HEADER,
        rows,
    )


# ------------------------------------------------------------------ web events


class _WebBuilder:
    """Generates the events of all visitors, then spreads them over the daily files."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.rng = ctx.rng
        self.win_start = day_start_utc(ctx.as_of - timedelta(days=WEB_DAYS))
        self.win_end = ctx.as_of_ts
        # (received, seq, event); seq keeps the order of generation for equal times.
        self.events: list[tuple[float, int, dict]] = []
        self.by_cat: dict[str, list[CatalogueEvent]] = defaultdict(list)
        for ev in ctx.catalogue:
            if ev.perf_ts > self.win_start:
                self.by_cat[ev.category].append(ev)

    def _emit(self, true_ts: float, event: dict, skew: float = 0.0) -> None:
        received = true_ts + self.rng.uniform(0.05, 2.0)
        event["timestamp"] = fmt_utc_z(true_ts + skew, millis=True)
        event["receivedAt"] = fmt_utc_z(received, millis=True)
        self.events.append((received, len(self.events), event))

    def _event_page(self, p: Person) -> CatalogueEvent:
        rng = self.rng
        if rng.random() < p.sport / (p.sport + p.culture + 1e-9):
            cat = "sport"
        else:
            cat = rng.choices(CULTURE_CATEGORIES, weights=p.cat_weights, k=1)[0]
        pool = self.by_cat.get(cat) or self.by_cat.get("concert") or self.ctx.catalogue
        return rng.choice(pool)

    def _base(self, kind: str, anon: str, user: str, ctx_obj: dict) -> dict:
        event: dict = {"messageId": self.ctx.new_id("m-", 16), "type": kind, "anonymousId": anon}
        if user:
            event["userId"] = user
        # Parked under a private key and moved at write time, so that the written
        # objects read like Segment's (context after the payload, then the timestamps).
        event["_ctx"] = ctx_obj
        return event

    # -------------------------------------------------------------- browser

    def browser_visitor(
        self,
        p: Person,
        anon: str,
        sessions: list[tuple[float, str, object]],
        acc: Account | None,
        login_p: float,
    ) -> None:
        """All sessions of one browser cookie, logging in at most once."""
        rng = self.rng
        ctx_obj = {
            "ip": f"{rng.choice((81, 84, 91, 94, 109, 178, 213))}."
            f"{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "userAgent": rng.choice(USER_AGENTS),
            "locale": LOCALES.get(p.language, "nl-BE"),
        }
        sessions.sort(key=lambda s: s[0])
        login_at = -1
        if acc is not None:
            candidates = [i for i, s in enumerate(sessions) if s[0] >= acc.created_at]
            forced = [
                i
                for i in candidates
                if isinstance(sessions[i][2], Order) and sessions[i][2].a_profiel_id
            ]
            if forced:
                login_at = (
                    forced[0]
                    if rng.random() < 0.5
                    else rng.choice([i for i in candidates if i <= forced[0]])
                )
            elif candidates and rng.random() < login_p:
                login_at = rng.choice(candidates)
        user = ""
        for i, (start, kind, payload) in enumerate(sessions):
            if i > login_at >= 0:
                user = acc.account_id if acc else ""
            self._browser_session(
                p, anon, start, kind, payload, ctx_obj, user, acc if i == login_at else None
            )
        self.ctx.add_truth("web_events", anon, "visitor", p)

    def _browser_session(
        self,
        p: Person,
        anon: str,
        t: float,
        kind: str,
        payload: object,
        ctx_obj: dict,
        user: str,
        login: Account | None,
    ) -> None:
        rng = self.rng
        n_pages = 1 + poisson(rng, 2.0)
        login_pos = rng.randrange(n_pages) + 1 if login else -1
        target = payload.event if isinstance(payload, Order) else payload
        for i in range(n_pages + 1):
            if i == login_pos and login is not None:
                ident = self._base("identify", anon, login.account_id, ctx_obj)
                ident["traits"] = {"email": login.email.strip().lower()}
                self._emit(t, ident)
                user = login.account_id
                t += rng.uniform(3, 30)
            if i == n_pages:
                break
            ev_page: CatalogueEvent | None = None
            if isinstance(target, CatalogueEvent) and (i == n_pages - 1 or rng.random() < 0.3):
                ev_page = target
            elif rng.random() < 0.45:
                ev_page = self._event_page(p)
            page = self._base("page", anon, user, ctx_obj)
            if ev_page is not None:
                page["name"] = "Evenement"
                page["properties"] = {"path": ev_page.path, "event_id": ev_page.event_id}
            else:
                name, path = rng.choice(WEB_PAGES)
                page["name"] = name
                page["properties"] = {"path": path}
            page["properties"]["referrer"] = (
                rng.choice(REFERRERS) if i == 0 else "https://www.antwerpen.be/"
            )
            self._emit(t, page)
            t += rng.uniform(4, 150)
            if ev_page is not None:
                wish = 0.5 if (kind == "browse" and ev_page is target) else 0.04
                if rng.random() < wish:
                    track = self._base("track", anon, user, ctx_obj)
                    track["event"] = "Added to Wishlist"
                    track["properties"] = {"event_id": ev_page.event_id}
                    self._emit(t, track)
                    t += rng.uniform(2, 40)
        if kind == "buy" and isinstance(payload, Order):
            o = payload
            track = self._base("track", anon, user, ctx_obj)
            track["event"] = "Ticket Purchased"
            track["properties"] = {
                "order_id": o.order_nr,
                "event_id": o.event.event_id,
                "quantity": o.quantity,
                "revenue": round(o.event.price * o.quantity, 2),
            }
            self._emit(max(t, o.ts), track)

    # -------------------------------------------------------------- app

    def app_visitor(self, dev: Device) -> None:
        """Screens of one app install between its first and last day seen in the window."""
        rng = self.rng
        p = dev.person
        lo = max(dev.first_seen, self.win_start)
        hi = dev.last_seen
        if hi <= lo:
            return
        ctx_obj = {
            "ip": f"{rng.choice((37, 46, 81, 178))}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}",
            "userAgent": f"StadAntwerpenApp/{dev.app_version} ({dev.platform})",
            "locale": LOCALES.get(p.language, "nl-BE"),
            "app": {"version": dev.app_version},
            "device": {"type": dev.platform},
        }
        n = 1 + poisson(rng, (1 + 5 * p.engagement) * self.ctx.web_visit_factor)
        starts = sorted(rng.uniform(lo, hi) for _ in range(n - 1))
        starts.append(max(lo, hi - rng.uniform(30, 300)))
        anon = dev.device_id
        user = dev.a_profiel_id
        for k, t in enumerate(starts):
            if k == 0 and user:
                # The app identifies the logged-in user when it starts.
                ident = self._base("identify", anon, user, ctx_obj)
                acc = next((a for a in p.accounts if a.account_id == user), None)
                ident["traits"] = {"email": acc.email.strip().lower()} if acc else {}
                self._emit(t, ident, dev.clock_skew)
                t += rng.uniform(1, 5)
                if rng.random() < 0.1:
                    alias = self._base("alias", anon, user, ctx_obj)
                    alias["previousId"] = anon
                    self._emit(t, alias, dev.clock_skew)
            for _ in range(1 + poisson(rng, 2.0)):
                screen = self._base("screen", anon, user, ctx_obj)
                if rng.random() < 0.35:
                    ev = self._event_page(p)
                    screen["name"] = "Evenement"
                    screen["properties"] = {"event_id": ev.event_id}
                else:
                    screen["name"] = rng.choice(APP_SCREENS)
                    screen["properties"] = {}
                self._emit(t, screen, dev.clock_skew)
                t += rng.uniform(3, 90)
        self.ctx.add_truth("web_events", anon, "visitor", p)

    # -------------------------------------------------------------- files

    def write(self) -> int:
        """Spread events over daily files with late arrivals and client retries."""
        rng = self.rng
        last_day = self.ctx.as_of - timedelta(days=1)
        files: dict[date, list[tuple[float, int, dict]]] = defaultdict(list)
        self.events.sort(key=lambda t: (t[0], t[1]))
        for received, seq, event in self.events:
            ctx_obj = event.pop("_ctx")
            ts = event.pop("timestamp")
            rec = event.pop("receivedAt")
            event["context"] = ctx_obj
            event["timestamp"] = ts
            event["receivedAt"] = rec
            day = brussels_date(received)
            if day < last_day and rng.random() < 0.02:
                # Delivered late: the event of day D sits in the file of day D+1.
                day = day + timedelta(days=1)
            files[day].append((received, seq, event))
            if rng.random() < 0.01:
                # A client retry: the same message again, sometimes in the next file.
                dup_day = day + timedelta(days=1) if day < last_day and rng.random() < 0.3 else day
                files[dup_day].append((received + rng.uniform(1, 600), seq, event))
        out_dir = self.ctx.source_dir("web_events")
        total = 0
        for offset in range(WEB_DAYS, 0, -1):
            day = self.ctx.as_of - timedelta(days=offset)
            rows = sorted(files.get(day, []), key=lambda t: (t[0], t[1]))
            total += write_jsonl(out_dir / f"{day.isoformat()}.jsonl", (r for *_, r in rows))
        return total


def build_web_events(ctx: Context) -> None:
    """Browser and app behaviour of the last WEB_DAYS days, one file a day."""
    rng = ctx.rng
    web = _WebBuilder(ctx)
    for p in ctx.people:
        age = p.age_on(ctx.as_of)
        if age < 13:
            continue
        web_orders = [
            o
            for o in ctx.orders_by_person.get(p.idx, [])
            if o.channel == "web" and o.ts >= web.win_start
        ]
        if not web_orders and rng.random() >= 0.08 + 0.5 * p.engagement:
            continue
        r = rng.random()
        n_cookies = 1 if r < 0.75 else (2 if r < 0.95 else 3)
        per_cookie: list[list[tuple[float, str, object]]] = [[] for _ in range(n_cookies)]
        for c in range(n_cookies):
            rate = (0.5 + 3 * p.engagement) if c == 0 else 0.8
            for _ in range(1 + poisson(rng, rate * ctx.web_visit_factor)):
                per_cookie[c].append((rng.uniform(web.win_start, web.win_end - 900), "visit", None))
        for o in web_orders:
            c = 0 if rng.random() < 0.8 else rng.randrange(n_cookies)
            if rng.random() < 0.6 and o.ts - 10 * DAY > web.win_start:
                # Browsing (and often wish-listing) the event some days before buying it.
                per_cookie[c].append((o.ts - rng.uniform(0.5, 10) * DAY, "browse", o.event))
            per_cookie[c].append((o.ts - rng.uniform(60, 600), "buy", o))
        acc = p.account_at(ctx.as_of_ts)
        for c in range(n_cookies):
            web.browser_visitor(p, ctx.new_id("c-", 12), per_cookie[c], acc, 0.5)
    recent = [d for d in ctx.devices if d.last_seen > web.win_start]
    if recent and not any(d.clock_skew for d in recent):
        # Even a small sample must show the quirk, so one active phone gets a wrong clock.
        rng.choice(recent).clock_skew = rng.choice(CLOCK_SKEWS)
    for dev in recent:
        web.app_visitor(dev)
    ctx.counts["web_events"] = web.write()


# ------------------------------------------------------------------ consents


def build_consents(ctx: Context) -> None:
    """Consent events per A-profiel, e-mail address and device, several over time."""
    rng = ctx.rng
    rows: list[tuple[float, int, dict]] = []

    def add(kind: str, subject: str, purpose: str, status: str, ts: float, src: str) -> None:
        rows.append(
            (
                ts,
                len(rows),
                {
                    "subject_type": kind,
                    "subject_id": subject,
                    "purpose": purpose,
                    "status": status,
                    "ts": fmt_local_iso(ts),
                    "source": src,
                },
            )
        )

    for p in ctx.people:
        for acc in p.accounts:
            granted = {
                "email_marketing": rng.random() < 0.35 + 0.5 * p.engagement,
                "profiling": rng.random() < 0.45,
            }
            if rng.random() < 0.5:
                granted["ad_targeting"] = rng.random() < 0.3
            for purpose, ok in granted.items():
                add(
                    "a_profiel",
                    acc.account_id,
                    purpose,
                    "granted" if ok else "withdrawn",
                    acc.created_at + 60,
                    "aprofiel_registration",
                )
            for _ in range(poisson(rng, 0.35)):
                purpose = rng.choice(sorted(granted))
                granted[purpose] = not granted[purpose]
                ts = rng.uniform(acc.created_at + DAY, ctx.as_of_ts - 3600)
                add(
                    "a_profiel",
                    acc.account_id,
                    purpose,
                    "granted" if granted[purpose] else "withdrawn",
                    ts,
                    "preference_centre",
                )
            if acc.status == "deleted":
                for purpose, ok in granted.items():
                    if ok:
                        add(
                            "a_profiel",
                            acc.account_id,
                            purpose,
                            "withdrawn",
                            max(acc.updated_at, acc.created_at + 2 * DAY),
                            "account_deletion",
                        )
    by_email: dict[str, list] = {}
    for sub in ctx.subscriptions:
        if sub.optin_ts is not None:
            by_email.setdefault(sub.email, []).append(sub)
    for email, subs in by_email.items():
        add(
            "email",
            email,
            "email_marketing",
            "granted",
            min(s.optin_ts for s in subs),
            "newsletter_signup",
        )
        if all(s.unsub_ts for s in subs):
            add(
                "email",
                email,
                "email_marketing",
                "withdrawn",
                max(s.unsub_ts for s in subs),
                "unsubscribe_link",
            )
    for dev in ctx.devices:
        status = "granted" if dev.push_opt_in else "withdrawn"
        if rng.random() < 0.2 and dev.last_seen - dev.first_seen > 2 * DAY:
            opposite = "withdrawn" if dev.push_opt_in else "granted"
            add("device", dev.device_id, "push_marketing", opposite, dev.first_seen + 30, "app")
            add(
                "device",
                dev.device_id,
                "push_marketing",
                status,
                rng.uniform(dev.first_seen + DAY, dev.last_seen),
                "app_settings",
            )
        else:
            add("device", dev.device_id, "push_marketing", status, dev.first_seen + 30, "app")
    rows = [r for r in rows if r[0] < ctx.as_of_ts]
    rows.sort(key=lambda t: (t[0], t[1]))
    ctx.counts["consents"] = write_jsonl(
        ctx.source_dir("consents") / f"consents_{ctx.as_of.isoformat()}.jsonl",
        (r for *_, r in rows),
    )


# ------------------------------------------------------------------ privacy requests


def build_privacy_requests(ctx: Context) -> None:
    """A handful of erasure and access requests from real people of the sample."""
    rng = ctx.rng
    holders = [p for p in ctx.people if any(a.status == "active" for a in p.accounts)]
    n = min(len(holders), 4 + min(8, len(ctx.people) // 12500))
    chosen = rng.sample(holders, n)
    drafts = []
    for p in chosen:
        acc = next(a for a in p.accounts if a.status == "active")
        kind = "erasure" if rng.random() < 0.5 else "access"
        if rng.random() < 0.5:
            ident = ("email", acc.email.strip().lower())
        else:
            ident = ("a_profiel_id", acc.account_id)
        drafts.append((ctx.as_of_ts - rng.uniform(0.05, 20) * DAY, p, kind, ident))
    drafts.sort(key=lambda t: (t[0], t[1].idx))
    rows = []
    for i, (ts, p, kind, (id_type, id_value)) in enumerate(drafts):
        request_id = f"PR-{41 + ctx.offsets.request + i:04d}"
        rows.append([request_id, kind, id_type, id_value, fmt_local_iso(ts)])
        ctx.privacy_truth.append((request_id, p.person_id))
    ctx.counts["privacy_requests"] = write_csv(
        ctx.source_dir("privacy_requests") / f"privacy_requests_{ctx.as_of.isoformat()}.csv",
        PRIVACY_HEADER,
        rows,
    )
