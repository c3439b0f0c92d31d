"""Identity resolution: int_identity records → identity.record_profiles, links, history.

The core is plain Python over a DuckDB connection so it can be tested without
Dagster. Order of work:

1. normalise every record once (``prepare``), placeholders become null;
2. deterministic links on strong identifiers (A-profiel id, device, web
   identify/alias, e-mail or phone *with compatible names*);
3. Splink on the records that carry a name, e-mail or phone; pairs above the
   threshold that pass the guards (child/parent, birth date, first name,
   twins) become links; pairs above the review threshold, and vetoed pairs, go
   to ``identity.review_queue``;
4. manual decisions: ``same`` adds links, ``different`` forbids any path;
5. constrained clustering: links are added strongest first (``link_priority``,
   then weight) and a link is dropped when it would join records that must stay
   apart, break an identifier limit or exceed the maximum profile size. This is
   the same as splitting a violating connected component by dropping its
   weakest links first, without re-running components after every drop;
6. same first name, last name and postcode join last, when unambiguous
   (``_join_namesakes``);
7. stable profile ids from the previous run, the history of changes, the link
   evidence per attribute and the golden attributes (``golden.py``).

Nights are incremental (``incremental.py``): steps 2 to 7 run only on the
records whose result can change since the last night; the rest is carried over.
"""

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from rapidfuzz.distance import DamerauLevenshtein, JaroWinkler

from cdp_pipeline.identity import incremental
from cdp_pipeline.identity.config import MatchingConfig, load_config
from cdp_pipeline.identity.decisions import Decisions, read_decisions
from cdp_pipeline.identity.golden import build_golden
from cdp_pipeline.identity.normalise import NicknameTable
from cdp_pipeline.identity.prepare import nickname_table, splink_frame
from cdp_pipeline.identity.splink_model import PAIR_SCHEMA, ModelRun, score_pairs
from cdp_pipeline.settings import get_settings

logger = logging.getLogger(__name__)

RECORDS_TABLE = "intermediate.int_identity__records"
WEB_IDENTITIES_TABLE = "intermediate.int_identity__web_identities"


@dataclass
class ResolutionStats:
    """What one run did, in counts only (no person's data)."""

    run_id: str
    records: int = 0
    profiles: int = 0
    links_by_type: dict[str, int] = field(default_factory=dict)
    auto_merged_pairs: int = 0  # Splink pairs above the threshold that became links
    pairs_blocked_by_guards: int = 0
    review_pairs: int = 0  # open pairs in identity.review_queue
    blocked_by_reason: dict[str, int] = field(default_factory=dict)
    largest_profile: int = 0
    singletons_rate: float = 0.0
    model: str = "disabled"  # reused, trained, priors or disabled
    pairs_scored: int = 0  # candidate pairs the Splink model scored in this run
    incremental: bool = False  # only pairs with a new or changed record were scored
    records_rescored: int = 0  # records new or changed since the last scored state
    # records clustered again (the scope of an incremental night; all on a full one)
    records_reclustered: int = 0
    history: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase


@dataclass(frozen=True)
class Link:
    left: str
    right: str
    link_type: str
    weight: float | None
    probability: float | None
    evidence: str
    # A model link on shared household-like attributes only (no person_id agreeing):
    # with guards.cluster_birth_dates it may not join clusters whose birth dates differ.
    weak: bool = False


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class _People:
    """Per-record attributes for the name-compatibility and guard rules."""

    def __init__(self, prepared: pl.DataFrame, nicknames: NicknameTable) -> None:
        cols = [
            "record_id",
            "first_key",
            "first_canon",
            "last_key",
            "birth_date",
            "is_child_record",
            "household_key",
            "phone_type",
        ]
        self.rows = {r["record_id"]: r for r in prepared.select(cols).iter_rows(named=True)}
        self.nicknames = nicknames

    def household_pair(self, a: str, b: str) -> bool:
        """A child record and the contact person of the same registration."""
        ra, rb = self.rows[a], self.rows[b]
        return bool(
            (ra["is_child_record"] and ra["household_key"] == b)
            or (rb["is_child_record"] and rb["household_key"] == a)
        )

    def names_compatible(self, a: str, b: str, need_last: bool) -> bool:
        """Same first name (or nickname) and a compatible last name, or the two swapped."""
        ra, rb = self.rows[a], self.rows[b]
        fa, fb, la, lb = ra["first_key"], rb["first_key"], ra["last_key"], rb["last_key"]
        if fa is None or fb is None:
            return False
        if la and lb and fa == lb and la == fb and fa != la:
            return True  # first and last name swapped in one system
        if not (fa == fb or set(ra["first_canon"]) & set(rb["first_canon"])):
            return False
        if la is None or lb is None:
            return not need_last
        return (
            la == lb
            or JaroWinkler.similarity(la, lb) >= 0.92
            or (min(len(la), len(lb)) >= 4 and (la in lb or lb in la))
        )

    def dates_conflict(self, a: str, b: str) -> bool:
        da, db = self.rows[a]["birth_date"], self.rows[b]["birth_date"]
        if da is None or db is None or da == db:
            return False
        swapped = da.year == db.year and da.month == db.day and da.day == db.month
        return not swapped

    def same_person_evidence(self, a: str, b: str, need_last: bool) -> bool:
        return (
            not self.household_pair(a, b)
            and not self.dates_conflict(a, b)
            and self.names_compatible(a, b, need_last)
        )


def _star_links(groups: dict[str, list[tuple[str, str, int]]], evidence_key: str) -> list[Link]:
    """Link every member of a group to its anchor (the member with the lowest rank)."""
    links = []
    for key_members in groups.values():
        members = sorted(set(key_members), key=lambda m: (m[2], m[0]))
        anchor = members[0][0]
        for record_id, link_type, _ in members[1:]:
            if record_id == anchor:
                continue
            evidence = json.dumps({evidence_key: {"level": "exact", "weight": None}})
            links.append(Link(anchor, record_id, link_type, None, 1.0, evidence))
    return links


