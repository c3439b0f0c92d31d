"""The UI's audit log: ``state_dir/ui/audit.jsonl``, one line per decision, who and when."""

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdp_pipeline.settings import Settings

_LOCK = threading.Lock()


def audit_path(settings: Settings) -> Path:
    return settings.state_dir / "ui" / "audit.jsonl"


def record(settings: Settings, user: str, action: str, **details: Any) -> dict[str, Any]:
    """Append one entry; the lock keeps lines whole when two requests decide at once."""
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "user": user,
        "action": action,
        **details,
    }
    path = audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK, path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False, sort_keys=True, default=str) + "\n")
    return entry


def read(settings: Settings, limit: int = 200) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first."""
    path = audit_path(settings)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()[-limit:]
    return [json.loads(line) for line in reversed(lines) if line.strip()]
