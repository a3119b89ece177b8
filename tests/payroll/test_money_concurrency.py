"""Issue 13's concurrency rule on payroll's money endpoints: HR's approvals and holds, and accounts'
bank files, N at once through a real threaded HTTP server, answer only 2xx or 4xx and pay each
salary at most once; a salary held meanwhile is never paid."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Callable
from typing import Any

import requests
from sqlalchemy import text

from tests.factories.accounts import Account, make_account
from tests.factories.payroll import add_structure
from tests.payments.helpers import at_once, serving
from tests.payroll.helpers import Driver
from tests.services import Database

BANK = {"account_number": "123456789012", "ifsc": "HDFC0001234", "bank_name": "HDFC Bank"}
N = 10


def post(base: str, account: Account, path: str, body: dict[str, Any] | None = None) -> Callable[[], Any]:
    return lambda: requests.post(f"{base}{path}", json=body if body is not None else {}, timeout=120,
                                 headers=account.headers)


def codes(answers: list[Any]) -> Counter[int]:
    assert not [a for a in answers if isinstance(a, Exception)], answers
    return Counter(a.status_code for a in answers)


def test_concurrent_approvals_holds_and_bank_files_pay_each_salary_at_most_once_and_never_a_held_one(
        own_database: Callable[[], Database], app_factory: Callable[..., Any]) -> None:
    database = own_database()
    engine = database.engine
    staff = [make_account(engine, "employee", bank_details=BANK) for _ in range(3)]
    for person in staff:
        add_structure(engine, person.id, dt.date(2025, 4, 1), basic="30000", hra="12000", esi=False, pt_state="MH")
    hr, accounts = make_account(engine, "hr_department"), make_account(engine, "accounts_department")
    job = Driver(engine).run(2026, 10, employee_ids=[p.id for p in staff])
    assert job["status"] == "succeeded", job["error"]
    run_id = job["result"]["run_id"]
    with engine.connect() as conn:
        record = dict(conn.execute(text("SELECT employee_id, id FROM salary_records WHERE year = 2026 AND month = 10"))
                      .all())
    held_early, held_late, paid = (record[p.id] for p in staff)

    with serving(app_factory(DATABASE_URL=database.url)) as base:
        approvals = [post(base, hr, f"/api/v1/payroll/runs/{run_id}/approve") for _ in range(N)]
        holds = [post(base, hr, f"/api/v1/payroll/records/{held_early}/hold", {"reason": "notice period"})
                 for _ in range(N)]
        first = at_once(approvals + holds)
        files = [post(base, accounts, f"/api/v1/payroll/runs/{run_id}/bank-file") for _ in range(N)]
        late_holds = [post(base, hr, f"/api/v1/payroll/records/{held_late}/hold", {"reason": "disputed"})
                      for _ in range(N)]
        second = at_once(files + late_holds)

    assert set(codes(first[:N])) == {200}  # approving an approved month again changes nothing
    assert codes(first[N:]) == {200: 1, 409: N - 1}
    assert codes(second[:N]) == {200: 1, 409: N - 1}  # one bank file; the others find nothing left to pay
    late = codes(second[N:])
    assert set(late) <= {200, 409} and late[200] <= 1
    with engine.connect() as conn:
        status = dict(conn.execute(text(
            "SELECT id, status FROM salary_records WHERE year = 2026 AND month = 10")).all())
    bank_file = next(a for a in second[:N] if a.status_code == 200)
    rows = list(csv.DictReader(io.StringIO(bank_file.text)))
    in_file = {r["employee_code"] for r in rows}
    assert len(rows) == len(in_file)  # nobody twice in the file
    assert status[held_early] == "hold"
    assert status[paid] == "paid"
    # The late hold won (held, not in the file) or lost (paid once, the hold refused): never both.
    assert (status[held_late], late[200]) in (("hold", 1), ("paid", 0))
    assert len(rows) == (2 if status[held_late] == "paid" else 1)