def _identifier_links(prepared: pl.DataFrame, web: pl.DataFrame) -> list[Link]:
    """A-profiel id, web identify/alias and device links (stars around one anchor)."""
    accounts: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    holders = prepared.filter(pl.col("a_profiel_id").is_not_null() & ~pl.col("is_child_record"))
    for record_id, account, source, anonymous in holders.select(
        "record_id", "a_profiel_id", "source", "anonymous_id"
    ).iter_rows():
        if anonymous is not None:  # a visitor's account comes from identify/alias calls
            accounts[account].append((record_id, "web_identify", 2))
        else:
            accounts[account].append((record_id, "a_profiel_id", 0 if source == "aprofiel" else 1))
    visitors = prepared.filter(pl.col("anonymous_id").is_not_null()).select(
        "record_id", "anonymous_id"
    )
    if len(web) and len(visitors):
        identified = visitors.join(web, on="anonymous_id", how="inner")
        for record_id, _, user_id in identified.select(
            "record_id", "anonymous_id", "user_id"
        ).iter_rows():
            accounts[user_id].append((record_id, "web_identify", 2))
    links = _star_links(accounts, "a_profiel_id")

    devices: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for record_id, device in (
        prepared.filter(pl.col("device_id").is_not_null())
        .select("record_id", "device_id")
        .iter_rows()
    ):
        devices[device].append((record_id, "device_id", 0))
    # An app install's anonymousId is the device id: the visitor is that device.
    for record_id, anonymous in visitors.iter_rows():
        if anonymous in devices:
            devices[anonymous].append((record_id, "device_id", 1))
    links += _star_links({k: v for k, v in devices.items() if len(v) > 1}, "device_id")
    return links


@dataclass(frozen=True)
class NamelessGroup:
    """Records without a name that share an e-mail (or mobile phone) with named records.

    They join the named records' profile only if, after every other link, all the
    named records of that value ended up in one profile: the value is then one
    person's, not a family's (decided in ``_cluster``).
    """

    column: str
    link_type: str
    named: tuple[str, ...]
    nameless: tuple[str, ...]


def _contact_links(
    prepared: pl.DataFrame,
    people: _People,
    column: str,
    link_type: str,
    max_group: int,
    deferred: list[NamelessGroup] | None = None,
) -> list[Link]:
    """Same e-mail (or phone) and compatible names; a shared value alone is not identity.

    For e-mail, records without a first name join the group when every named
    record of that e-mail is one person (otherwise the address is a family's and
    the nameless record could be anyone of them). When the names alone cannot tell
    (a typo in one first name: ``Naddiya``), or for a mobile phone, the question
    goes to ``deferred`` and is answered after clustering. On 3 000 people a third
    of the missed pairs between two identified records were such nameless records.
    """
    links: list[Link] = []
    groups = (
        prepared.filter(pl.col(column).is_not_null())
        .group_by(column)
        .agg(pl.col("record_id").sort())
        .filter(pl.col("record_id").list.len().is_between(2, max_group))
    )
    for _, members in groups.iter_rows():
        named = [m for m in members if people.rows[m]["first_key"] is not None]
        nameless = [m for m in members if people.rows[m]["first_key"] is None]
        clusters: list[list[str]] = []
        for record_id in named:
            for cluster in clusters:
                anchor = cluster[0]
                if people.same_person_evidence(anchor, record_id, need_last=link_type == "phone"):
                    links.append(_contact_link(anchor, record_id, column, link_type, "names match"))
                    cluster.append(record_id)
                    break
            else:
                clusters.append([record_id])
        if link_type == "email" and len(clusters) <= 1 and nameless:
            anchor = clusters[0][0] if clusters else nameless[0]
            for record_id in nameless:
                if record_id != anchor and not people.household_pair(anchor, record_id):
                    links.append(_contact_link(anchor, record_id, column, link_type, "one person"))
        elif deferred is not None and nameless and named:
            mobile = link_type == "email" or all(
                people.rows[m]["phone_type"] == "mobile" for m in members
            )
            if mobile:
                deferred.append(NamelessGroup(column, link_type, tuple(named), tuple(nameless)))
    return links


def _join_nameless(
    clusters: "_Clusters", groups: list[NamelessGroup], blocked: Counter
) -> list[Link]:
    """Nameless records join when every named record of their value is in one profile."""
    kept: list[Link] = []
    for group in groups:
        if len({clusters.find(m) for m in group.named}) != 1:
            blocked["nameless_value_of_several_people"] += 1
            continue
        anchor = group.named[0]
        for record_id in group.nameless:
            reason = clusters.why_not(anchor, record_id, manual=False)
            if reason:
                blocked[reason] += 1
                continue
            clusters.union(anchor, record_id)
            kept.append(
                _contact_link(anchor, record_id, group.column, group.link_type, "one person")
            )
    return kept


def _name_postcode_groups(prepared: pl.DataFrame, max_expected: float) -> list[list[str]]:
    """Records sharing first name, last name and postcode (two or more), record_ids sorted.

    Only names rare enough that another person of that name in that postcode is
    unlikely: expected namesakes = (people in the postcode - 1) × share of the first
    name × share of the last name, where the people are counted as distinct full
    names (typos count extra people, which errs on the safe side).
    """
    named = prepared.filter(
        pl.col("first_key").is_not_null()
        & pl.col("last_key").is_not_null()
        & pl.col("postcode").is_not_null()
    )
    people = named.select("first_key", "last_key", "postcode").unique()
    total = max(len(people), 1)
    first_share = people.group_by("first_key").agg((pl.len() / total).alias("first_share"))
    last_share = people.group_by("last_key").agg((pl.len() / total).alias("last_share"))
    per_postcode = people.group_by("postcode").agg(pl.len().alias("people"))
    groups = (
        named.group_by("first_key", "last_key", "postcode")
        .agg(pl.col("record_id").sort())
        .filter(pl.col("record_id").list.len() > 1)
        .join(first_share, on="first_key")
        .join(last_share, on="last_key")
        .join(per_postcode, on="postcode")
        .filter(
            (pl.col("people") - 1) * pl.col("first_share") * pl.col("last_share") < max_expected
        )
    )
    return sorted(groups["record_id"].to_list())


_NAME_POSTCODE_EVIDENCE = json.dumps(
    {
        "first_name": {"level": "exact", "weight": None},
        "last_name": {"level": "exact", "weight": None},
        "postcode": {"level": "exact", "weight": None},
    }
)


