"""The profile API on a snapshot of a hand-made warehouse: look-ups, scopes, consent, errors."""

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient

from cdp_pipeline.api.keys import SCOPES, create_key, list_keys, revoke_key
from cdp_pipeline.api.server import NOT_FOUND_DETAIL, create_app
from cdp_pipeline.publish.snapshot import publish_snapshot, snapshots_dir_of
from cdp_pipeline.publish.synthetic import create_marts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ANN = "p-000000000001"
BOB = "p-000000000002"
ERASED = "p-000000000003"
VISITOR = "p-000000000004"
ANN_EMAIL = "ann.peeters@example.org"
T0 = datetime(2025, 11, 30, 2, 0)


def email_sha256(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    marks = ", ".join("?" * len(rows[0]))
    con.executemany(f"insert into {table} values ({marks})", rows)


def build_warehouse(path: Path) -> None:
    """Ann (everything), Bob (withdrew profiling), an erased person, an anonymous visitor."""
    with duckdb.connect(str(path)) as con:
        create_marts(con)
        _insert(
            con,
            "marts.profiles",
            [
                (
                    ANN,
                    "Ann",
                    "Peeters",
                    ANN_EMAIL,
                    "+32470000001",
                    None,
                    "2000",
                    "Antwerpen",
                    "A100",
                    True,
                    4,
                    "aprofiel,web_events",
                    T0,
                    T0,
                    T0,
                ),
                (
                    BOB,
                    "Bob",
                    "Janssens",
                    "bob@example.org",
                    None,
                    None,
                    "2018",
                    "Antwerpen",
                    None,
                    True,
                    1,
                    "ticketing",
                    T0,
                    T0,
                    T0,
                ),
                (
                    VISITOR,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    False,
                    1,
                    "web_events",
                    T0,
                    T0,
                    T0,
                ),
                # An unknown web profile that holds Ann's e-mail too: Ann (known) must win.
                (
                    "p-000000000005",
                    None,
                    None,
                    ANN_EMAIL,
                    None,
                    None,
                    None,
                    None,
                    None,
                    False,
                    1,
                    "web_events",
                    T0,
                    T0,
                    datetime(2025, 12, 1),
                ),
            ],
        )
        _insert(
            con,
            "marts.profile_records",
            [
                ("aprofiel|account|A100", "aprofiel", "A100", "account", ANN),
                ("web_events|visitor|anon-1", "web_events", "anon-1", "visitor", ANN),
                ("app_devices|device|dev-1", "app_devices", "dev-1", "device", ANN),
                ("ticketing|buyer|O1", "ticketing", "O1", "buyer", BOB),
                ("web_events|visitor|anon-4", "web_events", "anon-4", "visitor", VISITOR),
                # Left behind for an erased person whose profile is gone from marts.profiles.
                ("web_events|visitor|anon-erased", "web_events", "anon-erased", "visitor", ERASED),
            ],
        )
        _insert(
            con,
            "marts.segment_members",
            [
                ("m1", "culture_lapsed_buyers", ANN, T0, None),
                ("m2", "auto_young_families", ANN, T0, None),
                ("m3", "sport_camp_families", ANN, datetime(2025, 1, 1), T0),
                ("m4", "newsletter_clickers_no_purchase", BOB, T0, None),
                ("m5", "auto_culture_regulars", BOB, T0, None),
                ("m6", "culture_lapsed_buyers", ERASED, T0, None),
            ],
        )
        consent_rows = []
        for purpose in ("email_marketing", "push_marketing", "ad_targeting", "profiling"):
            consent_rows.append((ANN, purpose, "granted", T0, "consents", "email:x"))
            bob_status = "withdrawn" if purpose == "profiling" else "granted"
            consent_rows.append((BOB, purpose, bob_status, T0, "consents", "email:y"))
            consent_rows.append((VISITOR, purpose, "unknown", None, None, None))
        _insert(con, "marts.consent_state", consent_rows)
        con.execute(
            "create table marts.profile_traits (profile_id varchar, favourite_category varchar,"
            " rfm_score integer, monetary_eur decimal(10, 2), last_purchase_date date,"
            " categories varchar[])"
        )
        _insert(
            con,
            "marts.profile_traits",
            [
                (ANN, "concert", 5, 123.5, datetime(2025, 10, 1).date(), ["concert", "theatre"]),
                (BOB, "sport", 2, 10, None, []),
            ],
        )
        con.execute(
            "create table marts.propensity_scores"
            " (profile_id varchar, model varchar, score double, decile integer)"
        )
        _insert(
            con,
            "marts.propensity_scores",
            [
                (ANN, "ticket_purchase_30d", 0.81, 9),
                (ANN, "newsletter_click", 0.12, 2),
                (BOB, "ticket_purchase_30d", 0.55, 6),
            ],
        )


def publish(warehouse: Path) -> Path:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return publish_snapshot(con, snapshots_dir_of(warehouse)).path


class Platform:
    """A published warehouse, a key file and an app reading them."""

    def __init__(self, root: Path) -> None:
        self.warehouse = root / "warehouse" / "cdp.duckdb"
        self.warehouse.parent.mkdir(parents=True)
        self.keys_path = root / "state" / "api" / "keys.json"
        build_warehouse(self.warehouse)
        self.snapshot = publish(self.warehouse)
        self.app = create_app(
            keys_path=self.keys_path,
            snapshot_dir=snapshots_dir_of(self.warehouse),
            check_interval_s=0.05,
        )
        self.client = TestClient(self.app)

    def key(self, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {create_key('test', list(scopes), self.keys_path)}"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = Platform(tmp_path_factory.mktemp("api"))
    with platform.client:
        yield platform


@pytest.fixture(scope="module")
def full(platform: Platform) -> dict[str, str]:
    return platform.key(*SCOPES)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("profile_id", ANN),
        ("a_profiel_id", "A100"),
        ("anonymous_id", "anon-1"),
        ("device_id", "dev-1"),
        ("email_sha256", email_sha256(" Ann.Peeters@Example.org ")),
        ("email_sha256", email_sha256(ANN_EMAIL).upper()),
    ],
)
def test_every_identifier_kind_finds_the_profile(
    platform: Platform, full: dict[str, str], kind: str, value: str
) -> None:
    response = platform.client.get(f"/v1/profiles/{kind}/{value}", headers=full)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"]["profile_id"] == ANN
    assert body["snapshot"] == platform.snapshot.stem


