"""Entry point: one export of every source for a synthetic population, plus the truth."""

import csv
import logging
import random
import time
from datetime import date
from pathlib import Path

from cdp_pipeline.sample_data.context import Context, IdOffsets
from cdp_pipeline.sample_data.digital import (
    build_consents,
    build_devices,
    build_privacy_requests,
    build_web_events,
)
from cdp_pipeline.sample_data.population import PopulationBuilder
from cdp_pipeline.sample_data.render import day_start_utc
from cdp_pipeline.sample_data.transactions import (
    build_accounts,
    build_catalogue,
    build_email_events,
    build_newsletter,
    build_orders,
    build_registrations,
)

logger = logging.getLogger(__name__)

# A fixed export date keeps the output byte-identical from one day to the next.
DEFAULT_AS_OF = date(2025, 12, 1)

PEOPLE_HEADER = [
    "person_id",
    "household_id",
    "first_name",
    "last_name",
    "gender",
    "birth_date",
    "is_child",
    "origin",
    "email",
    "family_email",
    "alt_email",
    "mobile",
    "landline",
    "street",
    "number",
    "box",
    "postcode",
    "municipality",
    "moved",
    "old_postcode",
    "a_profiel_ids",
    "culture_affinity",
    "sport_affinity",
    "engagement",
]


def generate(
    out_dir: Path, people: int, seed: int, as_of: date | None = None, web_visit_factor: float = 1.0
) -> dict[str, int]:
    """Write one export of every source in ``sources.md`` for ``people`` synthetic people.

    Files land in ``out_dir/<source>/`` in the exact delivery formats; ``out_dir/_truth/``
    holds the true person of every person-bearing record (``records.csv``), the people
    themselves (``people.csv``) and the requester of every privacy request. The same
    ``seed`` and ``as_of`` always give byte-identical files.

    Args:
        out_dir: landing folder to write into (created if missing).
        people: size of the population.
        seed: seed of the random generator.
        as_of: export date; defaults to 2025-12-01, never today, for reproducibility.
        web_visit_factor: scales website visits and app sessions per visitor (1.0 gives
            about 4 web events per person; see ``--web-visit-factor`` of the command).

    Returns:
        Rows written per source (web_events summed over its daily files).
    """
    if people < 1:
        raise ValueError(f"people must be at least 1, got {people}")
    as_of = as_of or DEFAULT_AS_OF
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = random.Random(seed)
    ctx = build_sources(
        out_dir,
        PopulationBuilder(people, rng, as_of),
        rng,
        as_of,
        web_visit_factor=web_visit_factor,
    )
    _write_truth(ctx)
    logger.info(
        "Sample data for %d people written to %s in %.1fs: %s",
        people,
        out_dir,
        time.perf_counter() - started,
        ctx.counts,
    )
    return dict(ctx.counts)


def build_sources(
    out_dir: Path,
    builder: PopulationBuilder,
    rng: random.Random,
    as_of: date,
    *,
    offsets: IdOffsets | None = None,
    taken_ids: set[str] | None = None,
    web_visit_factor: float = 1.0,
) -> Context:
    """Build the population of ``builder`` and write every source's export for it.

    ``offsets`` and ``taken_ids`` (random ids already used) keep the ids of a next
    delivery clear of an earlier one's; the truth is left for the caller to write.
    """
    if web_visit_factor <= 0:
        raise ValueError(f"web_visit_factor must be positive, got {web_visit_factor}")
    persons, households = builder.build()
    ctx = Context(
        out_dir=out_dir,
        as_of=as_of,
        as_of_ts=day_start_utc(as_of),
        rng=rng,
        people=persons,
        households=households,
        offsets=offsets or IdOffsets(),
        web_visit_factor=web_visit_factor,
    )
    ctx._ids.update(taken_ids or ())
    logger.info("Built %d people in %d households", len(persons), len(households))
    steps = (
        build_accounts,
        build_catalogue,
        build_orders,
        build_registrations,
        build_newsletter,
        build_email_events,
        build_devices,
        build_web_events,
        build_consents,
        build_privacy_requests,
    )
    for step in steps:
        t0 = time.perf_counter()
        step(ctx)
        logger.info("%s done in %.1fs", step.__name__, time.perf_counter() - t0)
    return ctx


def _write_truth(ctx: Context) -> None:
    truth_dir = ctx.out_dir / "_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    with (truth_dir / "records.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["source", "record_key", "role", "person_id"])
        writer.writerows(ctx.truth)
    with (truth_dir / "people.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(PEOPLE_HEADER)
        for p in ctx.people:
            hh = p.household
            a = hh.address
            writer.writerow(
                [
                    p.person_id,
                    hh.household_id,
                    p.first_name,
                    p.last_name,
                    p.gender,
                    p.birth_date.isoformat(),
                    "true" if p.is_child else "false",
                    p.origin,
                    p.email or "",
                    hh.family_email or "",
                    p.alt_email or "",
                    p.mobile or "",
                    hh.landline or "",
                    a.street,
                    a.number,
                    a.box,
                    a.postcode,
                    a.municipality,
                    "true" if hh.old_address else "false",
                    hh.old_address.postcode if hh.old_address else "",
                    "|".join(acc.account_id for acc in p.accounts),
                    f"{p.culture:.3f}",
                    f"{p.sport:.3f}",
                    f"{p.engagement:.3f}",
                ]
            )
    with (truth_dir / "privacy_requests.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["request_id", "person_id"])
        writer.writerows(ctx.privacy_truth)
