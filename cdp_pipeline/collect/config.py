"""Settings of the event endpoint, read from the environment when the app is created."""

import os
from dataclasses import dataclass
from pathlib import Path

from cdp_pipeline.collect.plan import DEFAULT_PLAN_PATH
from cdp_pipeline.settings import PROJECT_ROOT, get_settings

# Segment's own limits are 32 KB a message and 500 KB a batch; the SDKs stay below
# them. The body cap is looser (and applies after gunzip, against gzip bombs).
MAX_MESSAGE_BYTES = 32 * 1024
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class CollectorConfigError(ValueError):
    """The endpoint cannot start with this environment; the message names the variable."""


@dataclass(frozen=True)
class CollectorConfig:
    """What one endpoint process needs: keys, where to land, the plan, how to rotate."""

    write_keys: tuple[str, ...]
    landing_dir: Path
    plan_path: Path = DEFAULT_PLAN_PATH
    # A published file is immutable, so the nightly ingest sees events at most this
    # late; 5 minutes gives at most 288 files a day per process and stream.
    rotate_seconds: float = 300.0
    rotate_bytes: int = 64 * 1024 * 1024
    fsync: bool = True
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> "CollectorConfig":
        """Read CDP_WRITE_KEYS, CDP_TRACKING_PLAN and the CDP_COLLECT_* variables."""
        keys = tuple(
            k.strip() for k in os.environ.get("CDP_WRITE_KEYS", "").split(",") if k.strip()
        )
        if not keys:
            raise CollectorConfigError(
                "CDP_WRITE_KEYS is empty: set it to one or more comma-separated write keys"
            )
        plan = os.environ.get("CDP_TRACKING_PLAN")
        plan_path = Path(plan) if plan else DEFAULT_PLAN_PATH
        if not plan_path.is_absolute():
            plan_path = (PROJECT_ROOT / plan_path).resolve()
        origins = os.environ.get("CDP_COLLECT_CORS_ORIGINS", "")
        return cls(
            write_keys=keys,
            landing_dir=get_settings().landing_dir,
            plan_path=plan_path,
            rotate_seconds=_number("CDP_COLLECT_ROTATE_SECONDS", 300.0),
            rotate_bytes=int(_number("CDP_COLLECT_ROTATE_BYTES", 64 * 1024 * 1024)),
            fsync=os.environ.get("CDP_COLLECT_FSYNC", "1").strip().lower()
            not in ("0", "false", "no"),
            max_body_bytes=int(_number("CDP_COLLECT_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
        )


def _number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError as error:
        raise CollectorConfigError(f"{name}={value!r} is not a number") from error
    if number <= 0:
        raise CollectorConfigError(f"{name}={value!r} must be positive")
    return number
