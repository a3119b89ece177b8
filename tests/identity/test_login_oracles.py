"""Login and registration give nothing away: every failure answers the same, after the same work
(medians of interleaved attempts), and the lockout cannot be turned against the owner."""

from __future__ import annotations

import secrets
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

from tests.factories.accounts import PASSWORD, client_for, make_account, unique_mobile

# A failure may take this much longer or shorter than a wrong password on a real account. Before
# the fix a placeholder hash answered in 4% of the time; argon2 noise on a busy machine stays
# well inside this.
TOLERANCE = (0.6, 1.6)
ROUNDS = 15


def unlimited(app_factory: Callable[..., Any]) -> Any:
    """An app whose login limits do not bite: these tests make many failed attempts on purpose."""
    return app_factory(OMBARO_LOGIN_LIMIT_PER_ACCOUNT="100000", OMBARO_LOGIN_LIMIT_PER_ADDRESS="100000",
                       OMBARO_REGISTER_LIMIT_PER_ADDRESS="100000")


def failing_logins(engine: Engine) -> dict[str, dict[str, str]]:
    """Each way a login can fail, and a wrong password on an ordinary account to compare with."""
    real, suspended, inactive, placeholder = (make_account(engine, "customer") for _ in range(4))
    with engine.begin() as conn:
        conn.execute(text("UPDATE user_profiles SET status = 'suspended' WHERE id = :i"), {"i": suspended.id})
        conn.execute(text("UPDATE user_profiles SET status = 'inactive' WHERE id = :i"), {"i": inactive.id})
        conn.execute(text("UPDATE auth.users SET encrypted_password = '!' WHERE id = :i"), {"i": placeholder.id})
    return {
        "wrong password": {"email": real.email, "password": "not the password at all"},
        "unknown email": {"email": f"nobody.{secrets.token_hex(4)}@example.test", "password": PASSWORD},
        "placeholder hash": {"email": placeholder.email, "password": PASSWORD},
        "suspended, right password": {"email": suspended.email, "password": PASSWORD},
        "suspended, wrong password": {"email": suspended.email, "password": "not the password at all"},
        "inactive, right password": {"email": inactive.email, "password": PASSWORD},
    }


def test_every_failed_login_answers_the_same(app_factory: Callable[..., Any], engine: Engine) -> None:
    app = unlimited(app_factory)
    answers = {}
    for case, body in failing_logins(engine).items():
        response = client_for(app).post("/api/v1/auth/login", json=body)
        answers[case] = (response.status_code, response.content_type, response.headers.get("WWW-Authenticate"),
                         response.get_data(as_text=True))
    assert answers["wrong password"][0] == 401
    different = {case: answer for case, answer in answers.items() if answer != answers["wrong password"]}
    assert not different, different


def test_failed_logins_take_as_long_whatever_the_account(app_factory: Callable[..., Any], engine: Engine) -> None:
    app = unlimited(app_factory)
    cases = failing_logins(engine)
    client = client_for(app)
    for body in cases.values():  # warm connections and caches
        client.post("/api/v1/auth/login", json=body)
    timings: dict[str, list[float]] = {case: [] for case in cases}
    for round_ in range(ROUNDS):
        order = list(cases.items())
        secrets.SystemRandom().shuffle(order)
        for case, body in order:
            began = time.perf_counter()
            assert client.post("/api/v1/auth/login", json=body).status_code == 401, (case, round_)
            timings[case].append(time.perf_counter() - began)
    medians = {case: statistics.median(values) for case, values in timings.items()}
    reference = medians["wrong password"]
    ratios = {case: round(median / reference, 2) for case, median in medians.items()}
    low, high = TOLERANCE
    assert all(low <= ratio <= high for ratio in ratios.values()), (ratios, medians)


