"""Console pages against the API calls behind them, in the same run: each page is rendered through
Flask's test client with a signed-in session; the very API calls the page made (recorded while it
rendered) are then made directly with the same user's bearer token. Alternating rounds, medians.

The console's calls look the account up afresh every time (it must: tests/console/test_principal.py),
so the direct calls do too (the WSGI key `ombaro.fresh_principal`), or the API side would be answered
from the 1 s principal cache that the page may not use; --api-cache measures them the old way.

Runs against the configured database (DATABASE_URL, the embedded one by default) with the demo data
(`make seed`) and its demo logins; it only reads (pages that start work are not timed).
Usage: python bench/console.py [--rounds 30] [--api-cache]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

import web.console.session as console_session  # noqa: E402
from devtools.demo import DEMO_PASSWORD  # noqa: E402
from ombaro.db import get_engine  # noqa: E402
from web import create_app  # noqa: E402
from web.auth import FRESH_PRINCIPAL  # noqa: E402

PAGES = {  # page -> the demo role that uses it
    "/console/dashboard": "directors",
    "/console/jobs": "it_department",
    "/console/schedules": "it_department",
    "/console/settlements": "finance_department",
    "/console/payroll": "hr_department",
    "/console/campaigns": "marketing_department",
    "/console/dispatch": "fo_department",
}


def demo_email(role: str) -> str:
    with get_engine().connect() as conn:
        return str(conn.execute(text(
            "SELECT u.email FROM user_profiles p JOIN auth.users u ON u.id = p.id WHERE p.role = :r "
            "AND p.status = 'active' ORDER BY u.email LIMIT 1"), {"r": role}).scalar_one())


def recorded_calls(browser: Any, page: str) -> list[tuple[str, str, Any]]:
    """The API calls `page` makes, recorded by wrapping `api` where the page modules imported it."""
    calls: list[tuple[str, str, Any]] = []
    real = console_session.api

    def spy(method: str, path: str, **kwargs: Any) -> Any:
        calls.append((method, path, kwargs.get("query")))
        return real(method, path, **kwargs)

    modules = [m for name, m in sys.modules.items() if name.startswith("web.console.") and getattr(m, "api", None)]
    for module in modules:
        module.api = spy  # type: ignore[attr-defined]
    try:
        assert browser.get(page).status_code == 200, page
    finally:
        for module in modules:
            module.api = real  # type: ignore[attr-defined]
    return calls


def timed(work: Any) -> float:
    began = time.perf_counter()
    work()
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--api-cache", action="store_true",
                        help="let the direct API calls take the principal cache (unlike the page's)")
    args = parser.parse_args()
    app = create_app()
    print(f"{'page':<24} {'API calls':>9} {'API ms':>8} {'page ms':>8} {'ratio':>6}")
    ratios = []
    for n, (page, role) in enumerate(PAGES.items()):
        email = demo_email(role)
        browser = app.test_client()
        # Each page's user signs in from an address of its own: the login rate limit is per address.
        browser.environ_base["REMOTE_ADDR"] = f"10.99.{os.getpid() % 250}.{n + 1}"
        form = browser.get("/console/login").get_data(as_text=True)  # the login form carries a CSRF token
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf, "no CSRF token on the login form"
        assert browser.post("/console/login", data={"email": email, "password": DEMO_PASSWORD,
                                                    "csrf": csrf.group(1)}).status_code == 302
        bearer = app.test_client()
        bearer.environ_base["REMOTE_ADDR"] = browser.environ_base["REMOTE_ADDR"]
        token = bearer.post("/api/v1/auth/login", json={"email": email, "password": DEMO_PASSWORD}).json
        bearer.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token['access_token']}"
        if not args.api_cache:
            bearer.environ_base[FRESH_PRINCIPAL] = True
        calls = recorded_calls(browser, page)

        def direct(calls: list[tuple[str, str, Any]] = calls, bearer: Any = bearer) -> None:
            for method, path, query in calls:
                assert bearer.open(path, method=method, query_string=query).status_code < 400, path

        def rendered(page: str = page, browser: Any = browser) -> None:
            assert browser.get(page).status_code == 200

        direct(), rendered()  # warm up
        api_ms, page_ms = [], []
        for _ in range(args.rounds):
            api_ms.append(timed(direct))
            page_ms.append(timed(rendered))
        a, p = statistics.median(api_ms), statistics.median(page_ms)
        ratios.append(p / a)
        print(f"{page:<24} {len(calls):>9} {a:>8.1f} {p:>8.1f} {p / a:>6.2f}")
    print(f"median ratio page / API calls behind it: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
