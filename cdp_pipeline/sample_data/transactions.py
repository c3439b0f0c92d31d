"""The known-person sources: A-profiel, ticketing, registrations, newsletter, e-mail events.

Behaviour follows the latent traits of each person: culture and sport affinity set how
often someone buys and what, engagement sets how much they open and click, and
purchases come in bursts that an e-mail click or web visit precedes. That is the signal
the propensity models are meant to find.
"""

import bisect
from datetime import date, timedelta

from cdp_pipeline.sample_data.context import (
    DAY,
    EMAIL_DAYS,
    CatalogueEvent,
    Context,
    Order,
    Subscription,
    write_csv,
    write_jsonl,
)
from cdp_pipeline.sample_data.names import (
    CULTURE_CATEGORIES,
    EVENT_CATEGORIES,
    NEWSLETTER_LISTS,
    PLACEHOLDER_EMAILS,
)
from cdp_pipeline.sample_data.population import Account, Address, Person, poisson
from cdp_pipeline.sample_data.render import (
    brussels_date,
    cp1252_safe,
    day_start_utc,
    email_part,
    fmt_local_dmy_hm,
    fmt_local_iso,
    fmt_local_ymd_hms,
    fmt_utc_z,
    house_number,
    odd_case_email,
    phone_format,
)

TICKETING_HEADER = [
    "OrderNr",
    "OrderDatum",
    "Kanaal",
    "KlantVoornaam",
    "KlantNaam",
    "KlantEmail",
    "KlantTelefoon",
    "KlantPostcode",
    "AProfielId",
    "EvenementId",
    "Evenement",
    "Locatie",
    "Categorie",
    "VoorstellingDatum",
    "Aantal",
    "BedragEUR",
    "Status",
]
REGISTRATIONS_HEADER = [
    "registration_id",
    "registered_at",
    "activity_id",
    "activity_name",
    "activity_type",
    "participant_first_name",
    "participant_last_name",
    "participant_birth_date",
    "contact_first_name",
    "contact_last_name",
    "contact_email",
    "contact_phone",
    "street",
    "house_number",
    "postcode",
    "city",
    "a_profiel_id",
    "price_eur",
    "status",
]
NEWSLETTER_HEADER = [
    "EMAIL",
    "FIRSTNAME",
    "LASTNAME",
    "LIST",
    "STATUS",
    "OPTIN_DATE",
    "UNSUBSCRIBE_DATE",
    "LANGUAGE",
]
# Share of catalogue events per category.
CATEGORY_WEIGHTS = {
    "concert": 0.22,
    "theater": 0.18,
    "dans": 0.06,
    "familie": 0.12,
    "expo": 0.1,
    "film": 0.1,
    "sport": 0.22,
}
# Which orders make an e-mail of a list relevant to a person (for the click boost).
LIST_CATEGORIES = {
    "cultuur": set(CULTURE_CATEGORIES) - {"familie"},
    "sport": {"sport"},
    "jeugd": {"familie"},
    "stad": set(EVENT_CATEGORIES),
}


def _has_young_kids(p: Person, as_of: date) -> bool:
    return any(m.is_child and m.age_on(as_of) < 12 for m in p.household.members)


def _day_ts(d: date, seconds: float) -> float:
    return day_start_utc(d) + seconds


# ------------------------------------------------------------------ aprofiel