def test_full_profile_content(platform: Platform, full: dict[str, str]) -> None:
    profile = platform.client.get(f"/v1/profiles/profile_id/{ANN}", headers=full).json()["profile"]
    assert profile["segments"] == [
        {"segment": "auto_young_families", "automatic": True, "entered_at": "2025-11-30T02:00:00"},
        {
            "segment": "culture_lapsed_buyers",
            "automatic": False,
            "entered_at": "2025-11-30T02:00:00",
        },
    ]
    assert profile["traits"] == {
        "favourite_category": "concert",
        "rfm_score": 5,
        "monetary_eur": 123.5,
        "last_purchase_date": "2025-10-01",
        "categories": ["concert", "theatre"],
    }
    assert profile["scores"] == [
        {"model": "newsletter_click", "decile": 2, "score": 0.12},
        {"model": "ticket_purchase_30d", "decile": 9, "score": 0.81},
    ]
    assert set(profile["consents"]) == {
        "email_marketing",
        "push_marketing",
        "ad_targeting",
        "profiling",
    }
    assert profile["consents"]["profiling"]["status"] == "granted"
    assert profile["contact"] == {
        "first_name": "Ann",
        "last_name": "Peeters",
        "email": ANN_EMAIL,
        "phone": "+32470000001",
    }


@pytest.mark.parametrize("scope", SCOPES)
def test_a_key_reads_only_its_scopes(platform: Platform, scope: str) -> None:
    response = platform.client.get(f"/v1/profiles/profile_id/{ANN}", headers=platform.key(scope))
    assert response.status_code == 200
    assert set(response.json()["profile"]) == {"profile_id", scope}


