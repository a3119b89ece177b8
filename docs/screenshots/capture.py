"""Screenshots of the console for the README, taken from a running engine with the demo data.

    make seed                      # embedded services, migrations, demo data
    eval "$(.venv/bin/ombaro env)" && make run   # or gunicorn + a worker, in another terminal
    .venv/bin/python docs/screenshots/capture.py --url http://127.0.0.1:8000

Signs in as the demo finance officer, HR, marketing, operations (front office) and IT accounts
(password from `ombaro seed --demo`), starts a settlement and a payroll preview and waits for them,
and saves PNGs beside this file. Needs Debian's chromium (`make browser`)."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright
from sqlalchemy import create_engine, text

from devtools.demo import DEMO_PASSWORD

HERE = Path(__file__).parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LAPTOP, TABLET = {"width": 1366, "height": 860}, {"width": 820, "height": 1180}


def demo_logins() -> dict[str, str]:
    engine = create_engine(os.environ["DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT DISTINCT ON (p.role) p.role, u.email FROM user_profiles p JOIN auth.users u ON u.id = p.id "
            "WHERE p.status = 'active' ORDER BY p.role, u.email")).all()
    return {role: email for role, email in rows}


def sign_in(browser: Any, url: str, email: str, viewport: dict[str, int] = LAPTOP) -> Any:
    page = browser.new_context(viewport=viewport).new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{url}/console/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/**")
    return page


def wait_for(page: Any, selector: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while page.locator(selector).count() == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(selector)
        time.sleep(0.5)


def preview(page: Any, url: str, name: str) -> None:
    """Start a dry run from `url` and photograph its preview once the job is done."""
    page.goto(url)
    page.click("button:has-text('Preview (dry run)')")
    wait_for(page, "#preview")
    page.locator("#preview").scroll_into_view_if_needed()
    shot(page, name)


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(HERE / f"{name}.png"), full_page=False)
    print(f"  {name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    logins = demo_logins()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=ARGS)
        it = sign_in(browser, args.url, logins["it_department"])
        it.goto(f"{args.url}/console/dashboard")
        shot(it, "dashboard")
        it.goto(f"{args.url}/console/schedules")
        shot(it, "schedules")

        finance = sign_in(browser, args.url, logins["finance_department"])
        preview(finance, f"{args.url}/console/settlements", "settlement-preview")
        hr = sign_in(browser, args.url, logins["hr_department"])
        preview(hr, f"{args.url}/console/payroll", "payroll-preview")

        it.goto(f"{args.url}/console/jobs")
        shot(it, "jobs")

        marketing = sign_in(browser, args.url, logins["marketing_department"], TABLET)
        marketing.goto(f"{args.url}/console/campaigns")
        shot(marketing, "campaigns-tablet")

        front_office = sign_in(browser, args.url, logins["fo_department"])
        front_office.goto(f"{args.url}/console/dispatch")
        shot(front_office, "dispatch")
        browser.close()


if __name__ == "__main__":
    main()
