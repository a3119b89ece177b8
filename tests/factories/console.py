"""A browser-like client of the console (cookies, CSRF token scraped from the page) per account."""

from __future__ import annotations

import itertools
import re
from typing import Any

from sqlalchemy import Engine

from tests.factories.accounts import PASSWORD, Account, make_account

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def nav(page: Any) -> list[str]:
    """The section names of a console page's navigation."""
    header = page.get_data(as_text=True).split("<nav>")[1].split("</nav>")[0]
    return re.findall(r">([A-Za-z]+)</a>", header)


_ADDRESSES = itertools.count(1)


class Browser:
    """A test client that signs in through the login form and posts forms with their CSRF token."""

    def __init__(self, app: Any, account: Account) -> None:
        self.client = app.test_client()
        # A person at a computer of their own: the login rate limit counts per client address.
        n = next(_ADDRESSES)
        self.client.environ_base["REMOTE_ADDR"] = f"10.20.{n // 250}.{n % 250 + 1}"
        self.account = account
        self.csrf = ""

    def login_form(self, **data: str) -> Any:
        """Post the login form as a browser does: with the CSRF token of the form it was shown."""
        form = self.client.get("/console/login").get_data(as_text=True)
        match = CSRF.search(form)
        assert match, "the login form has no CSRF token"
        return self.client.post("/console/login", data={"csrf": match.group(1), **data})

    def login(self) -> Any:
        answer = self.login_form(email=self.account.email, password=PASSWORD)
        page = self.client.get("/console/jobs")
        if match := CSRF.search(page.get_data(as_text=True)):
            self.csrf = match.group(1)
        return answer

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.client.post(path, data={"csrf": self.csrf, **(data or {})}, **kwargs)


def signed_in(app: Any, engine: Engine, role: str) -> Browser:
    browser = Browser(app, make_account(engine, role))
    assert browser.login().status_code == 302
    return browser