def _contact_link(a: str, b: str, column: str, link_type: str, names: str) -> Link:
    evidence = json.dumps(
        {link_type: {"level": "exact", "weight": None}, "names": {"level": names, "weight": None}}
    )
    return Link(a, b, link_type, None, 1.0, evidence)


def _person_id_agrees(evidence: dict, config: MatchingConfig) -> bool:
    """An attribute of comparison ``person_id`` is equal, or one typo apart, on both records.

    One typo counts as agreement: identifiers of two people (a national register
    number with its check digits) differ in more than one character.
    """
    return any(
        evidence.get(name, {}).get("level") in ("exact", "one typo")
        for name, attribute in config.attributes.items()
        if attribute.comparison == "person_id"
    )


def _veto(evidence: dict, config: MatchingConfig) -> str | None:
    """Why a Splink pair may not become a link, or None."""

    def level(kind: str) -> str | None:
        name = config.attribute_of(kind)
        return evidence.get(name, {}).get("level") if name else None

    first, last, date, address = (
        level("first_name"),
        level("last_name"),
        level("date"),
        level("address"),
    )
    if _person_id_agrees(evidence, config):
        return None  # households share addresses and phones, never a personal identifier
    guards = config.guards
    if guards.min_non_name_weight is not None:
        names = {config.attribute_of("first_name"), config.attribute_of("last_name")}
        other = sum(
            item.get("weight") or 0.0 for name, item in evidence.items() if name not in names
        )
        if other < guards.min_non_name_weight:
            return "names_only"
    if guards.different_birth_date and date == "different":
        return "different_birth_date"
    # Jaro-Winkler 0.8-0.92 holds other names of one family (rashid / said), not typos:
    # with the weight of a household e-mail it merged brothers (3 000 people: 3 links).
    if guards.different_first_name and first in ("different", "jaro-winkler >= 0.8"):
        return "different_first_name"
    if (
        guards.twins
        and date == "exact"
        and last == "exact"
        and address == "same address"
        and first in ("jaro-winkler >= 0.8", "different")
    ):
        return "twins"
    return None


@dataclass(frozen=True)
class ReviewPair:
    """A Splink pair a person should look at: below auto-merge, or vetoed by a guard."""

    left: str
    right: str
    weight: float
    probability: float
    evidence: str
    reason: str  # "below_auto_merge" or the guard that vetoed it


def _score(
    prepared: pl.DataFrame,
    config: MatchingConfig,
    state_dir: Path,
    retrain: bool | None,
    stats: ResolutionStats,
) -> ModelRun | None:
    """Splink's scored pairs above the review threshold (None when Splink is off)."""
    if not config.splink_enabled:
        return None
    candidates = prepared.filter(
        pl.any_horizontal(
            pl.col(c).is_not_null()
            # A record without names or contacts but with a birth date or a personal
            # identifier (a person_id attribute) is still comparable (FEBRL3: 18 pairs).
            for c in ("first_key", "last_key", "email_normalised", "phone_e164", "birth_date")
            + tuple(c for c in prepared.columns if c.startswith("x_"))
        )
    )
    if len(candidates) < 2:
        return None
    run = score_pairs(splink_frame(candidates, config), config, state_dir, retrain)
    stats.model = run.model
    stats.pairs_scored = run.n_compared
    stats.incremental = run.incremental
    stats.records_rescored = run.n_changed
    return run


def _splink_links(
    pairs: pl.DataFrame,
    people: _People,
    config: MatchingConfig,
    stats: ResolutionStats,
    review: list[ReviewPair],
) -> list[Link]:
    """Splink pairs above auto-merge that pass the guards; the rest above review go to review."""
    links = []
    blocked: Counter = Counter()
    auto_merge = config.thresholds.auto_merge_weight()
    for left, right, weight, probability, evidence in pairs.iter_rows():
        if people.household_pair(left, right):  # never a question: a child is not its parent
            if weight >= auto_merge:
                blocked["child_and_parent"] += 1
            continue
        if weight < auto_merge:
            review.append(
                ReviewPair(left, right, weight, probability, evidence, "below_auto_merge")
            )
            continue
        parsed = json.loads(evidence)
        reason = _veto(parsed, config)
        if reason:
            blocked[reason] += 1
            review.append(ReviewPair(left, right, weight, probability, evidence, reason))
            continue
        weak = config.guards.cluster_birth_dates and not _person_id_agrees(parsed, config)
        links.append(Link(left, right, "splink", weight, probability, evidence, weak))
    stats.blocked_by_reason.update(blocked)
    return links


# Cluster values that make a cluster somebody in particular (see _join_namesakes).
IDENTIFYING = ("a_profiel_id", "email", "phone", "birth_date")


def _dates_disagree(left: set[str], right: set[str]) -> bool:
    """Both sides know birth dates and none of one side matches one of the other.

    Matching allows a swapped day and month and one typo (a digit wrong or two
    swapped), as the model's date levels do; ISO strings ``yyyy-mm-dd``.
    """
    if not left or not right or left & right:
        return False
    swapped = {f"{d[:4]}-{d[8:10]}-{d[5:7]}" for d in left}
    if swapped & right:
        return False
    return not any(DamerauLevenshtein.distance(a, b) <= 1 for a in left for b in right)


class _Clusters:
    """Union-find that refuses unions breaking a cannot-link, a limit or the size cap."""

    def __init__(
        self,
        record_ids: list[str],
        identifiers: dict[str, dict[str, set[str]]],
        limits: dict[str, int],
        cannot: set[tuple[str, str]],
        max_size: int,
    ) -> None:
        self.parent = {r: r for r in record_ids}
        self.size = dict.fromkeys(record_ids, 1)
        self.values = {
            r: {k: set(v) for k, v in identifiers.get(r, {}).items()} for r in record_ids
        }
        self.apart: dict[str, set[str]] = defaultdict(set)
        for a, b in cannot:
            if a in self.parent and b in self.parent:
                self.apart[a].add(b)
                self.apart[b].add(a)
        self.limits = limits
        self.max_size = max_size

    def find(self, record_id: str) -> str:
        root = record_id
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[record_id] != root:
            self.parent[record_id], record_id = root, self.parent[record_id]
        return root

    def why_not(self, a: str, b: str, manual: bool, weak: bool = False) -> str | None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return None
        small, large = (ra, rb) if len(self.apart[ra]) <= len(self.apart[rb]) else (rb, ra)
        if any(self.find(other) == large for other in self.apart[small]):
            return "must_stay_apart"
        if manual:
            return None
        if self.size[ra] + self.size[rb] > self.max_size:
            return "max_profile_size"
        if weak and _dates_disagree(
            self.values[ra].get("birth_date", set()), self.values[rb].get("birth_date", set())
        ):
            return "cluster_birth_dates_differ"
        for name, limit in self.limits.items():
            joined = self.values[ra].get(name, set()) | self.values[rb].get(name, set())
            if len(joined) > limit:
                return f"limit_{name}"
        return None

    def identified(self, record_id: str) -> bool:
        """The cluster of this record carries an identifier (account, e-mail, phone, date)."""
        values = self.values[self.find(record_id)]
        return any(values.get(name) for name in IDENTIFYING)

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        for name, values in self.values.pop(rb).items():
            self.values[ra].setdefault(name, set()).update(values)
        self.apart[ra] |= self.apart.pop(rb, set())