def test_contact_needs_its_own_scope(platform: Platform) -> None:
    headers = platform.key("segments", "traits", "scores", "consents")
    profile = platform.client.get(f"/v1/profiles/profile_id/{ANN}", headers=headers).json()
    assert "contact" not in profile["profile"]
    asked = platform.client.get(
        f"/v1/profiles/profile_id/{ANN}", headers=headers, params={"fields": "contact"}
    )
    assert asked.status_code == 403
    assert "contact" in asked.json()["detail"]


def test_fields_narrow_the_answer(platform: Platform, full: dict[str, str]) -> None:
    response = platform.client.get(
        f"/v1/profiles/profile_id/{ANN}", headers=full, params={"fields": "segments,consents"}
    )
    assert set(response.json()["profile"]) == {"profile_id", "segments", "consents"}
    unknown = platform.client.get(
        f"/v1/profiles/profile_id/{ANN}", headers=full, params={"fields": "segments,salary"}
    )
    assert unknown.status_code == 422
    assert "salary" in unknown.text


def test_withdrawn_profiling_hides_scores_and_automatic_segments(
    platform: Platform, full: dict[str, str]
) -> None:
    profile = platform.client.get(f"/v1/profiles/profile_id/{BOB}", headers=full).json()["profile"]
    assert profile["scores"] == []
    assert [s["segment"] for s in profile["segments"]] == ["newsletter_clickers_no_purchase"]
    assert profile["consents"]["profiling"]["status"] == "withdrawn"
    assert profile["traits"]["favourite_category"] == "sport"


def test_anonymous_visitor_without_traits_or_scores(
    platform: Platform, full: dict[str, str]
) -> None:
    profile = platform.client.get("/v1/profiles/anonymous_id/anon-4", headers=full).json()
    assert profile["profile"]["traits"] == {}
    assert profile["profile"]["scores"] == []
    assert profile["profile"]["segments"] == []


def test_erased_and_unknown_answer_identically(platform: Platform, full: dict[str, str]) -> None:
    erased = [
        platform.client.get(f"/v1/profiles/profile_id/{ERASED}", headers=full),
        platform.client.get("/v1/profiles/anonymous_id/anon-erased", headers=full),
    ]
    unknown = [
        platform.client.get("/v1/profiles/profile_id/p-999999999999", headers=full),
        platform.client.get("/v1/profiles/anonymous_id/anon-never-seen", headers=full),
    ]
    for response in erased + unknown:
        assert response.status_code == 404
        assert response.content == erased[0].content
        assert response.json() == {"detail": NOT_FOUND_DETAIL}
        assert sorted(response.headers.keys()) == sorted(erased[0].headers.keys())


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v1/profiles/email_sha256/abc", "64 hexadecimal"),
        ("/v1/profiles/email_sha256/" + "g" * 64, "64 hexadecimal"),
        ("/v1/profiles/phone/0470", "profile_id"),
        ("/v1/profiles/anonymous_id/has%20space", "pattern"),
        ("/v1/profiles/device_id/" + "x" * 129, "128"),
    ],
)
def test_malformed_look_ups_are_422(
    platform: Platform, full: dict[str, str], path: str, fragment: str
) -> None:
    response = platform.client.get(path, headers=full)
    assert response.status_code == 422
    assert fragment in response.text


