"""The matching settings editor: a candidate ``matching.yml``, its preview, and saving it.

A preview re-runs identity resolution (``cdp_pipeline.identity.resolve``, the nightly
step's own code) in a temporary DuckDB file on the records of the UI's replica
(``intermediate.int_identity__records`` and the web identities), with the stored manual
decisions and the *saved* Splink model, twice: once with the settings in force and once
with the candidate. The difference between the two assignments is what the change does:
current profiles that would merge into one, and profiles whose records would split. Both
runs start from the published ``identity.record_profiles`` so that the profile ids stay
the published ones; records that the run with the current settings already assigns
differently than the published result (decisions made since the last night) are counted
apart, so they are not mistaken for an effect of the change.

The saved model is never retrained here. When the candidate changes the compared
attributes, the model no longer fits (its fingerprint differs) and the preview scores
with the prior m and u values, as a first run without training would; the next nightly
run retrains and the page says so.

Large warehouses are previewed on a sample: the records of a deterministic sample of the
current profiles (every record of a sampled profile, so current profiles stay whole),
about ``MAX_PREVIEW_RECORDS`` records. Merges with profiles outside the sample are not
seen; the page names the fraction.
"""

import hashlib
import json
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import duckdb
import yaml

from cdp_pipeline.identity.config import ComparisonType, MatchingConfig, parse_config
from cdp_pipeline.identity.decisions import read_decisions
from cdp_pipeline.identity.resolve import resolve
from cdp_pipeline.identity.splink_model import META_FILE, MODEL_FILE, fingerprint
from cdp_pipeline.settings import CONFIG_DIR, Settings

logger = logging.getLogger(__name__)

COMPARISONS: tuple[str, ...] = get_args(ComparisonType)
GUARD_FLAGS = (
    "different_birth_date",
    "different_first_name",
    "twins",
    "cluster_birth_dates",
)
BLOCKED_KINDS = ("email", "phone", "name")
THRESHOLD_KEYS = (
    "match_probability",
    "match_weight",
    "review_match_probability",
    "review_match_weight",
)
# Measured with `bench/ui_matching_preview.py` on the 100 000-people bench
# warehouse (339 849 records), two cores at load average 12 to 16: a 5 187-record sample
# took 49 s for both runs; a 170 000-record sample had not finished its first run after
# 12 minutes (peak RSS 1.9 GB). A preview should come back while the admin waits, so
# larger warehouses are previewed on a sample of about this many records.
MAX_PREVIEW_RECORDS = 20_000
SAMPLE_LIMIT = 20
EXTRA_ATTRIBUTE_ROWS = 2


def project_config_path() -> Path:
    return CONFIG_DIR / "matching.yml"


def state_config_path(settings: Settings) -> Path:
    """The file the next pipeline run reads (it wins over the project's when it exists)."""
    return settings.state_dir / "identity" / "matching.yml"


def current_config_path(settings: Settings) -> Path:
    saved = state_config_path(settings)
    return saved if saved.exists() else project_config_path()


def read_current(settings: Settings) -> tuple[dict[str, Any], Path]:
    path = current_config_path(settings)
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}, path