def _join_namesakes(clusters: "_Clusters", groups: list[list[str]], blocked: Counter) -> list[Link]:
    """Join records of one first name, last name and postcode when that is unambiguous.

    Runs after every other link. A group whose records sit in two or more clusters
    that each carry an identifier (A-profiel account, e-mail, phone or birth date)
    holds namesakes: it is left alone, since a box-office record without contact
    data could be either of them. Otherwise all clusters of the group join the one
    identified cluster (or each other). Measured on 3 000 people: star links without
    this check made 15 false links out of 394; see docs/identity.md.
    """
    kept: list[Link] = []
    for members in groups:
        roots: dict[str, str] = {}
        for record_id in members:
            roots.setdefault(clusters.find(record_id), record_id)
        if len(roots) < 2:
            continue
        identified = [r for r in roots.values() if clusters.identified(r)]
        if len(identified) > 1:
            blocked["namesakes"] += 1
            continue
        anchor = identified[0] if identified else min(roots.values())
        for record_id in sorted(roots.values()):
            if record_id == anchor:
                continue
            reason = clusters.why_not(anchor, record_id, manual=False, weak=True)
            if reason:
                blocked[reason] += 1
                continue
            clusters.union(anchor, record_id)
            kept.append(
                Link(anchor, record_id, "name_postcode", None, None, _NAME_POSTCODE_EVIDENCE)
            )
    return kept


def _cluster(
    record_ids: list[str],
    links: list[Link],
    identifiers: dict[str, dict[str, set[str]]],
    cannot: set[tuple[str, str]],
    config: MatchingConfig,
    stats: ResolutionStats,
    name_groups: list[list[str]] = (),
    nameless: list[NamelessGroup] = (),
) -> tuple[dict[str, str], list[Link]]:
    """Record → cluster key (its smallest record_id), and the links that were kept."""
    limits = {name: limit.max_per_profile for name, limit in config.limits.items()}
    clusters = _Clusters(record_ids, identifiers, limits, cannot, config.max_profile_size)
    priority = {kind: config.priority(kind) for kind in {k.link_type for k in links}}
    ordered = sorted(
        links, key=lambda k: (priority[k.link_type], -(k.weight or 0.0), k.left, k.right)
    )
    kept: list[Link] = []
    seen: set[tuple[str, str]] = set()
    blocked: Counter = Counter()
    for link in ordered:
        pair = _pair(link.left, link.right)
        if pair in seen or link.left == link.right:
            continue
        seen.add(pair)
        reason = clusters.why_not(
            link.left,
            link.right,
            manual=link.link_type == "manual",
            # A weak link may not chain two clusters with different birth dates: one
            # bridge must not join strangers (measured on 3 000 people: docs/identity.md).
            weak=link.weak,
        )
        if reason:
            blocked[reason] += 1
            continue
        clusters.union(link.left, link.right)
        kept.append(link)
    kept += _join_nameless(clusters, nameless, blocked)
    kept += _join_namesakes(clusters, name_groups, blocked)
    stats.blocked_by_reason.update(blocked)
    members: dict[str, list[str]] = defaultdict(list)
    for record_id in record_ids:
        members[clusters.find(record_id)].append(record_id)
    assignment = {}
    for group in members.values():
        key = min(group)
        for record_id in group:
            assignment[record_id] = key
    return assignment, kept


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()[0]
    return bool(row[0])


def _new_id(seed: str, run_id: str, taken: set[str]) -> str:
    salt = 0
    while True:
        digest = hashlib.sha256(f"{seed}|{run_id}|{salt}".encode()).hexdigest()[:12]
        candidate = f"p-{digest}"
        if candidate not in taken:
            taken.add(candidate)
            return candidate
        salt += 1


def _assign_ids(
    assignment: dict[str, str],
    previous: dict[str, str],
    created_at: dict[str, datetime],
    run_id: str,
    taken: set[str],
    now: datetime,
) -> tuple[dict[str, str], list[tuple]]:
    """Map cluster keys to profile ids, and the history rows of this run.

    Each previous id goes to the new cluster holding most of its records (ties:
    the cluster with the smallest record_id). A cluster that receives several
    keeps the oldest (first created; ties by id) and the others are merged into
    it. Clusters that receive none get a new id; clusters made of records of a
    profile that went elsewhere are recorded as split from it.
    """
    members: dict[str, list[str]] = defaultdict(list)
    for record_id, key in assignment.items():
        members[key].append(record_id)
    counts = {
        key: Counter(previous[r] for r in recs if r in previous) for key, recs in members.items()
    }
    owner: dict[str, str] = {}
    best: dict[str, tuple[int, str]] = {}
    for key, counter in counts.items():
        for pid, n in counter.items():
            rank = (-n, key)
            if pid not in best or rank < best[pid]:
                best[pid], owner[pid] = rank, key
    far_past = datetime(1900, 1, 1)

    def age(pid: str) -> tuple[datetime, str]:
        return created_at.get(pid, far_past), pid

    # Inverted once: scanning ``owner`` per cluster was quadratic (a city-scale night of
    # 100 000 people with previous ids was still in that loop after 23 minutes).
    owned: dict[str, list[str]] = defaultdict(list)
    for pid, key in owner.items():
        owned[key].append(pid)
    ids: dict[str, str] = {}
    history: list[tuple] = []
    for key in sorted(members):
        n = len(members[key])
        won = sorted(owned.get(key, ()), key=age)
        if won:
            profile_id = won[0]
            for other in won[1:]:
                history.append((run_id, profile_id, "merged", other, n, now))
                history.append((run_id, other, "retired", profile_id, 0, now))
        else:
            profile_id = _new_id(key, run_id, taken)
            history.append((run_id, profile_id, "created", None, n, now))
        for pid in sorted(counts[key]):
            if owner[pid] != key:
                history.append((run_id, profile_id, "split", pid, n, now))
        ids[key] = profile_id
    for pid in sorted(set(previous.values()) - set(owner)):
        history.append((run_id, pid, "retired", None, 0, now))
    return ids, history


