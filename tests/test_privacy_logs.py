"""Logs and Dagster metadata never hold a person's data (issue 6, retention and minimisation).

One night runs in-process on the generated delivery (conftest's module-scoped workspace and
instance) with every logger at DEBUG. Then the captured Python logs, the captured
stdout/stderr and the whole Dagster event log of every run in the instance (each event's
message, materialisation and check metadata, serialised in full) are searched for the
sample's e-mail addresses, phone numbers and full names: zero hits.
"""

import csv
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from cdp_pipeline.identity import normalise
from cdp_pipeline.runner import run_nightly
from tests.conftest import NightlyWorkspace

pytestmark = pytest.mark.slow

EMAIL = re.compile(r"[a-z0-9_.+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)+")
# A phone in any spelling: digits with spaces, dots, slashes or dashes between them.
PHONE_LIKE = re.compile(r"\+?\d[\d ./\-]{7,}\d")


@dataclass(frozen=True)
class SampleIdentifiers:
    """What a person of the sample is recognised by in free text."""

    emails: frozenset[str]
    phone_digits: frozenset[str]
    full_names: re.Pattern[str]


def _sample_identifiers(landing: Path) -> SampleIdentifiers:
    emails: set[str] = set()
    phones: set[str] = set()
    names: set[str] = set()
    with open(landing / "_truth" / "people.csv", encoding="utf-8") as handle:
        for person in csv.DictReader(handle):
            emails |= {
                person[key].strip().lower()
                for key in ("email", "family_email", "alt_email")
                if person[key].strip()
            }
            for key in ("mobile", "landline"):
                parsed = normalise.phone(person[key] or "")
                if parsed:
                    phones.add(parsed[0].removeprefix("+32"))
            names.add(f"{person['first_name']} {person['last_name']}".lower())
            names.add(f"{person['last_name']} {person['first_name']}".lower())
    # Every address anywhere in the delivery (typos, old addresses of the sources).
    for path in landing.rglob("*"):
        if path.is_file() and "_truth" not in path.parts:
            text = path.read_bytes().decode("utf-8", errors="ignore").lower()
            emails |= set(EMAIL.findall(text))
    any_name = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in sorted(names)) + r")\b")
    return SampleIdentifiers(frozenset(emails), frozenset(phones), any_name)


def _leaks(text: str, sample: SampleIdentifiers) -> list[str]:
    lowered = text.lower()
    hits = [f"e-mail {e}" for e in sorted(set(EMAIL.findall(lowered)) & sample.emails)]
    for candidate in PHONE_LIKE.findall(lowered):
        digits = re.sub(r"\D", "", candidate)
        hits += [f"phone {candidate!r}" for d in sample.phone_digits if d in digits]
    hits += [f"name {n!r}" for n in sorted(set(sample.full_names.findall(lowered)))]
    return hits


def _event_log_texts(instance: dg.DagsterInstance) -> dict[str, str]:
    """Every event of every run, serialised whole: message, metadata, check results."""
    texts = {}
    for run in instance.get_runs():
        for index, entry in enumerate(instance.all_logs(run.run_id)):
            texts[f"run {run.job_name} {run.run_id[:8]} event {index}"] = dg.serialize_value(entry)
    return texts


def test_logs_and_metadata_hold_no_personal_data(
    nightly_workspace: NightlyWorkspace,
    dagster_instance: dg.DagsterInstance,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    outcome = run_nightly(instance=dagster_instance, log_level="DEBUG")
    captured = capfd.readouterr()

    sample = _sample_identifiers(nightly_workspace.landing)
    assert len(sample.emails) > 100 and len(sample.phone_digits) > 50
    texts = {
        "caplog": "\n".join(
            f"{record.name} {record.getMessage()} {getattr(record, 'dagster_meta', '')}"
            for record in caplog.records
        ),
        "stdout": captured.out,
        "stderr": captured.err,
        **_event_log_texts(dagster_instance),
    }
    # The search itself works: the delivery's own files are full of the sample.
    assert _leaks((nightly_workspace.landing / "_truth" / "people.csv").read_text(), sample)

    leaks = {where: hits for where, text in texts.items() if (hits := _leaks(text, sample))}
    assert not leaks, "\n".join(f"{where}: {hits[:5]}" for where, hits in leaks.items())
    # Scanned first so that a failed night still reports what it logged; a failed night
    # did not log everything a night logs, so it fails the test too.
    assert outcome.success
