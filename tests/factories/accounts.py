"""Accounts of any role with a fresh access token, and the one signed-in test client (`client_for`)."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Account:
    id: uuid.UUID
    role: str
    email: str
    password: str
    vendor_id: uuid.UUID | None = None
    therapist_id: uuid.UUID | None = None
    _minted: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def token(self) -> str:
        """An access token for the account, minted again once the last one is past half its life:
        a session-scoped account outlives a 15-minute token when the suite runs slowly."""
        from ombaro.config import load_settings
        from ombaro.identity import tokens

        now = dt.datetime.now(dt.UTC)
        if not self._minted or now >= self._minted["renew_at"]:
            settings = load_settings()
            self._minted.update(token=tokens.issue_access_token(settings, self.id, self.role, now=now),
                                renew_at=now + dt.timedelta(seconds=settings.access_token_seconds / 2))
        return str(self._minted["token"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


PASSWORD = "correct horse battery staple"


_MOBILES = itertools.count(1)


_MOBILE_PREFIX = secrets.randbelow(10**4)


def unique_mobile() -> str:
    """A mobile number no other test of this session uses (user_profiles.mobile is unique):
    random numbers collide once a session has made a few thousand accounts."""
    return f"+9{_MOBILE_PREFIX:04d}{next(_MOBILES):08d}"


def make_account(engine: Engine, role: str, *, vendor_id: uuid.UUID | None = None,
                 bank_details: dict[str, str] | None = None) -> Account:
    """An account of `role` (with its employee, vendor or therapist row) and a fresh access token."""
    from ombaro.config import load_settings
    from ombaro.identity import accounts

    settings = load_settings()
    tag = secrets.token_hex(5)
    email, mobile = f"{role}.{tag}@example.test", unique_mobile()
    therapist_id = None
    with Session(engine) as session, session.begin():
        if role == "customer":
            user = accounts.register_customer(session, email=email, mobile=mobile, password=PASSWORD, name=role)
        elif role == "therapist":
            assert vendor_id is not None, "a therapist belongs to a vendor"
            therapist = accounts.create_therapist(
                session, settings, vendor_id=vendor_id, email=email, mobile=mobile, password=PASSWORD,
                name=f"Therapist {tag}", details={"specialization": ["SWD"], "bank_details": bank_details})
            user_id, therapist_id = therapist.user_id, therapist.id
        else:
            extra: dict[str, Any] = {}
            if role == "vendor":
                extra["vendor"] = {"business_name": f"Spa {tag}", "business_type": "spa",
                                   "business_address": {"city": "Pune", "latitude": 18.52, "longitude": 73.85},
                                   "contact_person": "Owner", "contact_mobile": mobile, "contact_email": email,
                                   "verification_status": "verified"}
            else:
                extra["employee"] = {"department": role, "designation": "Officer",
                                     "joining_date": dt.date(2025, 4, 1), "bank_details": bank_details}
            user = accounts.create_staff_account(session, settings, creator_role="super_admin", email=email,
                                                 mobile=mobile, password=PASSWORD, name=role, role=role, **extra)
        if role != "therapist":
            user_id = user.id
    return Account(user_id, role, email, PASSWORD, vendor_id=user_id if role == "vendor" else vendor_id,
                   therapist_id=therapist_id)


def client_for(app: Any, account: Account | None = None, *, address: str | None = None) -> Any:
    """A test client with its own client address (rate limits count per address), sending the
    account's access token with every request if one is given."""
    test_client = app.test_client()
    test_client.environ_base["REMOTE_ADDR"] = address or f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.7"
    if account is not None:
        test_client.environ_base["HTTP_AUTHORIZATION"] = account.headers["Authorization"]
    return test_client