def _read_previous(
    con: duckdb.DuckDBPyConnection, scope: pl.Series | None = None
) -> tuple[dict[str, str], dict, set[str]]:
    """Last night's record → profile id, profile creation times and the ids ever used.

    With ``scope`` (an incremental night) only the records of the scope and their
    profiles are read, and ``taken`` holds only those ids: new ids are checked
    against the rest afterwards (``_ids_in_use``).
    """
    previous: dict[str, str] = {}
    created_at: dict[str, datetime] = {}
    taken: set[str] = set()
    if scope is not None:
        con.register("_identity_scope", pl.DataFrame({"record_id": scope}).to_arrow())
        try:
            previous = dict(
                con.execute(
                    "select record_id, profile_id from identity.record_profiles "
                    "semi join _identity_scope using (record_id)"
                ).fetchall()
            )
        finally:
            con.unregister("_identity_scope")
        taken = set(previous.values())
        if taken and _table_exists(con, "identity", "profile_history"):
            con.register("_identity_pids", pl.DataFrame({"profile_id": sorted(taken)}).to_arrow())
            try:
                for pid, first in con.execute(
                    "select profile_id, min(changed_at) filter (where change = 'created') "
                    "from identity.profile_history semi join _identity_pids using (profile_id) "
                    "group by profile_id"
                ).fetchall():
                    if first is not None:
                        created_at[pid] = first
            finally:
                con.unregister("_identity_pids")
        return previous, created_at, taken
    if _table_exists(con, "identity", "record_profiles"):
        previous = dict(
            con.execute("select record_id, profile_id from identity.record_profiles").fetchall()
        )
        taken |= set(previous.values())
    if _table_exists(con, "identity", "profile_history"):
        for pid, first in con.execute(
            "select profile_id, min(changed_at) filter (where change = 'created') "
            "from identity.profile_history group by profile_id"
        ).fetchall():
            taken.add(pid)
            if first is not None:
                created_at[pid] = first
    return previous, created_at, taken


def _ids_in_use(con: duckdb.DuckDBPyConnection, candidates: list[str]) -> bool:
    """Whether any of these new ids is, or was, a profile id (in any table of ids)."""
    if not candidates:
        return False
    con.register("_identity_new_ids", pl.DataFrame({"profile_id": candidates}).to_arrow())
    try:
        return bool(
            con.execute(
                "select count(*) from (select profile_id from identity.record_profiles "
                "union all select profile_id from identity.profile_history) "
                "semi join _identity_new_ids using (profile_id)"
            ).fetchall()[0][0]
        )
    finally:
        con.unregister("_identity_new_ids")


def _review_frame(
    review: list[ReviewPair], record_profile: dict[str, str], decisions: Decisions, run_id: str
) -> pl.DataFrame:
    """identity.review_queue: pairs of two profiles, with a decision's status if one exists."""
    rows = []
    for pair in review:
        left, right = _pair(pair.left, pair.right)
        if record_profile[left] == record_profile[right]:
            continue  # other links joined them already: nothing to decide
        status = (
            "accepted"
            if (left, right) in decisions.same
            else "rejected"
            if (left, right) in decisions.different
            else "open"
        )
        rows.append(
            (
                left,
                right,
                record_profile[left],
                record_profile[right],
                pair.weight,
                pair.probability,
                pair.evidence,
                pair.reason,
                status,
                run_id,
            )
        )
    return pl.DataFrame(
        rows,
        orient="row",
        schema={
            "record_id_l": pl.Utf8,
            "record_id_r": pl.Utf8,
            "profile_id_l": pl.Utf8,
            "profile_id_r": pl.Utf8,
            "match_weight": pl.Float64,
            "match_probability": pl.Float64,
            "evidence": pl.Utf8,
            "reason": pl.Utf8,
            "status": pl.Utf8,
            "run_id": pl.Utf8,
        },
    ).sort("match_weight", "record_id_l", "record_id_r", descending=[True, False, False])


# One row per link and attribute: the evidence JSON of identity.links, flattened for
# the explanation screens (json_each keeps the attribute order of the JSON text).
_LINK_EVIDENCE_SELECT = """
select rp.profile_id, l.record_id_l, l.record_id_r, l.link_type,
    e.key::varchar as attribute,
    json_extract_string(e.value, '$.level') as level,
    try_cast(json_extract(e.value, '$.weight') as double) as weight,
    l.run_id
from {links} as l
inner join {profiles} as rp on rp.record_id = l.record_id_l,
    json_each(l.evidence) as e
"""
_LINK_EVIDENCE_ORDER = "order by rp.profile_id, l.record_id_l, l.record_id_r, attribute"

_PROFILES_SELECT = """
select record_id::varchar as record_id, source::varchar as source,
    record_key::varchar as record_key, role::varchar as role,
    profile_id::varchar as profile_id, email_normalised::varchar as email_normalised,
    phone_e164::varchar as phone_e164,
    first_name_normalised::varchar as first_name_normalised,
    last_name_normalised::varchar as last_name_normalised,
    birth_date::date as birth_date, postcode::varchar as postcode,
    run_id::varchar as run_id, assigned_at::timestamp as assigned_at
from _identity_profiles order by record_id
"""

_LINKS_SELECT = """
select record_id_l::varchar as record_id_l, record_id_r::varchar as record_id_r,
    link_type::varchar as link_type, match_weight::double as match_weight,
    match_probability::double as match_probability, evidence::varchar as evidence,
    run_id::varchar as run_id
from _identity_links order by record_id_l, record_id_r
"""

_STATE_SELECT = """
select record_id::varchar as record_id, content_hash::ubigint as content_hash,
    component::varchar as component
from _identity_state
"""