# ------------------------------------------------------------------ form -> candidate


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _number(form: dict[str, Any], key: str) -> float | None:
    text = str(form.get(key) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a number") from None


def _set(mapping: dict[str, Any], key: str, value: Any, default: Any) -> None:
    """Set ``key``, leaving it out when it was absent and the value is the default."""
    if key in mapping or value != default:
        mapping[key] = value


def candidate_from_form(current: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    """The current settings with the editor's fields applied (other keys are kept as they are).

    ``form`` holds strings (and lists for repeated fields); the attribute rows are numbered
    ``attr_name_<i>``, ``attr_use_<i>``, ``attr_comparison_<i>``, ``attr_column_<i>``,
    ``attr_tf_<i>``, ``attr_block_<i>``. Raises ValueError naming the field of a bad value.
    """
    candidate = json.loads(json.dumps(current))  # a deep copy of plain YAML data
    attributes: dict[str, Any] = {}
    index = 0
    while f"attr_name_{index}" in form:
        name = str(form.get(f"attr_name_{index}") or "").strip()
        if name and form.get(f"attr_use_{index}"):
            previous = dict((current.get("attributes") or {}).get(name) or {})
            entry: dict[str, Any] = {**previous}
            entry["comparison"] = str(form.get(f"attr_comparison_{index}") or "exact")
            column = str(form.get(f"attr_column_{index}") or "").strip()
            if column:
                entry["column"] = column
            else:
                entry.pop("column", None)
            _set(entry, "tf_adjustment", bool(form.get(f"attr_tf_{index}")), False)
            _set(entry, "block", bool(form.get(f"attr_block_{index}")), False)
            if name in attributes:
                raise ValueError(f"attributes.{name}: listed twice")
            attributes[name] = entry
        index += 1
    candidate["attributes"] = attributes
    candidate["blocking_rules"] = [
        [part.strip() for part in line.split(",") if part.strip()]
        for line in _lines(str(form.get("blocking_rules") or ""))
    ]
    thresholds = {key: _number(form, key) for key in THRESHOLD_KEYS}
    candidate["thresholds"] = {k: v for k, v in thresholds.items() if v is not None}
    guards = dict(candidate.get("guards") or {})
    for flag in GUARD_FLAGS:
        _set(guards, flag, bool(form.get(f"guard_{flag}")), True)
    guards["min_non_name_weight"] = _number(form, "guard_min_non_name_weight")
    candidate["guards"] = guards
    blocked = dict(candidate.get("blocked_values") or {})
    for kind in BLOCKED_KINDS:
        blocked[kind] = {
            "exact": _lines(str(form.get(f"blocked_{kind}_exact") or "")),
            "regex": _lines(str(form.get(f"blocked_{kind}_regex") or "")),
        }
    limit = _number(form, "blocked_max_distinct_names_per_value")
    if limit is not None:
        if limit != int(limit):
            raise ValueError(f"blocked_max_distinct_names_per_value: {limit} is not a whole number")
        blocked["max_distinct_names_per_value"] = int(limit)
    candidate["blocked_values"] = blocked
    return candidate


def validate(candidate: dict[str, Any]) -> tuple[MatchingConfig | None, list[str]]:
    """The parsed config, or the problems (each naming its key) of ``parse_config``."""
    try:
        return parse_config(candidate, "(editor)"), []
    except ValueError as error:
        lines = str(error).splitlines()
        return None, [line.strip() for line in lines[1:]] or lines


def digest(candidate: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(candidate, sort_keys=True).encode()).hexdigest()[:16]


def config_diff(old: Any, new: Any, path: str = "") -> list[dict[str, Any]]:
    """Changed leaves as ``{"key": "a.b", "old": ..., "new": ...}``, in key order."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            changes += config_diff(old.get(key), new.get(key), sub)
        return changes
    return [] if old == new else [{"key": path, "old": old, "new": new}]


# ------------------------------------------------------------------ preview


@dataclass
class Preview:
    """The effect of a candidate on the current profiles (counts, then samples)."""

    records: int = 0
    profiles_before: int = 0
    profiles_after: int = 0
    merges: int = 0  # groups of current profiles that become one
    profiles_merged: int = 0  # current profiles taking part in a merge
    splits: int = 0  # current profiles whose records would be divided
    merge_sample: list[dict[str, Any]] = field(default_factory=list)
    split_sample: list[dict[str, Any]] = field(default_factory=list)
    sampled_fraction: float = 1.0
    drift_records: int = 0  # already assigned differently than published (decisions)
    model_note: str = ""
    seconds: float = 0.0


def _sample_modulus(records: int, limit: int) -> int:
    return 1 if records <= limit else math.ceil(records / limit)


def _copy_inputs(
    con: duckdb.DuckDBPyConnection, replica: Path, limit: int
) -> tuple[float, list[str]]:
    """Copy the identity inputs (and the published assignment) from the replica; returns the
    sampled fraction of current profiles and the names of the copied tables."""
    quoted = "'" + str(replica).replace("'", "''") + "'"
    con.execute(f"attach {quoted} as replica (read_only)")
    try:
        present = {
            f"{schema}.{table}"
            for schema, table in con.execute(
                "select table_schema, table_name from information_schema.tables"
                " where table_catalog = 'replica'"
            ).fetchall()
        }
        if "intermediate.int_identity__records" not in present:
            raise LookupError("the replica has no intermediate.int_identity__records yet")
        (records,) = con.execute(
            "select count(*) from replica.intermediate.int_identity__records"
        ).fetchone() or (0,)
        modulus = _sample_modulus(int(records), limit)
        sampled = "identity.record_profiles" in present and modulus > 1
        con.execute("create schema intermediate")
        con.execute("create schema identity")
        if sampled:
            # Whole current profiles, chosen by a hash of their id: the same sample each time.
            con.execute(
                "create temp table preview_records as select record_id"
                " from replica.identity.record_profiles where hash(profile_id) % ? = 0",
                [modulus],
            )
            con.execute(
                "create table intermediate.int_identity__records as select records.*"
                " from replica.intermediate.int_identity__records as records"
                " semi join preview_records on records.record_id = preview_records.record_id"
            )
        else:
            con.execute(
                "create table intermediate.int_identity__records as"
                " select * from replica.intermediate.int_identity__records"
            )
        copied = ["intermediate.int_identity__records"]
        if "intermediate.int_identity__web_identities" in present:
            con.execute(
                "create table intermediate.int_identity__web_identities as"
                " select * from replica.intermediate.int_identity__web_identities"
            )
            copied.append("intermediate.int_identity__web_identities")
        for table in ("record_profiles", "profile_history"):
            if f"identity.{table}" in present:
                con.execute(
                    f"create table identity.{table} as select * from replica.identity.{table}"
                )
                copied.append(f"identity.{table}")
        return (1.0 / modulus if sampled else 1.0), copied
    finally:
        con.execute("detach replica")


def _assignment(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(
        con.execute("select record_id, profile_id from identity.record_profiles").fetchall()
    )


def diff_assignments(
    before: dict[str, str], after: dict[str, str], sample: int = SAMPLE_LIMIT
) -> dict[str, Any]:
    """Merges (several profiles of ``before`` in one cluster of ``after``) and splits."""
    before_groups: dict[str, set[str]] = defaultdict(set)
    after_groups: dict[str, set[str]] = defaultdict(set)
    for record_id, profile_id in before.items():
        if record_id in after:
            before_groups[profile_id].add(after[record_id])
    for record_id, cluster in after.items():
        if record_id in before:
            after_groups[cluster].add(before[record_id])
    merges = sorted(sorted(group) for group in after_groups.values() if len(group) > 1)
    splits = sorted(
        (profile_id, len(clusters))
        for profile_id, clusters in before_groups.items()
        if len(clusters) > 1
    )
    return {
        "merges": len(merges),
        "profiles_merged": sum(len(group) for group in merges),
        "splits": len(splits),
        "merge_sample": [{"profiles": group} for group in merges[:sample]],
        "split_sample": [{"profile_id": pid, "parts": parts} for pid, parts in splits[:sample]],
    }


def _model_state(state_dir: Path, work: Path, config: MatchingConfig) -> tuple[Path, str]:
    """A throw-away state folder holding a copy of the saved model (never written back)."""
    model_dir = work / "state"
    model_dir.mkdir(parents=True)
    source = state_dir / "identity"
    for name in (MODEL_FILE, META_FILE):
        if (source / name).exists():
            shutil.copy2(source / name, model_dir / name)
    meta = model_dir / META_FILE
    saved = json.loads(meta.read_text()).get("fingerprint") if meta.exists() else None
    if saved == fingerprint(config):
        return model_dir, "the saved Splink model"
    return model_dir, (
        "the prior m and u values: the saved Splink model does not fit these attributes"
        " (the next run retrains it)"
    )


def _without_training(config: MatchingConfig) -> MatchingConfig:
    """The config with training out of reach: a preview never trains a model."""
    training = config.training.model_copy(update={"retrain": False, "min_records": 10**12})
    return config.model_copy(update={"training": training})


def run_preview(
    replica: Path,
    current: MatchingConfig,
    candidate: MatchingConfig,
    state_dir: Path,
    limit: int = MAX_PREVIEW_RECORDS,
) -> Preview:
    """Resolve the replica's records with ``current`` and ``candidate``; diff the results."""
    started = time.perf_counter()
    decisions = read_decisions(state_dir / "identity" / "decisions.jsonl")
    with tempfile.TemporaryDirectory(prefix="cdp-matching-preview-") as folder:
        work = Path(folder)
        con = duckdb.connect(str(work / "preview.duckdb"))
        try:
            fraction, _ = _copy_inputs(con, replica, limit)
            published = (
                _assignment(con)
                if con.execute(
                    "select count(*) from information_schema.tables"
                    " where table_schema = 'identity' and table_name = 'record_profiles'"
                ).fetchone()[0]
                else {}
            )
            runs: list[dict[str, str]] = []
            notes: list[str] = []
            for label, config in (("current", current), ("candidate", candidate)):
                model_dir, note = _model_state(state_dir, work / label, config)
                notes.append(note)
                resolve(
                    con,
                    run_id=f"preview-{label}",
                    config=_without_training(config),
                    retrain=False,
                    state_dir=model_dir,
                    decisions=decisions,
                )
                runs.append(_assignment(con))
                # The second run must start from the published ids and history, not from
                # what the first run wrote.
                con.execute(
                    "delete from identity.profile_history where run_id = ?", [f"preview-{label}"]
                )
                con.execute("delete from identity.record_profiles")
                if published:
                    con.execute(
                        "insert into identity.record_profiles (record_id, profile_id)"
                        " select unnest(?::varchar[]), unnest(?::varchar[])",
                        [list(published), list(published.values())],
                    )
        finally:
            con.close()
    before, after = runs
    found = diff_assignments(before, after)
    drift = sum(1 for record_id, pid in before.items() if published.get(record_id, pid) != pid)
    preview = Preview(
        records=len(before),
        profiles_before=len(set(before.values())),
        profiles_after=len(set(after.values())),
        sampled_fraction=fraction,
        drift_records=drift,
        model_note=notes[1],
        seconds=round(time.perf_counter() - started, 1),
        **found,
    )
    logger.info(
        "Matching preview: %d records, %d merges, %d splits in %.1f s",
        preview.records,
        preview.merges,
        preview.splits,
        preview.seconds,
    )
    return preview


@dataclass
class PreviewJob:
    """One preview in the background: the page polls it until it is done."""

    job_id: str
    user: str
    candidate: dict[str, Any]
    digest: str
    base_digest: str  # the settings in force when the preview started
    status: str = "running"  # running, done, failed
    preview: Preview | None = None
    error: str = ""
    started_at: float = field(default_factory=time.monotonic)


class PreviewRunner:
    """Runs previews one at a time in a background thread (each is two identity runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self.jobs: dict[str, PreviewJob] = {}

    def start(
        self,
        user: str,
        candidate: dict[str, Any],
        current: MatchingConfig,
        parsed: MatchingConfig,
        replica: Path,
        state_dir: Path,
        base_digest: str,
    ) -> PreviewJob:
        job = PreviewJob(uuid.uuid4().hex[:12], user, candidate, digest(candidate), base_digest)
        with self._lock:
            self.jobs[job.job_id] = job
        thread = threading.Thread(
            target=self._run,
            args=(job, current, parsed, replica, state_dir),
            daemon=True,
            name=f"matching-preview-{job.job_id}",
        )
        thread.start()
        return job

    def _run(
        self,
        job: PreviewJob,
        current: MatchingConfig,
        parsed: MatchingConfig,
        replica: Path,
        state_dir: Path,
    ) -> None:
        with self._run_lock:
            try:
                job.preview = run_preview(replica, current, parsed, state_dir)
                job.status = "done"
            except Exception as error:  # noqa: BLE001 - shown on the page, not a 500
                logger.exception("Matching preview %s failed", job.job_id)
                job.error = f"{type(error).__name__}: {error}"
                job.status = "failed"

    def get(self, job_id: str) -> PreviewJob | None:
        with self._lock:
            return self.jobs.get(job_id)

    def wait(self, job_id: str, timeout: float) -> PreviewJob | None:
        """The job once it left ``running`` (or as it is after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        job = self.get(job_id)
        while job is not None and job.status == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        return job


# ------------------------------------------------------------------ save


def save(settings: Settings, candidate: dict[str, Any], by: str) -> tuple[Path, Path | None]:
    """Write ``<state_dir>/identity/matching.yml``; the previous one is kept, timestamped."""
    target = state_config_path(settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    kept = None
    if target.exists():
        kept = target.with_name(f"matching-{now.strftime('%Y%m%dT%H%M%S%fZ')}.yml")
        shutil.copy2(target, kept)
    header = (
        f"# Saved in the marketer UI by {by} at {now.isoformat(timespec='seconds')}.\n"
        "# The nightly identity step reads this file instead of cdp_pipeline/config/"
        "matching.yml.\n"
    )
    body = yaml.safe_dump(candidate, sort_keys=False, allow_unicode=True, width=100)
    temporary = target.with_suffix(".yml.tmp")
    temporary.write_text(header + body, encoding="utf-8")
    temporary.replace(target)
    return target, kept
