"""Users, passwords and signed session cookies of the marketer UI.

Users live in ``state_dir/ui/users.json`` (beside the warehouse, never in it, so a rebuild
keeps them): ``{"users": {name: {"role": ..., "password": "scrypt$..."}}}``. Passwords are
hashed with the standard library's scrypt; nothing else is stored. The session cookie is
signed with itsdangerous using a secret from ``CDP_UI_SECRET`` or, for development, one
generated once into ``state_dir/ui/secret`` (mode 0600).
"""

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from cdp_pipeline.settings import Settings

ROLES = ("marketer", "admin")
SESSION_COOKIE = "cdp_ui_session"
SESSION_MAX_AGE = 12 * 3600
# scrypt cost: n=2**14, r=8 is the interactive-login setting of the scrypt paper; a login
# costs about 50 ms and 16 MiB, which bounds password guessing without slowing marketers.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True)
class User:
    """A logged-in person of the UI."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def ui_dir(settings: Settings) -> Path:
    """The UI's own state: users, secret, audit log, warehouse replica."""
    return settings.state_dir / "ui"


def users_path(settings: Settings) -> Path:
    return ui_dir(settings) / "users.json"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=bytes.fromhex(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        dklen=len(expected) // 2,
    )
    return hmac.compare_digest(digest.hex(), expected)


def _read_users(path: Path) -> dict[str, dict[str, str]]:
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8")).get("users", {})


def create_user(name: str, role: str, password: str, settings: Settings | None = None) -> User:
    """Add or replace a user (a replaced user gets the new role and password)."""
    from cdp_pipeline.settings import get_settings

    if role not in ROLES:
        raise ValueError(f"role {role!r}; allowed: {list(ROLES)}")
    name = name.strip()
    if not name or len(password) < 8:
        raise ValueError("a user needs a name and a password of at least 8 characters")
    path = users_path(settings or get_settings())
    users = _read_users(path)
    users[name] = {"role": role, "password": hash_password(password)}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"users": users}, indent=2, sort_keys=True), encoding="utf-8")
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return User(name=name, role=role)


def authenticate(settings: Settings, name: str, password: str) -> User | None:
    """The user when the password is right, else None (unknown users cost the same time)."""
    entry = _read_users(users_path(settings)).get(name.strip())
    # Hash even for an unknown name so response time does not reveal which names exist.
    stored = entry["password"] if entry else hash_password("not a user")
    if verify_password(stored, password) and entry:
        return User(name=name.strip(), role=entry["role"])
    return None


def has_users(settings: Settings) -> bool:
    """Whether anyone can log in yet (a fresh `make dev` has no users)."""
    return bool(_read_users(users_path(settings)))


def known_user(settings: Settings, name: str) -> User | None:
    """The user as the users file says now (a removed user's cookie stops working)."""
    entry = _read_users(users_path(settings)).get(name)
    return User(name=name, role=entry["role"]) if entry else None


def session_secret(settings: Settings) -> str:
    configured = os.environ.get("CDP_UI_SECRET")
    if configured:
        return configured
    path = ui_dir(settings) / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text(encoding="utf-8").strip()


class SessionSigner:
    """Signs the user name into the cookie; a forged or expired cookie reads as no session."""

    def __init__(self, secret: str) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="cdp-ui-session")

    def dumps(self, name: str) -> str:
        return self._serializer.dumps({"user": name})

    def loads(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)
        except BadSignature:
            return None
        return data.get("user") if isinstance(data, dict) else None