def _write(
    con: duckdb.DuckDBPyConnection,
    profiles: pl.DataFrame,
    links: pl.DataFrame,
    history: pl.DataFrame,
    review: pl.DataFrame,
    state: pl.DataFrame,
    scope: pl.Series | None = None,
) -> None:
    """Write the identity tables in one transaction.

    ``scope`` None: every table is rewritten. Otherwise (an incremental night)
    ``profiles``, ``links`` and ``state`` hold the rows of the re-resolved records
    only, and the rows of ``scope`` (those records and the removed ones) are
    replaced; the rest is last night's, carried over. The review queue is always
    written whole (the caller merges it). ``identity.resolution_meta`` is dropped
    here and written only once the golden attributes are written too, so a crash
    in between makes the next night a full one.
    """
    con.execute("create schema if not exists identity")
    con.execute(
        "create table if not exists identity.profile_history (run_id varchar, profile_id varchar,"
        " change varchar, other_profile_id varchar, n_records bigint, changed_at timestamp)"
    )
    frames = {
        "_identity_profiles": profiles,
        "_identity_links": links,
        "_identity_history": history,
        "_identity_review": review,
        "_identity_state": state,
    }
    if scope is not None:
        frames["_identity_scope"] = pl.DataFrame({"record_id": scope})
    for name, frame in frames.items():
        con.register(name, frame.to_arrow())
    try:
        con.execute("begin transaction")
        con.execute(f"drop table if exists {incremental.META_TABLE}")
        if scope is None:
            con.execute(f"create or replace table identity.record_profiles as {_PROFILES_SELECT}")
            con.execute(f"create or replace table identity.links as {_LINKS_SELECT}")
            evidence = _LINK_EVIDENCE_SELECT.format(
                links="identity.links", profiles="identity.record_profiles"
            )
            con.execute(
                f"create or replace table identity.link_evidence as {evidence} "
                f"{_LINK_EVIDENCE_ORDER}"
            )
            con.execute(f"create or replace table {incremental.STATE_TABLE} as {_STATE_SELECT}")
        else:
            in_scope = "(select record_id from _identity_scope)"
            con.execute(f"delete from identity.record_profiles where record_id in {in_scope}")
            con.execute(f"insert into identity.record_profiles {_PROFILES_SELECT}")
            # A link joins two records of one component: both in the scope or both not.
            con.execute(f"delete from identity.links where record_id_l in {in_scope}")
            con.execute(f"insert into identity.links {_LINKS_SELECT}")
            con.execute(f"delete from identity.link_evidence where record_id_l in {in_scope}")
            # From the scope's new rows: json_each over every link, filtered afterwards,
            # took 0.8 s on 100 000 people.
            evidence = _LINK_EVIDENCE_SELECT.format(
                links="_identity_links", profiles="_identity_profiles"
            )
            con.execute(f"insert into identity.link_evidence {evidence} {_LINK_EVIDENCE_ORDER}")
            con.execute(f"delete from {incremental.STATE_TABLE} where record_id in {in_scope}")
            con.execute(f"insert into {incremental.STATE_TABLE} {_STATE_SELECT}")
        con.execute(
            """
            create or replace table identity.review_queue as
            select record_id_l::varchar as record_id_l, record_id_r::varchar as record_id_r,
                profile_id_l::varchar as profile_id_l, profile_id_r::varchar as profile_id_r,
                match_weight::double as match_weight,
                match_probability::double as match_probability, evidence::varchar as evidence,
                reason::varchar as reason, status::varchar as status, run_id::varchar as run_id
            from _identity_review
            """
        )
        con.execute(
            "delete from identity.profile_history where run_id = ?",
            [history["run_id"][0] if len(history) else ""],
        )
        con.execute(
            "insert into identity.profile_history select run_id, profile_id, change, "
            "other_profile_id, n_records, changed_at from _identity_history"
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        for name in frames:
            con.unregister(name)


def resolve(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    config: MatchingConfig | None = None,
    *,
    retrain: bool | None = None,
    state_dir: Path | None = None,
    decisions: Decisions | None = None,
) -> ResolutionStats:
    """Resolve identities in the warehouse behind ``con`` and write ``identity.*``.

    Args:
        con: open read-write connection to the warehouse.
        run_id: written on every output row and on the history of this run.
        config: the matching configuration (``matching.yml`` by default).
        retrain: force (True) or forbid (False) retraining of the Splink model;
            None follows ``training.retrain`` of the config.
        state_dir: where the model and decisions live; ``state_dir/identity`` of
            the settings by default.
        decisions: manual decisions; read from ``state_dir/decisions.jsonl`` by default.
    """
    started = time.perf_counter()
    config = config or load_config()
    state_dir = state_dir or get_settings().state_dir / "identity"
    decisions = decisions or read_decisions(state_dir / "decisions.jsonl")
    stats = ResolutionStats(run_id=run_id)
    now = datetime.now(UTC).replace(tzinfo=None)
    clock = [time.perf_counter()]

    def lap(phase: str) -> None:
        now_ = time.perf_counter()
        stats.timings[phase] = round(now_ - clock[0], 3)
        clock[0] = now_

    records = con.sql(f"select * from {RECORDS_TABLE}").pl()
    web = pl.DataFrame(schema={"anonymous_id": pl.Utf8, "user_id": pl.Utf8})
    if _table_exists(con, "intermediate", "int_identity__web_identities"):
        web = (
            con.sql(f"select anonymous_id, user_id from {WEB_IDENTITIES_TABLE}")
            .pl()
            .drop_nulls()
            .unique()
            .cast(pl.Utf8)
        )
    state_key = incremental.state_key(config, state_dir)
    prepared, raw = incremental.prepare(records, config, state_dir, state_key)
    stats.records = len(prepared)
    # Computed on the whole delivery: whether a group qualifies depends on name frequencies.
    name_groups = (
        _name_postcode_groups(prepared, config.rules.name_and_postcode_max_expected)
        if config.rules.name_and_postcode
        else []
    )
    keys = incremental.record_keys(prepared, web, name_groups)
    hashes = incremental.content_hashes(raw, prepared, keys, decisions, name_groups)
    lap("read_and_normalise")
    run = _score(prepared, config, state_dir, retrain, stats)
    lap("splink")

    all_ids = prepared["record_id"]
    pairs = run.pairs if run is not None else pl.DataFrame(schema=PAIR_SCHEMA)
    above = pairs.filter(pl.col("match_weight") >= config.thresholds.auto_merge_weight())
    # Re-scored pairs (a retrained model, a changed config) can change any link: full night.
    state = incremental.read_state(con, state_key) if run is None or run.incremental else None
    scope: pl.Series | None = None  # records re-resolved plus removed ones; None: all
    outcomes: pl.DataFrame | None = None  # the pair guards' verdicts on ``above``
    if state is None:
        scope_ids, part = all_ids, prepared
        people = _People(prepared, nickname_table(config))
    else:

        def judge(judged: pl.DataFrame) -> pl.DataFrame:
            ends = pl.concat([judged["unique_id_l"], judged["unique_id_r"]]).implode()
            accepted = _splink_links(
                judged,
                _People(prepared.filter(pl.col("record_id").is_in(ends)), nickname_table(config)),
                config,
                ResolutionStats(run_id=run_id),
                [],
            )
            return pl.DataFrame(
                [(k.left, k.right) for k in accepted],
                schema={"unique_id_l": pl.Utf8, "unique_id_r": pl.Utf8},
                orient="row",
            )

        cached = incremental.read_guarded(state_dir, state_key, incremental.state_token(con))
        outcomes = incremental.guard_outcomes(
            above, incremental.clean(hashes, state), cached, judge
        )
        edges = incremental.dependency_edges(outcomes, decisions, all_ids)
        scope_ids, removed = incremental.scope(hashes, state, keys, edges)
        scope = pl.concat([scope_ids, removed])
        part = prepared.filter(pl.col("record_id").is_in(scope_ids.implode()))
        # Review pairs may reach outside the scope: the guards need both records.
        pairs = pairs.filter(
            pl.col("unique_id_l").is_in(scope_ids.implode())
            | pl.col("unique_id_r").is_in(scope_ids.implode())
        )
        partners = pl.concat([scope_ids, pairs["unique_id_l"], pairs["unique_id_r"]])
        people = _People(
            prepared.filter(pl.col("record_id").is_in(partners.implode())),
            nickname_table(config),
        )
    stats.records_reclustered = len(scope_ids)
    known = set(scope_ids.to_list())

    max_group = max(config.max_profile_size, 2)
    links = _identifier_links(part, web)
    nameless: list[NamelessGroup] = []
    links += _contact_links(part, people, "email_normalised", "email", max_group, nameless)
    links += _contact_links(part, people, "phone_e164", "phone", max_group, nameless)
    if scope is not None:  # a group lies wholly inside or outside the scope
        name_groups = [group for group in name_groups if group[0] in known]
    lap("deterministic_links")
    review: list[ReviewPair] = []
    splink = _splink_links(pairs, people, config, stats, review)
    links += splink
    if outcomes is None:  # a full night judged every pair
        accepted = pl.DataFrame(
            [(k.left, k.right) for k in splink],
            schema={"unique_id_l": pl.Utf8, "unique_id_r": pl.Utf8},
            orient="row",
        ).with_columns(accepted=pl.lit(True))
        outcomes = (
            above.select("unique_id_l", "unique_id_r", "match_weight")
            .join(accepted, on=["unique_id_l", "unique_id_r"], how="left")
            .with_columns(pl.col("accepted").fill_null(False))
        )
        edges = incremental.dependency_edges(outcomes, decisions, all_ids)
    manual = json.dumps({"manual": {"level": "same", "weight": None}})
    links += [
        Link(a, b, "manual", None, 1.0, manual)
        for a, b in sorted(decisions.same)
        if a in known and b in known
    ]

    cannot = set(decisions.different)
    for record_id, row in people.rows.items():
        if row["is_child_record"] and row["household_key"] in known and record_id in known:
            pair = _pair(record_id, row["household_key"])
            if pair not in decisions.same:
                cannot.add(pair)

    identifiers: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for record_id, account in (
        part.filter(pl.col("a_profiel_id").is_not_null() & ~pl.col("is_child_record"))
        .select("record_id", "a_profiel_id")
        .iter_rows()
    ):
        identifiers[record_id]["a_profiel_id"] = {account}
    if len(web):
        visitors = part.filter(pl.col("anonymous_id").is_not_null()).select(
            "record_id", "anonymous_id"
        )
        for record_id, _, user_id in visitors.join(web, on="anonymous_id").iter_rows():
            identifiers[record_id].setdefault("a_profiel_id", set()).add(user_id)
    for record_id, device in (
        part.filter(pl.col("device_id").is_not_null()).select("record_id", "device_id").iter_rows()
    ):
        identifiers[record_id]["device_id"] = {device}
    for record_id, born in (
        part.filter(pl.col("birth_date").is_not_null())
        .select("record_id", pl.col("birth_date").cast(pl.Utf8))
        .iter_rows()
    ):
        identifiers[record_id]["birth_date"] = {born}
    for column, name in (("email_normalised", "email"), ("phone_e164", "phone")):
        for record_id, value in (
            part.filter(pl.col(column).is_not_null()).select("record_id", column).iter_rows()
        ):
            identifiers[record_id][name] = {value}

    record_ids = part["record_id"].to_list()
    assignment, kept = _cluster(
        record_ids, links, identifiers, cannot, config, stats, name_groups, nameless
    )
    stats.pairs_blocked_by_guards = sum(stats.blocked_by_reason.values())

    previous, created_at, taken = _read_previous(con, scope)
    ids, history_rows = _assign_ids(assignment, previous, created_at, run_id, set(taken), now)
    if scope is not None and _ids_in_use(con, sorted(set(ids.values()) - set(previous.values()))):
        # A new id met one outside the scope (48-bit hashes: rare): redo with all ids.
        _, _, everything = _read_previous(con)
        ids, history_rows = _assign_ids(
            assignment, previous, created_at, run_id, everything | taken, now
        )
    lap("cluster_and_ids")
    stats.history = dict(sorted(Counter(row[2] for row in history_rows).items()))

    profiles = part.select(
        "record_id",
        "source",
        "record_key",
        "role",
        pl.col("record_id")
        .replace_strict({r: ids[k] for r, k in assignment.items()}, return_dtype=pl.Utf8)
        .alias("profile_id"),
        "email_normalised",
        "phone_e164",
        pl.col("first_key").alias("first_name_normalised"),
        pl.col("last_key").alias("last_name_normalised"),
        "birth_date",
        "postcode",
        pl.lit(run_id).alias("run_id"),
        pl.lit(now).alias("assigned_at"),
    )
    link_frame = pl.DataFrame(
        [(k.left, k.right) if k.left <= k.right else (k.right, k.left) for k in kept],
        schema={"record_id_l": pl.Utf8, "record_id_r": pl.Utf8},
        orient="row",
    ).with_columns(
        link_type=pl.Series([k.link_type for k in kept], dtype=pl.Utf8),
        match_weight=pl.Series([k.weight for k in kept], dtype=pl.Float64),
        match_probability=pl.Series([k.probability for k in kept], dtype=pl.Float64),
        evidence=pl.Series([k.evidence for k in kept], dtype=pl.Utf8),
        run_id=pl.lit(run_id, dtype=pl.Utf8),
    )
    history = pl.DataFrame(
        history_rows,
        schema={
            "run_id": pl.Utf8,
            "profile_id": pl.Utf8,
            "change": pl.Utf8,
            "other_profile_id": pl.Utf8,
            "n_records": pl.Int64,
            "changed_at": pl.Datetime,
        },
        orient="row",
    )
    record_profile = {r: ids[k] for r, k in assignment.items()}
    if scope is not None:
        # Review pairs may reach records outside tonight's scope: those keep last night's
        # profile; records re-resolved tonight keep tonight's.
        ends = {p.left for p in review} | {p.right for p in review}
        record_profile = _profiles_of(con, ends - record_profile.keys()) | record_profile
    review_frame = _review_frame(review, record_profile, decisions, run_id)
    if scope is not None:
        review_frame = _carry_review(con, review_frame, scope, run_id)
    stats.review_pairs = int((review_frame["status"] == "open").sum())
    state_rows = hashes.filter(pl.col("record_id").is_in(scope_ids.implode())).join(
        incremental.components(scope_ids, keys, edges), on="record_id"
    )
    _write(con, profiles, link_frame, history, review_frame, state_rows, scope)
    _profile_stats(con, stats)
    for column in (
        "first_name",
        "last_name",
        "birth_date",
        "street",
        "house_number",
        "municipality",
        "observed_at",
    ):
        if column not in records.columns:
            records = records.with_columns(pl.lit(None).alias(column))
    records = records.with_columns(pl.col("record_id").cast(pl.Utf8))
    golden_input = records.select(
        "record_id",
        "first_name",
        "last_name",
        "birth_date",
        "street",
        "house_number",
        "municipality",
        "observed_at",
    ).join(
        profiles.select(
            "record_id",
            "profile_id",
            "source",
            "record_key",
            "email_normalised",
            "phone_e164",
            pl.col("postcode").alias("postcode_normalised"),
        ),
        on="record_id",
        how="inner",
    )
    if scope is None:
        build_golden(con, golden_input, config)
    else:
        every = None
        if any(attr.table is not None for attr in config.golden_attributes.values()):
            every = records.select("record_id", "observed_at").join(
                con.sql(
                    "select record_id, profile_id, source, record_key from identity.record_profiles"
                ).pl(),
                on="record_id",
            )
        build_golden(
            con,
            golden_input,
            config,
            custom_records=every,
            replace_profiles=pl.Series(
                "profile_id", sorted(set(previous.values()) | set(ids.values())), dtype=pl.Utf8
            ),
        )
    token = incremental.write_meta(con, state_key)
    incremental.write_guarded(state_dir, state_key, token, outcomes)
    lap("write")
    stats.seconds = round(time.perf_counter() - started, 3)
    logger.info(
        "identity run: %d records (%d re-resolved), %d profiles, %d links, %d blocked by guards",
        stats.records,
        stats.records_reclustered,
        stats.profiles,
        sum(stats.links_by_type.values()),
        stats.pairs_blocked_by_guards,
    )
    return stats


def _profiles_of(con: duckdb.DuckDBPyConnection, record_ids: set[str]) -> dict[str, str]:
    """Current profile ids of these records (outside the scope: last night's)."""
    if not record_ids:
        return {}
    con.register("_identity_wanted", pl.DataFrame({"record_id": sorted(record_ids)}).to_arrow())
    try:
        return dict(
            con.execute(
                "select record_id, profile_id from identity.record_profiles "
                "semi join _identity_wanted using (record_id)"
            ).fetchall()
        )
    finally:
        con.unregister("_identity_wanted")


def _carry_review(
    con: duckdb.DuckDBPyConnection, review: pl.DataFrame, scope: pl.Series, run_id: str
) -> pl.DataFrame:
    """Tonight's review pairs of the scope plus last night's of records outside it.

    A pair of two records outside the scope has the same score, profiles and
    decision status as last night.
    """
    con.register("_identity_scope", pl.DataFrame({"record_id": scope}).to_arrow())
    try:
        carried = con.sql(
            "select * exclude (run_id) from identity.review_queue "
            "where record_id_l not in (select record_id from _identity_scope) "
            "and record_id_r not in (select record_id from _identity_scope)"
        ).pl()
    finally:
        con.unregister("_identity_scope")
    carried = carried.with_columns(run_id=pl.lit(run_id, dtype=pl.Utf8)).select(review.columns)
    return pl.concat([review, carried.cast(review.schema)]).sort(
        "match_weight", "record_id_l", "record_id_r", descending=[True, False, False]
    )


def _profile_stats(con: duckdb.DuckDBPyConnection, stats: ResolutionStats) -> None:
    """Profile and link counts of the written tables (carried-over rows included)."""
    profiles, largest, singletons = con.execute(
        "select count(*), coalesce(max(n), 0), count(*) filter (where n = 1) "
        "from (select count(*) as n from identity.record_profiles group by profile_id)"
    ).fetchall()[0]
    stats.profiles = int(profiles)
    stats.largest_profile = int(largest)
    stats.singletons_rate = round(singletons / profiles, 4) if profiles else 0.0
    stats.links_by_type = dict(
        sorted(con.execute("select link_type, count(*) from identity.links group by 1").fetchall())
    )
    stats.auto_merged_pairs = stats.links_by_type.get("splink", 0)
