"""Schemathesis fuzzes the API from its own OpenAPI description: no input may cause a 500."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from test_api import Platform

from cdp_pipeline.api.keys import SCOPES, create_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    yield Platform(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module")
def key_headers(fuzz_platform: Platform) -> dict[str, str]:
    plaintext = create_key("fuzz", list(SCOPES), fuzz_platform.keys_path)
    return {"Authorization": f"Bearer {plaintext}"}


def test_no_input_causes_a_server_error(
    fuzz_platform: Platform, key_headers: dict[str, str]
) -> None:
    """Every operation, valid and invalid inputs (bounded examples), answered without a 5xx."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_platform.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 3
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=key_headers, checks=CHECKS)

        fuzz()


def test_openapi_names_every_route(fuzz_platform: Platform, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    document = TestClient(fuzz_platform.app).get("/openapi.json").json()
    assert {"/v1/profiles/{kind}/{value}", "/v1/profiles/batch", "/healthz"} <= set(
        document["paths"]
    )
    kinds = document["components"]["schemas"]["IdentifierKind"]["enum"]
    assert kinds == ["profile_id", "a_profiel_id", "anonymous_id", "device_id", "email_sha256"]