def build_accounts(ctx: Context) -> None:
    """Decide who holds an A-profiel (about 60% of adults) and write the snapshot."""
    rng = ctx.rng
    taken: set[str] = set()
    pending: list[tuple[float, Person, str, str, bool]] = []
    for p in ctx.people:
        age = p.age_on(ctx.as_of)
        if age < 16:
            continue
        email = p.email
        if email is None and p.household.family_email not in taken:
            email = p.household.family_email
        if email is None:
            continue
        prob = 0.3 if age < 18 else 0.52 + 0.45 * p.engagement
        if rng.random() >= prob:
            continue
        taken.add(email)
        adult_days = max(30.0, (age - 16) * 365.25)
        created = ctx.as_of_ts - rng.uniform(5, min(8 * 365, adult_days)) * DAY
        status = "deleted" if rng.random() < 0.03 else "active"
        pending.append((created, p, email, status, True))
        if p.alt_email and rng.random() < 0.25:
            # A forgotten second account under an old address: the same person twice.
            other = ctx.as_of_ts - rng.uniform(5, min(8 * 365, adult_days)) * DAY
            pending.append((other, p, p.alt_email, rng.choice(["active", "deleted"]), False))
    pending.sort(key=lambda t: (t[0], t[1].idx))
    rows: list[dict] = []
    for i, (created, p, email, status, is_main) in enumerate(pending):
        acc_id = f"ap-{ctx.offsets.account + i + 1:06d}"
        updated = created + rng.uniform(0, ctx.as_of_ts - created - 3600)
        if p.household.moved_at and p.household.moved_at > created and rng.random() < 0.7:
            # Most movers update their address in the register some weeks after moving.
            updated = max(
                updated, min(ctx.as_of_ts - 3600, p.household.moved_at + rng.uniform(1, 60) * DAY)
            )
        acc = Account(acc_id, p, email, created, updated, status, is_main)
        p.accounts.append(acc)
        rows.append(_account_row(ctx, acc))
        ctx.add_truth("aprofiel", acc_id, "account", p)
    ctx.counts["aprofiel"] = write_jsonl(
        ctx.source_dir("aprofiel") / f"aprofiel_{ctx.as_of.isoformat()}.jsonl", rows
    )


def _account_row(ctx: Context, acc: Account) -> dict:
    rng = ctx.rng
    p = acc.person
    hh = p.household
    addr: Address | None = hh.address_at(acc.updated_at)
    if rng.random() < 0.08:
        addr = None
    first, last = ctx.names(p, "aprofiel")
    birth = p.birth_date
    birth_s = birth.isoformat()
    if birth.day <= 12 and rng.random() < 0.01:
        birth_s = date(birth.year, birth.day, birth.month).isoformat()
    r = rng.random()
    phone = None
    if p.mobile and r < 0.78:
        phone = phone_format(p.mobile, rng)
    elif hh.landline and r < 0.9:
        phone = phone_format(hh.landline, rng)
    email = acc.email
    if rng.random() < 0.3:
        email = odd_case_email(email, rng)
    return {
        "account_id": acc.account_id,
        "email": email,
        "given_name": first,
        "family_name": last,
        "birth_date": birth_s,
        "gender": p.gender,
        "phone": phone,
        "address": None
        if addr is None
        else {
            "street": addr.street,
            "number": addr.number,
            "box": addr.box or None,
            "postcode": addr.postcode,
            "municipality": addr.municipality,
            "country": "BE",
        },
        "language": p.language,
        "created_at": fmt_local_iso(acc.created_at),
        "updated_at": fmt_local_iso(acc.updated_at),
        "status": acc.status,
    }


# ------------------------------------------------------------------ catalogue + ticketing