def test_authentication(platform: Platform) -> None:
    path = f"/v1/profiles/profile_id/{ANN}"
    missing = platform.client.get(path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    wrong = platform.client.get(path, headers={"Authorization": "Bearer cdp_nope_nope"})
    assert wrong.status_code == 401
    plaintext = create_key("app", ["segments"], platform.keys_path)
    assert platform.client.get(path, headers={"X-API-Key": plaintext}).status_code == 200
    key_id = plaintext.split("_")[1]
    assert revoke_key(key_id, platform.keys_path)
    time.sleep(0.06)
    assert platform.client.get(path, headers={"X-API-Key": plaintext}).status_code == 401


def test_keys_are_stored_hashed(platform: Platform) -> None:
    plaintext = create_key("website", ["segments", "consents"], platform.keys_path)
    stored = platform.keys_path.read_text()
    assert plaintext not in stored
    assert hashlib.sha256(plaintext.encode()).hexdigest() in stored
    assert platform.keys_path.stat().st_mode & 0o077 == 0
    assert any(key.name == "website" for key in list_keys(platform.keys_path))
    with pytest.raises(ValueError, match="salary"):
        create_key("x", ["segments", "salary"], platform.keys_path)
    with pytest.raises(ValueError, match="at least one scope"):
        create_key("x", [], platform.keys_path)


def test_batch_answers_in_order(platform: Platform, full: dict[str, str]) -> None:
    identifiers = [
        {"kind": "device_id", "value": "dev-1"},
        {"kind": "profile_id", "value": ERASED},
        {"kind": "profile_id", "value": BOB},
        {"kind": "anonymous_id", "value": "anon-never-seen"},
        {"kind": "email_sha256", "value": email_sha256(ANN_EMAIL)},
    ]
    response = platform.client.post(
        "/v1/profiles/batch",
        headers=full,
        json={"identifiers": identifiers, "fields": ["segments"]},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["found"] for r in results] == [True, False, True, False, True]
    assert [r["profile"] and r["profile"]["profile_id"] for r in results] == [
        ANN,
        None,
        BOB,
        None,
        ANN,
    ]
    # Erased and unknown entries look alike, apart from the value the caller sent.
    assert {k: v for k, v in results[1].items() if k != "value" and k != "kind"} == {
        k: v for k, v in results[3].items() if k != "value" and k != "kind"
    }
    assert set(results[2]["profile"]) == {"profile_id", "segments"}


def test_batch_limits(platform: Platform, full: dict[str, str]) -> None:
    one = {"kind": "profile_id", "value": ANN}
    at_limit = platform.client.post(
        "/v1/profiles/batch", headers=full, json={"identifiers": [one] * 500}
    )
    assert at_limit.status_code == 200
    assert len(at_limit.json()["results"]) == 500
    over = platform.client.post(
        "/v1/profiles/batch", headers=full, json={"identifiers": [one] * 501}
    )
    assert over.status_code == 422
    assert "At most 500" in over.text
    empty = platform.client.post("/v1/profiles/batch", headers=full, json={"identifiers": []})
    assert empty.status_code == 422
    bad_kind = platform.client.post(
        "/v1/profiles/batch",
        headers=full,
        json={"identifiers": [{"kind": "phone", "value": "0470"}]},
    )
    assert bad_kind.status_code == 422
    bad_value = platform.client.post(
        "/v1/profiles/batch",
        headers=full,
        json={"identifiers": [{"kind": "email_sha256", "value": "abc"}]},
    )
    assert bad_value.status_code == 422
    assert "64 hexadecimal" in bad_value.text
    not_granted = platform.client.post(
        "/v1/profiles/batch",
        headers=platform.key("segments"),
        json={"identifiers": [one], "fields": ["scores"]},
    )
    assert not_granted.status_code == 403


def test_request_log_holds_no_identifier(
    platform: Platform, full: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cdp_pipeline.api"):
        platform.client.get("/v1/profiles/anonymous_id/anon-1", headers=full)
        platform.client.get(f"/v1/profiles/email_sha256/{email_sha256(ANN_EMAIL)}", headers=full)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "/v1/profiles/{kind}/{value} 200" in text
    assert "anonymous_id:" in text
    for secret in ("anon-1", email_sha256(ANN_EMAIL), ANN, ANN_EMAIL):
        assert secret not in text


def test_no_snapshot_yet_is_503(tmp_path: Path) -> None:
    keys_path = tmp_path / "keys.json"
    app = create_app(keys_path=keys_path, snapshot_dir=tmp_path / "snapshots")
    headers = {"X-API-Key": create_key("t", ["segments"], keys_path)}
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "no_snapshot", "snapshot": None}
        response = client.get(f"/v1/profiles/profile_id/{ANN}", headers=headers)
    assert response.status_code == 503


def test_switch_to_a_new_snapshot_under_load(tmp_path: Path) -> None:
    """A thread keeps asking while two new nights are published: no failure, new data served."""
    platform = Platform(tmp_path)
    headers = platform.key("segments")
    outcomes: list[tuple[int, str, list[str]]] = []
    stop = threading.Event()

    def hammer() -> None:
        with TestClient(platform.app) as client:
            while not stop.is_set():
                response = client.get("/v1/profiles/anonymous_id/anon-1", headers=headers)
                body = response.json() if response.status_code == 200 else {}
                segments = [s["segment"] for s in body.get("profile", {}).get("segments", [])]
                outcomes.append((response.status_code, body.get("snapshot", ""), segments))

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        time.sleep(0.3)
        with duckdb.connect(str(platform.warehouse)) as con:
            con.execute(
                "insert into marts.segment_members values (?, ?, ?, ?, null)",
                ["m9", "newsletter_clickers_no_purchase", ANN, T0],
            )
        second = publish(platform.warehouse)
        time.sleep(0.3)
        third = publish(platform.warehouse)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join()
    assert len(outcomes) > 20
    assert [o for o in outcomes if o[0] != 200] == []
    served = [snapshot for _, snapshot, _ in outcomes]
    assert served[0] == platform.snapshot.stem
    assert served[-1] == third.stem
    assert second.stem in served
    assert "newsletter_clickers_no_purchase" in outcomes[-1][2]
    # Only the current snapshot and the one before it remain.
    remaining = sorted(p.name for p in third.parent.glob("serving-*.duckdb"))
    assert remaining == sorted([second.name, third.name])


def test_fast_path_answers_as_the_route_does(platform: Platform, full: dict[str, str]) -> None:
    """Single look-ups that skip FastAPI answer byte for byte as the FastAPI route does."""
    plain_app = create_app(
        keys_path=platform.keys_path,
        snapshot_dir=snapshots_dir_of(platform.warehouse),
        check_interval_s=0.05,
        fast_path=False,
    )
    segments_only = platform.key("segments")
    x_api_key = {"X-API-Key": full["Authorization"].removeprefix("Bearer ")}
    requests = [
        (f"/v1/profiles/profile_id/{ANN}", full, None),
        (f"/v1/profiles/profile_id/{BOB}", full, None),
        ("/v1/profiles/anonymous_id/anon-4", full, None),
        ("/v1/profiles/device_id/dev-1", x_api_key, None),
        (f"/v1/profiles/email_sha256/{email_sha256(ANN_EMAIL).upper()}", full, None),
        (f"/v1/profiles/profile_id/{ANN}", full, "segments,consents"),
        (f"/v1/profiles/profile_id/{ANN}", full, ""),
        (f"/v1/profiles/profile_id/{ANN}", full, "segments, scores"),
        (f"/v1/profiles/profile_id/{ANN}", segments_only, None),
        (f"/v1/profiles/profile_id/{ANN}", segments_only, "scores"),
        (f"/v1/profiles/profile_id/{ANN}", full, "salary"),
        (f"/v1/profiles/profile_id/{ERASED}", full, None),
        ("/v1/profiles/anonymous_id/anon-erased", full, None),
        ("/v1/profiles/anonymous_id/anon-never-seen", full, "segments"),
        ("/v1/profiles/anonymous_id/has%20space", full, None),
        (f"/v1/profiles/profile_id/{ANN}", {"Authorization": "Basic abc"}, None),
        (f"/v1/profiles/profile_id/{ANN}", {**x_api_key, "Authorization": "Basic a"}, None),
    ]
    with TestClient(plain_app) as plain:
        for path, headers, fields in requests:
            params = {"fields": fields} if fields is not None else None
            fast = platform.client.get(path, headers=headers, params=params)
            slow = plain.get(path, headers=headers, params=params)
            assert (fast.status_code, fast.content) == (slow.status_code, slow.content), path
            assert fast.headers == slow.headers, path
