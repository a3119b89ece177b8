"""schemathesis against the running server with the demo data, as a customer, a vendor and a super
admin: every check (server errors, status codes, content types, headers, response schemas, negative
data rejected, positive data accepted, undeclared methods, ...), the stateful phase on, a bounded
number of examples per operation (OMBARO_FUZZ_EXAMPLES, default 5).

Each role's run draws path and body ids from what that role itself lists (its bookings, settlements,
payroll records...), so requests reach the code behind the 404s, and from generated values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.contract.helpers import Server
from tests.factories.accounts import make_account

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("OMBARO_FUZZ_EXAMPLES", "5"))

# A parameter name -> (the list endpoint that shows such ids to the caller, the field holding them).
ID_SOURCES: dict[str, tuple[str, str]] = {
    "booking_id": ("/api/v1/bookings", "id"),
    "vendor_id": ("/api/v1/bookings", "vendor_id"),
    "settlement_id": ("/api/v1/settlements", "id"),
    "payment_id": ("/api/v1/payments", "id"),
    "run_id": ("/api/v1/payroll/runs", "id"),
    "record_id": ("/api/v1/payroll/records", "id"),
    "employee_id": ("/api/v1/payroll/records", "employee_id"),
    "campaign_id": ("/api/v1/campaigns", "id"),
    "assignment_id": ("/api/v1/assignments", "id"),
    "job_id": ("/api/v1/jobs", "id"),
    "request_id": ("/api/v1/leave", "id"),
    "notification_id": ("/api/v1/notifications", "id"),
    "schedule_id": ("/api/v1/schedules", "id"),
    "therapist_id": ("/api/v1/therapists", "id"),
    "adjustment_id": ("/api/v1/payroll/adjustments", "id"),
}
BODY_IDS = ("booking_id", "vendor_id", "employee_id", "settlement_id", "payment_id", "therapist_id")


def known_ids(server: Server, token: str) -> dict[str, list[str]]:
    """What the caller can see, per parameter name (at most five of each)."""
    found: dict[str, list[str]] = {}
    for name, (path, field) in ID_SOURCES.items():
        answer = requests.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        rows = answer.json() if answer.status_code == 200 else []
        values = list(dict.fromkeys(str(row[field]) for row in rows if isinstance(row, dict) and row.get(field)))
        if values:
            found[name] = values[:5]
    return found


def config_for(ids: dict[str, list[str]], directory: Path) -> Path:
    """The shared settings plus dictionaries of real ids bound to path and body parameters."""
    lines = [CONFIG.read_text(), ""]
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for name in ids:
        lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.8 }}')
        if name in BODY_IDS:
            lines.append(f'"body.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    path = directory / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# One worker thread: with two, CPython 3.11's AST constructor (which Hypothesis calls to describe its
# lambdas) can fail with "AST constructor recursion depth mismatch" (python/cpython#106905), a
# runtime error of the tool that fails the run without finding anything.
def run_schemathesis(server: Server, token: str, config: Path, reports: Path, *extra: str) -> tuple[int, str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{server.url}/openapi.json",
        "--url", server.url, "--header", f"Authorization: Bearer {token}", "--checks", "all", "--mode", "all",
        "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(MAX_EXAMPLES), "--seed", "20261206",
        "--workers", "1", "--request-timeout", "60", "--no-color", "--suppress-health-check", "all",
        "--generation-database", "none", "--continue-on-failure", "--report", "ndjson", "--report-dir", str(reports),
        *extra,
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=840, cwd=reports)  # its cache goes there
    return run.returncode, run.stdout + run.stderr


# The customer and the vendor go first: the super admin's run may rewrite their roles' grants.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["customer", "vendor", "super_admin"])
def test_schemathesis_finds_no_failure(server: Server, role: str, tmp_path: Path) -> None:
    token = server.token(role)
    ids = known_ids(server, token)
    if role == "super_admin":
        assert {"booking_id", "payment_id", "therapist_id"} <= set(ids), ids  # the demo data is reachable
        # Suspending accounts is fuzzed apart, by an account of its own (below): the demo super
        # admin would otherwise suspend itself halfway and the rest of the run would see only 403s.
        ids.pop("user_id", None)
    # Ending the caller's own session (logout, a password change) is fuzzed apart too, by accounts of
    # their own (below): a session ends at once, and the rest of the run would see only 401s.
    excluded = [*SESSION_ENDING, *(["users_set_status"] if role == "super_admin" else [])]
    code, output = run_schemathesis(server, token, config_for(ids, tmp_path), tmp_path,
                                    *(arg for operation in excluded for arg in ("--exclude-operation-id", operation)))
    _keep(output, role)
    assert code == 0, output[-30000:]


SESSION_ENDING = ("auth_logout", "auth_change_password")


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("role", "operations"), [
    ("super_admin", ("users_set_status",)),
    ("customer", SESSION_ENDING),
])
def test_schemathesis_on_operations_that_end_a_session_with_an_account_of_their_own(
        server: Server, tmp_path: Path, role: str, operations: tuple[str, ...]) -> None:
    account = make_account(server.world.engine, role)
    code, output = run_schemathesis(server, account.headers["Authorization"].removeprefix("Bearer "), CONFIG, tmp_path,
                                    *(arg for operation in operations for arg in ("--include-operation-id", operation)))
    _keep(output, f"{role}-{'-'.join(operations)}")
    assert code == 0, output[-30000:]


def _keep(output: str, name: str) -> Any:
    """The full report beside the test's files, and in OMBARO_FUZZ_LOG_DIR when set (for CI artefacts)."""
    directory = os.environ.get("OMBARO_FUZZ_LOG_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / f"schemathesis-{name}.txt").write_text(output)