def build_catalogue(ctx: Context) -> None:
    """Performances and matches from the start of the history to four months ahead."""
    rng = ctx.rng
    n_events = max(120, len(ctx.people) // 120)
    cats = list(CATEGORY_WEIGHTS)
    weights = list(CATEGORY_WEIGHTS.values())
    start = ctx.as_of - timedelta(days=560)
    span = 560 + 120
    hours = {
        "concert": (20, 0),
        "theater": (20, 15),
        "dans": (20, 0),
        "familie": (15, 0),
        "expo": (10, 0),
        "film": (21, 0),
        "sport": (19, 30),
    }
    drafts = []
    for _ in range(n_events):
        cat = rng.choices(cats, weights=weights, k=1)[0]
        venues, stems, (lo, hi) = EVENT_CATEGORIES[cat]
        d = start + timedelta(days=rng.randrange(span))
        h, m = hours[cat]
        perf = _day_ts(d, h * 3600 + m * 60)
        price = rng.randint(lo * 2, hi * 2) / 2
        drafts.append((perf, cat, rng.choice(venues), rng.choice(stems), price))
    drafts.sort(key=lambda t: t[0])
    for i, (perf, cat, venue, stem, price) in enumerate(drafts):
        number = 4000 + ctx.offsets.event + i
        event_id = f"EV-{number}"
        slug = email_part(stem.replace(" ", "-")) + f"-{number}"
        ctx.catalogue.append(
            CatalogueEvent(event_id, stem, venue, cat, perf, price, f"/agenda/{slug}")
        )


def _event_index(ctx: Context) -> dict[str, tuple[list[float], list[CatalogueEvent]]]:
    index: dict[str, tuple[list[float], list[CatalogueEvent]]] = {}
    for ev in ctx.catalogue:
        times, events = index.setdefault(ev.category, ([], []))
        times.append(ev.perf_ts)
        events.append(ev)
    return index


def _pick_event(ctx: Context, index: dict, cat: str, ts: float) -> CatalogueEvent:
    """An event of ``cat`` playing within ten weeks after ``ts`` (or the next one)."""
    times, events = index.get(cat) or index["concert"]
    lo = bisect.bisect_right(times, ts + 3 * 3600)
    hi = bisect.bisect_right(times, ts + 70 * DAY)
    if lo >= len(events):
        return ctx.catalogue[-1]
    if hi <= lo:
        return events[lo]
    return events[ctx.rng.randrange(lo, hi)]


def _culture_cat(ctx: Context, p: Person) -> str:
    weights = list(p.cat_weights)
    if _has_young_kids(p, ctx.as_of):
        weights[CULTURE_CATEGORIES.index("familie")] *= 4
    return ctx.rng.choices(CULTURE_CATEGORIES, weights=weights, k=1)[0]


def build_orders(ctx: Context) -> None:
    """Ticket orders in bursts, by category preference, then write the ticketing CSV."""
    rng = ctx.rng
    index = _event_index(ctx)
    start = ctx.history_start
    for p in ctx.people:
        if p.is_child or p.age_on(ctx.as_of) < 18:
            continue
        rate_c = 3.2 * p.culture * (0.35 + p.engagement)
        rate_s = 2.4 * p.sport * (0.35 + p.engagement)
        end = min(ctx.as_of_ts, p.lapsed_at or ctx.as_of_ts) - 3600
        if end <= start:
            continue
        years = (end - start) / (365.25 * DAY)
        n_bursts = poisson(rng, (rate_c + rate_s) * years / 1.6)
        kassa_p = 0.2 + (0.25 if p.age_on(ctx.as_of) > 65 else 0.0)
        mine: list[Order] = []
        for _ in range(n_bursts):
            t0 = rng.uniform(start, end)
            cat = _culture_cat(ctx, p) if rng.random() < rate_c / (rate_c + rate_s) else "sport"
            for j in range(1 + poisson(rng, 0.6)):
                t = t0 if j == 0 else t0 + rng.uniform(0.5, 30) * DAY
                if t >= end:
                    continue
                if j and rng.random() < 0.35:
                    cat = (
                        _culture_cat(ctx, p)
                        if rng.random() < rate_c / (rate_c + rate_s)
                        else "sport"
                    )
                # The webshop mails the tickets, so people without e-mail buy at the desk.
                has_email = bool(p.contact_email or p.alt_email)
                channel = "kassa" if rng.random() < kassa_p or not has_email else "web"
                # Orders happen at plausible local hours: box offices open 10-20h.
                day = brussels_date(t)
                hour = rng.uniform(10, 20) if channel == "kassa" else rng.uniform(7, 23.9)
                t = _day_ts(day, hour * 3600)
                if t >= end or t < start:
                    continue
                event = _pick_event(ctx, index, cat, t)
                qty = rng.choices([1, 2, 3, 4, 5, 6], weights=[35, 40, 10, 9, 3, 3], k=1)[0]
                status = rng.choices(
                    ["betaald", "terugbetaald", "geannuleerd"], weights=[94, 4, 2], k=1
                )[0]
                acc = p.account_at(t) if channel == "web" else None
                logged_in = acc.account_id if acc and rng.random() < 0.7 else ""
                mine.append(Order(t, p, channel, event, qty, status, logged_in))
        if mine:
            mine.sort(key=lambda o: o.ts)
            ctx.orders_by_person[p.idx] = mine
            ctx.orders.extend(mine)
    ctx.orders.sort(key=lambda o: (o.ts, o.person.idx))
    rows = []
    for i, o in enumerate(ctx.orders):
        year = brussels_date(o.ts).year
        o.order_nr = f"T-{year}-{100000 + ctx.offsets.order + i}"
        rows.append(_order_row(ctx, o))
        ctx.add_truth("ticketing", o.order_nr, "buyer", o.person)
    ctx.counts["ticketing"] = write_csv(
        ctx.source_dir("ticketing") / f"ticketing_{ctx.as_of.isoformat()}.csv",
        TICKETING_HEADER,
        rows,
        delimiter=";",
        encoding="cp1252",
        lineterminator="\r\n",
    )


def _order_row(ctx: Context, o: Order) -> list[str]:
    rng = ctx.rng
    p = o.person
    hh = p.household
    first, last = ctx.names(p, o.channel)
    # The whole shop runs on Windows-1252: letters it cannot hold are transliterated.
    first, last = cp1252_safe(first), cp1252_safe(last)
    email = phone = ""
    postcode = hh.address_at(o.ts, rng.uniform(0, 45) * DAY).postcode
    if o.channel == "web":
        r = rng.random()
        email = (p.alt_email if p.alt_email and r < 0.1 else p.contact_email) or p.alt_email or ""
        if rng.random() < 0.15:
            email = odd_case_email(email, rng)
        if p.phone and rng.random() < 0.6:
            phone = phone_format(p.phone, rng)
    else:
        r = rng.random()
        if r < 0.17:
            email = rng.choice(PLACEHOLDER_EMAILS)
        elif r < 0.45 and p.contact_email:
            email = p.contact_email
        if p.phone and rng.random() < 0.3:
            phone = phone_format(p.phone, rng)
        if rng.random() < 0.2:
            postcode = ""
    amount = f"{o.event.price * o.quantity:.2f}".replace(".", ",")
    return [
        o.order_nr,
        fmt_local_dmy_hm(o.ts),
        o.channel,
        first,
        last,
        email,
        phone,
        postcode,
        o.a_profiel_id,
        o.event.event_id,
        o.event.name,
        o.event.venue,
        o.event.category,
        fmt_local_dmy_hm(o.event.perf_ts),
        str(o.quantity),
        amount,
        o.status,
    ]


# ------------------------------------------------------------------ registrations


def _activities(ctx: Context) -> list[tuple[str, str, str, str, float, int, int, float]]:
    """(id, name, type, kind, start, min_age, max_age, price) for two years of activities."""
    acts = []
    for year in (ctx.as_of.year - 2, ctx.as_of.year - 1, ctx.as_of.year, ctx.as_of.year + 1):
        k = 0
        weeks = [
            ("krokus", date(year, 2, 24), 1),
            ("pasen", date(year, 4, 7), 2),
            ("zomer", date(year, 7, 1), 8),
            ("herfst", date(year, 10, 27), 1),
        ]
        for season, first_day, n_weeks in weeks:
            for w in range(n_weeks):
                d = first_day + timedelta(days=7 * w)
                k += 1
                label = f"Sportkamp {season} week {w + 1}" if n_weeks > 1 else f"Sportkamp {season}"
                acts.append(
                    (
                        f"SK-{year}-{k:02d}",
                        label,
                        "sportkamp",
                        "sport",
                        _day_ts(d, 9 * 3600),
                        6,
                        14,
                        85.0,
                    )
                )
                acts.append(
                    (
                        f"KK-{year}-{k:02d}",
                        label.replace("Sportkamp", "Kleuterkamp"),
                        "sportkamp",
                        "sport",
                        _day_ts(d, 9 * 3600),
                        3,
                        5,
                        70.0,
                    )
                )
        courses = [
            ("Cursus Spaans A1", "culture", 18, 99, 120.0),
            ("Yoga voor beginners", "sport", 18, 99, 90.0),
            ("Start to Run", "sport", 16, 99, 45.0),
            ("Zwemles kinderen", "sport", 5, 12, 60.0),
            ("Tekenatelier", "culture", 6, 12, 75.0),
            ("Keramiek", "culture", 18, 99, 150.0),
            ("Fotografie", "culture", 16, 99, 110.0),
            ("Muziekatelier", "culture", 8, 15, 65.0),
        ]
        for sem, d in (("V", date(year, 2, 3)), ("N", date(year, 9, 15))):
            for j, (name, kind, lo, hi, price) in enumerate(courses):
                acts.append(
                    (
                        f"CU-{year}{sem}-{j + 1:02d}",
                        name,
                        "cursus",
                        kind,
                        _day_ts(d + timedelta(days=j), 19 * 3600),
                        lo,
                        hi,
                        price,
                    )
                )
        for month in range(1, 13):
            d = date(year, month, 10)
            acts.append(
                (
                    f"BI-{year}-{month:02d}-1",
                    "Voorleesuurtje",
                    "bibliotheek",
                    "culture",
                    _day_ts(d, 14 * 3600),
                    3,
                    8,
                    0.0,
                )
            )
            acts.append(
                (
                    f"BI-{year}-{month:02d}-2",
                    "Lezing in de bibliotheek",
                    "bibliotheek",
                    "culture",
                    _day_ts(d, 20 * 3600),
                    18,
                    99,
                    5.0,
                )
            )
        city = [
            ("EV-{y}-10M", "Antwerp 10 Miles", "sport", date(year, 4, 27), 16, 99, 35.0),
            ("EV-{y}-SL", "Stadsloop", "sport", date(year, 9, 21), 8, 99, 15.0),
            ("EV-{y}-OM", "Open Monumentendag", "culture", date(year, 9, 14), 0, 99, 0.0),
            ("EV-{y}-ST", "Sinterklaasintrede", "city", date(year, 11, 15), 2, 10, 0.0),
        ]
        for aid, name, kind, d, lo, hi, price in city:
            acts.append(
                (aid.format(y=year), name, "evenement", kind, _day_ts(d, 10 * 3600), lo, hi, price)
            )
    lo_ts = ctx.history_start + 30 * DAY
    hi_ts = ctx.as_of_ts + 60 * DAY
    return [a for a in acts if lo_ts <= a[4] <= hi_ts]


def _city_name(addr: Address, rng_value: float) -> str:
    if rng_value < 0.7:
        return addr.municipality
    if rng_value < 0.85 and addr.postcode.startswith("2") and addr.postcode < "2700":
        return "Antwerpen"
    if rng_value < 0.95 and addr.municipality not in ("Antwerpen",):
        return f"Antwerpen-{addr.municipality}" if addr.postcode < "2700" else addr.municipality
    return addr.municipality.upper()


def build_registrations(ctx: Context) -> None:
    """Camps, courses, library and city events; parents register their children."""
    rng = ctx.rng
    acts = _activities(ctx)
    by_age: dict[int, dict[str, list]] = {}
    for age in range(0, 100):
        kinds: dict[str, list] = {}
        for a in acts:
            if a[5] <= age <= a[6]:
                kinds.setdefault(a[3], []).append(a)
        by_age[age] = kinds
    drafts = []
    for p in ctx.people:
        age = p.age_on(ctx.as_of)
        if age < 3:
            continue
        if age < 18:
            lam = 0.3 + 2.5 * p.sport + 0.8 * p.culture
        else:
            lam = 0.05 + 1.2 * p.sport * p.engagement + 0.6 * p.culture * p.engagement
        for _ in range(poisson(rng, lam)):
            kinds = by_age[min(99, age)]
            if not kinds:
                continue
            names = sorted(kinds)
            w = [{"sport": p.sport + 0.05, "culture": p.culture + 0.05}.get(k, 0.05) for k in names]
            act = rng.choice(kinds[rng.choices(names, weights=w, k=1)[0]])
            reg_ts = act[4] - rng.uniform(3, 60) * DAY
            if reg_ts >= ctx.as_of_ts or reg_ts < ctx.history_start:
                continue
            drafts.append((reg_ts, p.idx, p, act))
    drafts.sort(key=lambda t: (t[0], t[1]))
    rows = []
    for i, (reg_ts, _, p, act) in enumerate(drafts):
        reg_id = f"R-{80000 + ctx.offsets.registration + i}"
        age = p.age_on(brussels_date(reg_ts))
        adults = [m for m in p.household.members if not m.is_child]
        contact = p
        if p.is_child and adults and (age < 16 or rng.random() < 0.6 or not p.contact_email):
            # The parent who organises things tends to be the same one each time.
            contact = adults[0] if rng.random() < 0.7 or len(adults) == 1 else adults[1]
        rows.append(_registration_row(ctx, reg_id, reg_ts, p, contact, act))
        ctx.add_truth("registrations", reg_id, "participant", p)
        ctx.add_truth("registrations", reg_id, "contact", contact)
    ctx.counts["registrations"] = write_csv(
        ctx.source_dir("registrations") / f"registrations_{ctx.as_of.isoformat()}.csv",
        REGISTRATIONS_HEADER,
        rows,
        encoding="utf-8-sig",
    )


def _registration_row(
    ctx: Context, reg_id: str, reg_ts: float, p: Person, contact: Person, act: tuple
) -> list[str]:
    rng = ctx.rng
    pf, pl = ctx.names(p, "registration")
    if contact is p:
        cf, cl = pf, pl
    else:
        cf, cl = ctx.names(contact, "registration")
        # A child's surname is typed the way the parent types the family name.
        if pl != p.last_name and p.last_name == contact.last_name:
            pl = cl
    email = contact.contact_email or ""
    if email and rng.random() < 0.12:
        email = odd_case_email(email, rng).strip()
    phone = ""
    if contact.phone and rng.random() < 0.9:
        phone = phone_format(contact.phone, rng)
    addr = p.household.address_at(reg_ts, rng.uniform(0, 90) * DAY)
    acc = contact.account_at(reg_ts)
    a_id = acc.account_id if acc and rng.random() < 0.55 else ""
    birth = p.birth_date.isoformat()
    status = rng.choices(["confirmed", "cancelled", "waitlisted"], weights=[86, 7, 7], k=1)[0]
    return [
        reg_id,
        fmt_local_iso(reg_ts),
        act[0],
        act[1],
        act[2],
        pf,
        pl,
        birth,
        cf,
        cl,
        email,
        phone,
        addr.street,
        house_number(addr.number, addr.box, rng),
        addr.postcode,
        _city_name(addr, rng.random()),
        a_id,
        f"{act[7]:.2f}",
        status,
    ]


# ------------------------------------------------------------------ newsletter


def build_newsletter(ctx: Context) -> None:
    """ESP contacts, one row per (list, e-mail); a family address subscribes once a list."""
    rng = ctx.rng
    used: set[tuple[str, str]] = set()
    for p in ctx.people:
        age = p.age_on(ctx.as_of)
        if age < 15 or rng.random() >= 0.15 + 0.7 * p.engagement:
            continue
        probs = {
            "cultuur": 0.1 + 1.5 * p.culture,
            "sport": 0.05 + 1.5 * p.sport,
            "jeugd": 0.5 if _has_young_kids(p, ctx.as_of) else 0.0,
            "stad": 0.3,
        }
        chosen = [lst for lst in NEWSLETTER_LISTS if rng.random() < probs[lst]]
        if not chosen:
            chosen = ["stad"]
        base_email = p.contact_email
        if p.alt_email and (base_email is None or rng.random() < 0.2):
            base_email = p.alt_email
        if base_email is None:
            continue
        for lst in chosen:
            email = base_email
            if (lst, email) in used:
                continue
            used.add((lst, email))
            _subscription(ctx, p, lst, email)
    out = []
    for sub in ctx.subscriptions:
        first, last = ctx.names(sub.person, "newsletter")
        shown = sub.email if rng.random() < 0.92 else odd_case_email(sub.email, rng).strip()
        out.append(
            [
                shown,
                first,
                last,
                sub.list_name,
                sub.status,
                fmt_local_ymd_hms(sub.optin_ts) if sub.optin_ts else "",
                fmt_local_ymd_hms(sub.unsub_ts) if sub.unsub_ts else "",
                sub.person.language,
            ]
        )
        ctx.add_truth(
            "newsletter", f"{sub.list_name}:{shown.strip().lower()}", "subscriber", sub.person
        )
    ctx.counts["newsletter"] = write_csv(
        ctx.source_dir("newsletter") / f"newsletter_{ctx.as_of.isoformat()}.csv",
        NEWSLETTER_HEADER,
        out,
    )


def _subscription(ctx: Context, p: Person, lst: str, email: str) -> None:
    rng = ctx.rng
    status = rng.choices(
        ["subscribed", "unsubscribed", "cleaned", "pending"],
        weights=[74, 12, 5 if email != p.alt_email else 25, 9],
        k=1,
    )[0]
    optin = ctx.as_of_ts - rng.uniform(2, 6 * 365) * DAY
    unsub = None
    if status == "unsubscribed":
        unsub = rng.uniform(optin, ctx.as_of_ts - 3600)
    elif status == "cleaned":
        unsub = rng.uniform(max(optin, ctx.as_of_ts - EMAIL_DAYS * DAY), ctx.as_of_ts - 3600)
    ctx.subscriptions.append(
        Subscription(
            p,
            lst,
            email,
            status,
            None if status == "pending" else optin,
            unsub if status == "unsubscribed" else None,
            unsub if status == "cleaned" else None,
        )
    )


# ------------------------------------------------------------------ email events


def _campaigns(ctx: Context) -> list[tuple[float, str, str]]:
    """(send time, campaign id, list) over the last EMAIL_DAYS days."""
    out = []
    start = ctx.as_of - timedelta(days=EMAIL_DAYS)
    # Day of week and cadence per list: culture weekly on Thursday, the others less often.
    plan = {"cultuur": (3, 1), "sport": (1, 2), "stad": (0, 2), "jeugd": (2, 4)}
    for offset in range(EMAIL_DAYS):
        d = start + timedelta(days=offset)
        iso_year, week, weekday = d.isocalendar()
        for lst, (dow, every) in plan.items():
            if weekday - 1 == dow and week % every == 0:
                ts = _day_ts(d, 10 * 3600)
                out.append((ts, f"c-{iso_year}-{week:02d}-{lst}", lst))
    out.sort()
    return out


def build_email_events(ctx: Context) -> None:
    """Sends, opens, clicks, bounces and unsubscribes for the newsletter contacts."""
    rng = ctx.rng
    campaigns = _campaigns(ctx)
    by_list: dict[str, list[tuple[float, str]]] = {}
    for ts, cid, lst in campaigns:
        by_list.setdefault(lst, []).append((ts, cid))
    index = _event_index(ctx)
    rows: list[tuple[float, int, dict]] = []
    seq = 0
    for sub in ctx.subscriptions:
        if sub.status == "pending" or sub.optin_ts is None:
            continue
        p = sub.person
        stop = sub.unsub_ts or sub.bounce_ts or ctx.as_of_ts
        last_cid = ""
        orders = ctx.orders_by_person.get(p.idx, [])
        order_ts = [o.ts for o in orders]
        cats = LIST_CATEGORIES[sub.list_name]
        bounced = False
        for ts, cid in by_list.get(sub.list_name, []):
            if ts < sub.optin_ts or bounced:
                continue
            if ts > stop:
                if sub.status == "cleaned":
                    rows.append(
                        (
                            ts,
                            seq,
                            {
                                "email": sub.email,
                                "campaign_id": cid,
                                "event": "bounce",
                                "url": None,
                                "ts": fmt_utc_z(ts + rng.uniform(5, 300)),
                            },
                        )
                    )
                    seq += 1
                    bounced = True
                break
            sent = ts + rng.uniform(0, 1800)
            last_cid = cid
            rows.append(
                (
                    sent,
                    seq,
                    {
                        "email": sub.email,
                        "campaign_id": cid,
                        "event": "sent",
                        "url": None,
                        "ts": fmt_utc_z(sent),
                    },
                )
            )
            seq += 1
            # An order in the three weeks after the mail means the person was in the
            # market: they were far more likely to open and click it.
            k = bisect.bisect_right(order_ts, ts)
            hot = None
            while k < len(orders) and orders[k].ts <= ts + 21 * DAY:
                if orders[k].event.category in cats:
                    hot = orders[k]
                    break
                k += 1
            p_open = 0.85 if hot else 0.08 + 0.45 * p.engagement
            if rng.random() >= p_open:
                continue
            opened = sent + rng.expovariate(1 / 7200)
            if opened >= ctx.as_of_ts:
                continue
            rows.append(
                (
                    opened,
                    seq,
                    {
                        "email": sub.email,
                        "campaign_id": cid,
                        "event": "open",
                        "url": None,
                        "ts": fmt_utc_z(opened),
                    },
                )
            )
            seq += 1
            p_click = 0.7 if hot else 0.05 + 0.3 * p.engagement * max(p.culture, p.sport)
            if rng.random() < p_click:
                clicked = opened + rng.uniform(5, 600)
                if hot is not None:
                    ev = hot.event
                else:
                    cat = _culture_cat(ctx, p) if sub.list_name != "sport" else "sport"
                    ev = _pick_event(ctx, index, cat, ts)
                if clicked < ctx.as_of_ts:
                    rows.append(
                        (
                            clicked,
                            seq,
                            {
                                "email": sub.email,
                                "campaign_id": cid,
                                "event": "click",
                                "url": f"https://www.antwerpen.be{ev.path}",
                                "ts": fmt_utc_z(clicked),
                            },
                        )
                    )
                    seq += 1
        if (
            sub.status == "unsubscribed"
            and sub.unsub_ts
            and sub.unsub_ts >= ctx.as_of_ts - EMAIL_DAYS * DAY
        ):
            # The unsubscribe link of the last mail; the preference centre has no campaign.
            rows.append(
                (
                    sub.unsub_ts,
                    seq,
                    {
                        "email": sub.email,
                        "campaign_id": last_cid,
                        "event": "unsubscribe",
                        "url": None,
                        "ts": fmt_utc_z(sub.unsub_ts),
                    },
                )
            )
            seq += 1
    rows.sort(key=lambda t: (t[0], t[1]))
    for _, _, row in rows:
        if row["url"] is None:
            del row["url"]
    ctx.counts["email_events"] = write_jsonl(
        ctx.source_dir("email_events") / f"email_events_{ctx.as_of.isoformat()}.jsonl",
        (r for _, _, r in rows),
    )


__all__ = [
    "build_accounts",
    "build_catalogue",
    "build_email_events",
    "build_newsletter",
    "build_orders",
    "build_registrations",
]
