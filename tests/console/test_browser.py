"""The console in a real headless Chromium (Debian's, driven by Playwright) against the engine run
as in production: gunicorn serving the app, a Celery worker doing the jobs.

Finance previews a settlement period, runs it, is refused approving their own run (maker-checker),
a second finance officer approves and pays it out and watches the payout job finish without
reloading. Marketing is not offered payroll and its URLs are refused. Screenshots of the pages go
to the test's directory (and to OMBARO_SCREENSHOTS, when set, for docs/screenshots)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from playwright import sync_api as playwright_api
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ombaro import commands
from tests.factories import settlements as f
from tests.factories.accounts import PASSWORD, Account, make_account
from tests.helpers import wait_until
from tests.services import Database, Process, start_worker
from workers.app import enqueuer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():  # `make test` installs it (Makefile: browser); say so rather than pass
    pytest.skip("Debian's chromium is not installed: run `make browser` (apt-get install chromium)",
                allow_module_level=True)

# Without these, Chromium tries Google's hosts at start and this machine's closed network refuses them.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP, TABLET = {"width": 1366, "height": 860}, {"width": 820, "height": 1180}


@pytest.fixture(scope="module")
def console_db(own_database: Callable[[], Database]) -> Database:
    """A database of its own: a settlement run covers every vendor of the period."""
    return own_database()


@pytest.fixture
def console_engine(console_db: Database) -> Engine:
    return console_db.engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def engine_url(spawn: Callable[..., Process], console_db: Database) -> Iterator[str]:
    """gunicorn (as in the Procfile) and a Celery worker on the console's database."""
    port = free_port()
    env = {"DATABASE_URL": console_db.url, "OMBARO_LOG_FORMAT": "text"}
    web = spawn("gunicorn", sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2",
                "--threads", "4", "web:create_app()", env=env)
    web.wait_for("Booting worker")
    start_worker(spawn, "console", env=env)
    wait_until(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, timeout=30,
               what="gunicorn listening")
    yield f"http://127.0.0.1:{port}"


