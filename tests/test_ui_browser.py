"""The marketer UI end to end in headless Chromium (Playwright), with screenshots.

The app is served by uvicorn in a thread on a free port, on a real nightly run of a
generated delivery. A split made in the browser is then honoured by an identity-only
resolve of the same warehouse (a second full night is covered by tests/test_ui.py).
Screenshots of every main page go to docs/screenshots/.
"""

import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import uvicorn

from cdp_pipeline.identity import resolve
from cdp_pipeline.settings import PROJECT_ROOT, get_settings
from cdp_pipeline.ui.app import create_app
from tests.conftest import NightlyWorkspace
from tests.test_ui import prepare_night

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
    pytest.skip(
        "/usr/bin/chromium is missing: `apt-get install -y chromium` (make test does it as root)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture(scope="module")
def served(
    nightly_workspace: NightlyWorkspace,
    dagster_instance: dg.DagsterInstance,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, object]]:
    prepare_night(dagster_instance)
    app = create_app(get_settings(), segments_dir=tmp_path_factory.mktemp("segments"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def _shot(page: object, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _login(browser: object, base: str, name: str, password: str, shot: bool = False) -> object:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/")
    assert "/login" in page.url
    if shot:
        _shot(page, "login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def _profile_with_records() -> tuple[str, str, list[str]]:
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        profile_id, last_name = con.execute(
            "select rp.profile_id, any_value(p.last_name) from identity.record_profiles as rp"
            " inner join marts.profiles as p on p.profile_id = rp.profile_id"
            " where p.last_name is not null group by rp.profile_id"
            " having count(*) between 3 and 8 order by count(*) desc, rp.profile_id limit 1"
        ).fetchone()
        records = [
            r[0]
            for r in con.execute(
                "select record_id from identity.record_profiles where profile_id = ?"
                " order by record_id",
                [profile_id],
            ).fetchall()
        ]
    return profile_id, last_name, records


def test_marketer_journey(served: tuple[str, object], browser: object) -> None:
    base, app = served
    page = _login(browser, base, "mia", "mia-password-1", shot=True)
    profile_id, last_name, records = _profile_with_records()

    # Search by name, open the 360 page from the results.
    page.fill("input[name=q]", last_name)
    page.press("input[name=q]", "Enter")
    page.wait_for_selector("#results")
    _shot(page, "search")
    page.click(f"#results a[href='/profiles/{profile_id}']")
    page.wait_for_selector("#records")
    assert page.locator("#links tr").count() >= 2
    _shot(page, "profile")

    # Split the last record off; the decision survives an identity run on the warehouse.
    moved = records[-1]
    page.check(f"#records input[type=checkbox][value='{moved}']")
    page.click("#split-form button.danger")
    page.wait_for_selector(".flash")
    assert "Split saved" in page.inner_text(".flash")
    with duckdb.connect(str(get_settings().warehouse)) as con:
        resolve(con, run_id="ui-browser-test")
    assert app.state.store.refresh_replica(force=True), app.state.store.replica_message
    with duckdb.connect(str(get_settings().warehouse), read_only=True) as con:
        (kept_profile,) = con.execute(
            "select profile_id from identity.record_profiles where record_id = ?", [records[0]]
        ).fetchone()
    page.goto(f"{base}/profiles/{kept_profile}")
    assert page.locator(f"#records input[type=checkbox][value='{moved}']").count() == 0
    assert page.locator(f"#records input[type=checkbox][value='{records[0]}']").count() == 1

    # Review queue: accept the first pair, the count goes down by one.
    page.goto(f"{base}/review")
    _shot(page, "review")
    left = int(re.search(r"(\d+) pair", page.inner_text("#left")).group(1))
    if left:
        page.click("button[value=accept]")
        page.wait_for_load_state()
        assert f"{left - 1} pair(s) left" in page.inner_text("#left")

    # Segments: sizes, then a new segment with its estimated size and members, saved.
    page.goto(f"{base}/segments")
    page.wait_for_selector("#segments")
    _shot(page, "segments")
    page.goto(f"{base}/segments/new")
    page.fill("input[name=name]", "browser_email_granted")
    page.fill("input[name=description]", "E-mail consent granted.")
    page.select_option("select[name=kind_0]", "consent")
    page.select_option("select[name=name_0]", "email_marketing")
    page.click("button[value=estimate]")
    page.wait_for_selector("#estimate")
    assert int(page.inner_text("#estimate")) > 0
    assert page.locator("#members tr").count() > 1
    page.click("button[value=save]")
    page.wait_for_selector("#saved")
    _shot(page, "segment_new")

    # Destinations: start a dry run and read its counts.
    page.goto(f"{base}/destinations")
    page.click("form[action='/destinations/culture_lapsed_newsletter/dry-run'] button")
    page.wait_for_selector("#dry-run")
    assert "would add" in page.inner_text("#dry-run")
    _shot(page, "destinations")

    page.goto(f"{base}/privacy")
    _shot(page, "privacy")
    # A marketer is refused the matching settings.
    assert page.goto(f"{base}/matching").status == 403
    page.close()


def test_admin_pages(served: tuple[str, object], browser: object) -> None:
    base, _ = served
    page = _login(browser, base, "ada", "ada-password-1")
    page.goto(f"{base}/matching")
    page.wait_for_selector("#thresholds")
    _shot(page, "matching")
    page.goto(f"{base}/audit")
    page.wait_for_selector("#audit")
    assert "split" in page.inner_text("#audit")
    _shot(page, "audit")
    page.close()
