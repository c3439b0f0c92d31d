"""Users, passwords and sessions of the marketer UI (no warehouse needed)."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cdp_pipeline.settings import get_settings
from cdp_pipeline.ui import create_user
from cdp_pipeline.ui.app import create_app
from cdp_pipeline.ui.auth import SessionSigner, authenticate, verify_password
from cdp_pipeline.ui.cli import ui_app


@pytest.fixture(autouse=True)
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CDP_WAREHOUSE", str(tmp_path / "warehouse" / "cdp.duckdb"))
    monkeypatch.setenv("CDP_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.delenv("CDP_UI_SECRET", raising=False)
    return tmp_path


def test_create_user_stores_a_salted_scrypt_hash(platform: Path) -> None:
    create_user("mia", "marketer", "correct horse")
    create_user("max", "marketer", "correct horse")
    users = json.loads((platform / "state" / "ui" / "users.json").read_text())["users"]
    assert users["mia"]["password"] != users["max"]["password"]
    assert verify_password(users["mia"]["password"], "correct horse")
    assert not verify_password(users["mia"]["password"], "correct horsE")
    assert authenticate(get_settings(), "mia", "correct horse").role == "marketer"
    assert authenticate(get_settings(), "mia", "wrong") is None
    assert authenticate(get_settings(), "nobody", "correct horse") is None


def test_create_user_refuses_unknown_roles_and_short_passwords() -> None:
    with pytest.raises(ValueError, match="role"):
        create_user("mia", "owner", "long enough")
    with pytest.raises(ValueError, match="8 characters"):
        create_user("mia", "admin", "short")


def test_a_session_cookie_cannot_be_forged_or_reused_under_another_secret() -> None:
    signer = SessionSigner("secret-one")
    cookie = signer.dumps("mia")
    assert signer.loads(cookie) == "mia"
    assert SessionSigner("secret-two").loads(cookie) is None
    assert signer.loads(cookie[:-2] + "xx") is None
    assert signer.loads(None) is None


def test_login_logout_and_a_removed_user(platform: Path) -> None:
    client = TestClient(create_app(get_settings()))
    # A fresh install: the login page tells how to add the first user, and only then.
    assert "cdp ui add-user NAME --role admin" in client.get("/login").text
    create_user("ada", "admin", "ada-password")
    assert 'id="no-users"' not in client.get("/login").text
    login = client.post(
        "/login",
        data={"username": "ada", "password": "ada-password", "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert login.status_code == 303 and login.headers["location"] == "/"
    assert "samesite=strict" in login.headers["set-cookie"].lower()
    assert "httponly" in login.headers["set-cookie"].lower()
    assert client.get("/matching", follow_redirects=False).status_code == 200
    # Without a published snapshot the pages still answer and say so.
    assert "No published snapshot" in client.get("/").text
    (platform / "state" / "ui" / "users.json").write_text('{"users": {}}')
    assert client.get("/", follow_redirects=False).status_code == 303
    audit = (platform / "state" / "ui" / "audit.jsonl").read_text().splitlines()
    assert json.loads(audit[0])["user"] == "ada" and json.loads(audit[0])["action"] == "login"


def test_cli_adds_a_user(platform: Path) -> None:
    result = CliRunner().invoke(
        ui_app, ["add-user", "bob", "--role", "admin", "--password", "bob-password"]
    )
    assert result.exit_code == 0, result.output
    assert authenticate(get_settings(), "bob", "bob-password").is_admin