# libfaketime's variables (`make test-clock`, tests/moved_clock.py): the browser and Playwright's
# driver run on the real clock, as a user's browser would beside the server's; under libfaketime
# Chromium stalls loading pages.
FAKED_CLOCK = ("LD_PRELOAD", "FAKETIME", "DONT_FAKE_MONOTONIC")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    faked = {k: os.environ.pop(k) for k in FAKED_CLOCK if k in os.environ}
    try:
        with playwright_api.sync_playwright() as p:
            os.environ.update(faked)
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                         env={k: v for k, v in os.environ.items() if k not in FAKED_CLOCK})
            yield chromium
            chromium.close()
    finally:
        os.environ.update(faked)


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Any, str], Path]:
    extra = os.environ.get("OMBARO_SCREENSHOTS")

    def take(page: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000  # a rendered page, not a blank one
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return take


def sign_in(browser: Any, base: str, account: Account, viewport: dict[str, int] = LAPTOP) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the console's "are you sure?" prompts
    page.goto(f"{base}/console/login")
    page.fill("input[name=email]", account.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/**")
    assert "/console/login" not in page.url
    return page


def relay_forever(engine: Engine, redis_url: str) -> Callable[[], None]:
    """What the scheduler's relay does every 10 s (the test Redis is shared with other sessions)."""
    def tick() -> None:
        with Session(engine) as session, session.begin():
            commands.relay(session, enqueuer(redis_url), stale_seconds=5)
    return tick


@pytest.fixture
def period_with_sales(console_engine: Engine) -> Account:
    """A vendor with three sales in the week of 2 June 2025 and a payout account."""
    vendor = make_account(console_engine, "vendor")
    with console_engine.begin() as conn:
        customer = f.user(conn)
        conn.execute(text("UPDATE vendors SET commission_rate = 12.50, pan_number = 'ABCDE1234F' WHERE id = :v"),
                     {"v": vendor.id})
        conn.execute(text("INSERT INTO vendor_payout_accounts (vendor_id, account_id) VALUES (:v, 'acc_Console001')"),
                     {"v": vendor.id})
        for amount, at, method in (("1499.00", f.ist(2025, 6, 2, 0, 0, 0), "upi"),
                                   ("2500.50", f.ist(2025, 6, 8, 23, 59, 59), "credit_card"),
                                   ("800.00", f.ist(2025, 6, 5, 18), "cash")):
            booking = f.booking(conn, vendor.id, customer, total=Decimal(amount), day=at.date())
            f.payment(conn, booking, amount=Decimal(amount), at=at, method=method)
    return vendor


def test_finance_previews_runs_and_a_second_officer_approves_and_pays(
        browser: Any, engine_url: str, console_engine: Engine, redis_url: str, period_with_sales: Account,
        shots: Callable[[Any, str], Path]) -> None:
    relay = relay_forever(console_engine, redis_url)
    maker = make_account(console_engine, "finance_department")
    checker = make_account(console_engine, "finance_department")

    page = sign_in(browser, engine_url, maker)
    page.click("nav >> text=Settlements")
    page.fill("input[name=period_start]", "2025-06-02")
    page.fill("input[name=period_end]", "2025-06-08")
    page.click("button:has-text('Preview (dry run)')")
    page.wait_for_url("**/console/settlements/jobs/**")
    wait_until(lambda: relay() or page.locator("#preview").count() > 0, timeout=60, interval=0.5, what="preview")
    preview = page.locator("#preview").inner_text()
    # Net = gross 3,999.50 - commission 599.94 - its GST 107.98 - TDS 4.80 (docs/settlements.md).
    assert "₹107.98" in preview and "₹3,286.78" in preview and "Nothing was written" in preview
    assert "Spa " in preview  # the vendor by name, not by id
    with console_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM payment_settlements")).scalar_one() == 0
    shots(page, "settlement-preview")

    page.click("button:has-text('Run for real')")
    page.wait_for_url("**/console/settlements/jobs/**")
    wait_until(lambda: relay() or page.locator("text=Review and approve").count() > 0, timeout=60, interval=0.5,
               what="the run")
    wait_until(lambda: relay() or _settlements(console_engine) == 1, timeout=60, what="the run's batches")
    page.click("text=Review and approve")
    assert "Spa " in page.locator("#settlements").inner_text()
    page.click("#settlements a >> nth=0")
    page.click("button:has-text('Approve')")
    assert "cannot approve it; ask another finance officer" in page.locator(".flash.error").inner_text()
    page.click("header >> text=Sign out")
    page.wait_for_url("**/console/login")

    page = sign_in(browser, engine_url, checker)
    page.goto(f"{engine_url}/console/settlements?status=pending")
    page.click("#settlements a >> nth=0")
    page.click("button:has-text('Approve')")
    assert "Approved." in page.locator(".flash.ok").inner_text()
    assert page.locator("h1 .status").inner_text() == "approved"
    shots(page, "settlement-detail")
    page.click("button:has-text('Pay out')")
    page.wait_for_url("**/console/settlements/jobs/**")
    live = page.locator("#job-live")
    # The status changes in place: the live region polls the job; the page itself is not reloaded
    # until the job is done.
    wait_until(lambda: relay() or "succeeded" in live.inner_text(), timeout=60, interval=0.5, what="payout job")
    with console_engine.connect() as conn:
        status, reference = conn.execute(text("SELECT status, payment_reference FROM payment_settlements")).one()
    assert status == "completed" and reference.startswith("trf_")
    page.goto(f"{engine_url}/console/jobs")
    assert page.locator("tr[data-job]").count() >= 3
    shots(page, "jobs")
    page.goto(f"{engine_url}/console/dashboard")
    assert page.locator("svg.chart").count() >= 3
    shots(page, "dashboard")


def _settlements(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM payment_settlements")).scalar_one())


def test_marketing_is_not_offered_payroll_and_its_urls_are_refused(
        browser: Any, engine_url: str, console_engine: Engine, shots: Callable[[Any, str], Path]) -> None:
    page = sign_in(browser, engine_url, make_account(console_engine, "marketing_department"), TABLET)
    nav = page.locator("header nav").inner_text()
    assert "Campaigns" in nav and "Payroll" not in nav and "Settlements" not in nav
    shots(page, "marketing-tablet")
    for path in ("/console/payroll", "/console/settlements"):
        response = page.goto(f"{engine_url}{path}")
        assert response is not None and response.status == 403
        assert "may not" in page.locator("main").inner_text()


def test_hr_sees_payroll_and_schedules_page_fits_a_tablet(
        browser: Any, engine_url: str, console_engine: Engine, shots: Callable[[Any, str], Path]) -> None:
    page = sign_in(browser, engine_url, make_account(console_engine, "hr_department"), TABLET)
    page.click("nav >> text=Payroll")
    assert page.locator("#payroll-run-form").is_visible()
    # Nothing wider than the screen: tables scroll inside their card, not the page.
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"]
    shots(page, "payroll-tablet")
    it = sign_in(browser, engine_url, make_account(console_engine, "it_department"))
    it.click("nav >> text=Schedules")
    assert it.locator("text=Run now").count() >= 1
    shots(it, "schedules")