def test_registration_answers_the_same_for_a_new_or_a_taken_email_or_mobile(
        app_factory: Callable[..., Any], engine: Engine) -> None:
    app = unlimited(app_factory)
    client = client_for(app)
    owner = make_account(engine, "customer")
    with engine.connect() as conn:
        owner_mobile = conn.execute(text("SELECT mobile FROM user_profiles WHERE id = :i"),
                                    {"i": owner.id}).scalar_one()

    def body(kind: str) -> dict[str, str]:
        tag = secrets.token_hex(5)
        fresh = {"email": f"new.{tag}@example.test", "mobile": unique_mobile(),
                 "password": "a long enough passphrase", "name": "Asha"}
        if kind == "taken email":
            fresh["email"] = owner.email.upper()
        elif kind == "taken mobile":
            fresh["mobile"] = owner_mobile
        return fresh

    kinds = ("new", "taken email", "taken mobile")
    answers, timings = {}, {kind: [] for kind in kinds}
    client.post("/api/v1/auth/register", json=body("new"))  # warm up
    for _ in range(9):
        for kind in kinds:
            sent = body(kind)
            began = time.perf_counter()
            response = client.post("/api/v1/auth/register", json=sent)
            timings[kind].append(time.perf_counter() - began)
            answers[kind] = (response.status_code, response.content_type, response.get_data(as_text=True))
            with engine.connect() as conn:
                made = conn.execute(text("SELECT count(*) FROM auth.users WHERE email = :e"),
                                    {"e": sent["email"].lower()}).scalar_one()
            # The new one is created; a taken email is not created twice; a taken mobile not at all.
            assert made == (0 if kind == "taken mobile" else 1), kind
    assert answers["new"][0] == 202
    assert answers["taken email"] == answers["new"] == answers["taken mobile"]
    with engine.connect() as conn:  # the owner's account is untouched
        assert conn.execute(text("SELECT count(*) FROM user_profiles WHERE mobile = :m"),
                            {"m": owner_mobile}).scalar_one() == 1
    medians = {kind: statistics.median(values) for kind, values in timings.items()}
    low, high = TOLERANCE
    assert all(low <= medians[kind] / medians["new"] <= high for kind in kinds), medians


def test_guesses_from_many_addresses_do_not_lock_the_owner_out(app_factory: Callable[..., Any],
                                                                engine: Engine) -> None:
    # Two failures per (account, address); past 20 from all addresses, unknown addresses wait.
    app = app_factory(OMBARO_LOGIN_LIMIT_PER_ACCOUNT="2", OMBARO_LOGIN_LIMIT_PER_ADDRESS="100000")
    owner = make_account(engine, "customer")
    home = f"10.97.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
    right = {"email": owner.email, "password": PASSWORD}
    wrong = {"email": owner.email, "password": "a guess of the attacker"}
    assert client_for(app, address=home).post("/api/v1/auth/login", json=right).status_code == 200

    statuses = []
    for n in range(15):  # a botnet: 15 addresses, 2 guesses each
        attacker = client_for(app, address=f"10.96.{n}.{secrets.randbelow(250)}")
        statuses += [attacker.post("/api/v1/auth/login", json=wrong).status_code for _ in range(3)]
    assert statuses.count(401) == 20 and set(statuses) == {401, 429}  # the account-wide ceiling bit

    stranger = client_for(app, address="10.95.1.1").post("/api/v1/auth/login", json=right)
    assert stranger.status_code == 429  # a new address waits, even with the right password...
    assert client_for(app, address=home).post("/api/v1/auth/login", json=right).status_code == 200  # ...the owner not
    # A typo at home counts for home only.
    assert [client_for(app, address=home).post("/api/v1/auth/login", json=wrong).status_code
            for _ in range(2)] == [401, 401]
    assert client_for(app, address=home).post("/api/v1/auth/login", json=right).status_code == 429


def test_without_redis_sign_in_fails_closed(app_factory: Callable[..., Any], engine: Engine) -> None:
    with socket.socket() as probe:  # a free port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = app_factory(REDIS_URL=f"redis://127.0.0.1:{port}/0")
    owner = make_account(engine, "customer")
    for path, body in (("/api/v1/auth/login", {"email": owner.email, "password": PASSWORD}),
                       ("/api/v1/auth/register", {"email": f"x.{secrets.token_hex(4)}@example.test",
                                                  "mobile": unique_mobile(), "password": "a long enough passphrase",
                                                  "name": "X"})):
        response = client_for(app).post(path, json=body)
        assert response.status_code == 503, (path, response.get_data(as_text=True))
        assert response.content_type == "application/problem+json"
