"""Profile look-ups on the look-up store, and the JSON a key's scopes let through.

A card holds each part of a profile's answer as ready-made JSON (rendered at publication,
see :mod:`cdp_pipeline.publish.lookup_store`), so a response is the parts the request may
read joined into one byte string: nothing is parsed, built into models or validated on the
way out. The bodies match the response models of :mod:`cdp_pipeline.api.models`, which
describe them in the OpenAPI document (the tests fuzz the one against the other).

Consent rule, whatever the key: a profile whose ``profiling`` consent is withdrawn is shown
no propensity scores and no automatic (``auto_``) segment. The publisher leaves both out of
that profile's card, so they are not in the serving file at all.
"""

import hashlib
from collections.abc import Iterable

import orjson

from cdp_pipeline.api.models import IdentifierKind
from cdp_pipeline.api.snapshots import Card, OpenSnapshot
from cdp_pipeline.publish.lookup_store import CARD_PARTS, CARD_SEPARATOR
from cdp_pipeline.publish.snapshot import lookup_key

# (part, its JSON key and colon) in card order, which is the Profile model's field order.
_PART_LABELS = tuple((part, b',"' + part.encode() + b'":') for part in CARD_PARTS)


def log_token(kind: IdentifierKind, value: str) -> str:
    """What the request log may say about an identifier: its kind and a short hash."""
    digest = hashlib.sha256(f"{kind.value}:{value}".encode()).hexdigest()[:8]
    return f"{kind.value}:{digest}"


def find_card(snapshot: OpenSnapshot, kind: IdentifierKind, value: str) -> Card | None:
    """The card the identifier leads to, or None (unknown and erased alike)."""
    if kind is IdentifierKind.profile_id:
        return snapshot.card(value)
    return snapshot.card_by_key(lookup_key(kind.value, value))


def find_cards(
    snapshot: OpenSnapshot, identifiers: Iterable[tuple[IdentifierKind, str]]
) -> dict[tuple[IdentifierKind, str], Card]:
    """Cards by (kind, value) for every identifier that leads to a profile."""
    cards = {}
    for wanted in set(identifiers):
        card = find_card(snapshot, *wanted)
        if card is not None:
            cards[wanted] = card
    return cards


def render_profile(card: Card, parts: frozenset[str]) -> bytes:
    """The profile's JSON limited to ``parts`` (already checked against the key's scopes)."""
    pieces = [b'{"profile_id":', orjson.dumps(card[0].decode())]
    for (part, label), text in zip(_PART_LABELS, card[1].split(CARD_SEPARATOR), strict=True):
        if part in parts:
            pieces.append(label)
            pieces.append(text)
    pieces.append(b"}")
    return b"".join(pieces)


def profile_body(snapshot_name: str, card: Card, parts: frozenset[str]) -> bytes:
    """The body of a single look-up: ``{"snapshot": ..., "profile": {...}}``."""
    return b"".join(
        (
            b'{"snapshot":',
            orjson.dumps(snapshot_name),
            b',"profile":',
            render_profile(card, parts),
            b"}",
        )
    )


def batch_body(
    snapshot_name: str,
    identifiers: list[tuple[IdentifierKind, str]],
    cards: dict[tuple[IdentifierKind, str], Card],
    parts: frozenset[str],
) -> bytes:
    """The body of a batch: one result per identifier, in request order."""
    results = []
    for kind, value in identifiers:
        head = b'{"kind":"' + kind.value.encode() + b'","value":' + orjson.dumps(value)
        card = cards.get((kind, value))
        if card is None:
            results.append(head + b',"found":false,"profile":null}')
        else:
            results.append(head + b',"found":true,"profile":' + render_profile(card, parts) + b"}")
    return b"".join(
        (
            b'{"snapshot":',
            orjson.dumps(snapshot_name),
            b',"results":[',
            b",".join(results),
            b"]}",
        )
    )
