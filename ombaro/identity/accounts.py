"""Accounts: customers register themselves; staff, vendor and therapist accounts are created by the
roles allowed to; login checks the password and the account's status.

These functions run on the service session (the owner connection): they read password hashes,
which no request role may read. The API authorises the caller before calling them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ombaro.access.roles import CREATABLE_ROLES, STAFF_ROLES
from ombaro.config import Settings
from ombaro.identity import crypto, passwords, tokens
from ombaro.models.customers import Customer
from ombaro.models.hr import Employee
from ombaro.models.identity import User, UserProfile
from ombaro.models.vendors import Therapist, Vendor, VendorStaff


class AccountError(Exception):
    """Base of the account errors the API maps to HTTP statuses (web/errors.py)."""


class AccountExists(AccountError):
    pass


class InvalidCredentials(AccountError):
    pass


class AccountDisabled(AccountError):
    pass


class NotAllowed(AccountError):
    pass


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to, as the database says now (not as the token said then)."""

    user_id: uuid.UUID
    role: str
    status: str


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _new_user(session: Session, *, email: str, mobile: str, password: str, name: str, role: str,
              profile: dict[str, Any] | None = None) -> User:
    email = normalise_email(email)
    taken = session.execute(
        select(func.count()).select_from(User).where(func.lower(User.email) == email)
    ).scalar_one() or session.execute(
        select(func.count()).select_from(UserProfile).where(UserProfile.mobile == mobile)).scalar_one()
    if taken:
        raise AccountExists("an account with this email or mobile already exists")
    user = User(email=email, encrypted_password=passwords.hash_password(password),
                raw_app_meta_data={"role": role})
    session.add(user)
    session.flush()
    session.add(UserProfile(id=user.id, name=name, mobile=mobile, role=role, **(profile or {})))
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration with the same email or mobile
        raise AccountExists("an account with this email or mobile already exists") from exc
    return user


def register_customer(session: Session, *, email: str, mobile: str, password: str, name: str,
                      gender: str | None = None) -> User:
    user = _new_user(session, email=email, mobile=mobile, password=password, name=name, role="customer",
                     profile={"gender": gender})
    session.add(Customer(id=user.id, membership_start_date=dt.date.today(),
                         referral_code=f"OMB{secrets.token_hex(4).upper()}",
                         communication_preferences={"email": True, "sms": True, "whatsapp": False, "push": True}))
    session.flush()
    return user


def create_staff_account(session: Session, settings: Settings, *, creator_role: str, email: str, mobile: str,
                         password: str, name: str, role: str, employee: dict[str, Any] | None = None,
                         vendor: dict[str, Any] | None = None) -> User:
    """An account of `role` created by someone of `creator_role`: employees (HR or super admin)
    get an `employees` row, vendors (super admin) a `vendors` row."""
    if role not in CREATABLE_ROLES.get(creator_role, frozenset()):
        raise NotAllowed(f"a {creator_role} may not create {role} accounts")
    user = _new_user(session, email=email, mobile=mobile, password=password, name=name, role=role)
    if role in STAFF_ROLES:
        if not employee:
            raise NotAllowed("employee details are required for a staff account")
        details = dict(employee)
        bank = details.pop("bank_details", None)
        session.add(Employee(id=user.id, name=name, email=user.email, mobile=mobile,
                             employee_code=details.pop("employee_code", None) or _employee_code(session),
                             bank_details=_seal_bank(settings, bank, f"employees.bank_details:{user.id}"),
                             **details))
    elif role == "vendor":
        if not vendor:
            raise NotAllowed("vendor details are required for a vendor account")
        session.add(Vendor(id=user.id, **vendor))
    session.flush()
    return user


def create_therapist(session: Session, settings: Settings, *, vendor_id: uuid.UUID, email: str, mobile: str,
                     password: str, name: str, details: dict[str, Any]) -> Therapist:
    """A vendor's therapist, with a login of their own; bank details sealed before they are stored."""
    user = _new_user(session, email=email, mobile=mobile, password=password, name=name, role="therapist",
                     profile={"gender": details.get("gender")})
    fields = dict(details)
    bank = fields.pop("bank_details", None)
    therapist = Therapist(id=uuid.uuid4(), user_id=user.id, vendor_id=vendor_id, name=name, email=user.email,
                          mobile=mobile, **fields)
    therapist.bank_details = _seal_bank(settings, bank, f"therapists.bank_details:{therapist.id}")
    session.add(therapist)
    session.flush()
    return therapist


def _seal_bank(settings: Settings, bank: dict[str, Any] | None, context: str) -> dict[str, str] | None:
    if not bank:
        return None
    return crypto.seal(bank, keys=settings.data_keys, key_id=settings.data_key_id, context=context)


def _employee_code(session: Session) -> str:
    # Serialised by the unique constraint: a concurrent creation that takes the same code fails
    # and the caller retries; HR creates accounts one at a time.
    highest = session.scalar(select(func.max(Employee.employee_code)).where(Employee.employee_code.like("EMP%")))
    number = int(highest[3:]) + 1 if highest and highest[3:].isdigit() else 1
    return f"EMP{number:04d}"


def vendor_of(session: Session, user_id: uuid.UUID) -> uuid.UUID | None:
    """The vendor a user acts for: the vendor account itself, or an active member of its staff."""
    if session.get(Vendor, user_id) is not None:
        return user_id
    return session.scalar(select(VendorStaff.vendor_id).where(VendorStaff.user_id == user_id,
                                                              VendorStaff.status == "active"))


def authenticate(session: Session, settings: Settings, *, email: str, password: str, ip: str | None = None,
                 user_agent: str | None = None) -> tokens.TokenPair:
    row = session.execute(
        select(User, UserProfile.role, UserProfile.status).join(UserProfile, UserProfile.id == User.id)
        .where(func.lower(User.email) == normalise_email(email))
    ).one_or_none()
    stored = row[0].encrypted_password if row else None
    if not passwords.verify_password(stored, password) or row is None:
        raise InvalidCredentials("email or password is wrong")
    user, role, status = row
    if status != "active":
        raise AccountDisabled(f"this account is {status}")
    if passwords.needs_rehash(user.encrypted_password):
        user.encrypted_password = passwords.hash_password(password)
    user.last_sign_in_at = dt.datetime.now(dt.UTC)
    return _pair(session, settings, user.id, role, ip=ip, user_agent=user_agent)


def refresh(session: Session, settings: Settings, *, refresh_token: str, ip: str | None = None,
            user_agent: str | None = None) -> tokens.TokenPair:
    user_id, successor = tokens.rotate_refresh_token(session, settings, refresh_token, ip=ip, user_agent=user_agent)
    principal = principal_of(session, user_id)
    if principal is None or principal.status != "active":
        tokens.revoke_user(session, user_id, reason="account not active")
        raise AccountDisabled("this account is not active")
    access = tokens.issue_access_token(settings, user_id, principal.role)
    return tokens.TokenPair(access, successor, settings.access_token_seconds)


def _pair(session: Session, settings: Settings, user_id: uuid.UUID, role: str, **where: str | None) -> tokens.TokenPair:
    access = tokens.issue_access_token(settings, user_id, role)
    refresh_token = tokens.issue_refresh_token(session, settings, user_id, **where)
    return tokens.TokenPair(access, refresh_token, settings.access_token_seconds)


def principal_of(session: Session, user_id: uuid.UUID) -> Principal | None:
    row = session.execute(select(UserProfile.role, UserProfile.status).where(UserProfile.id == user_id)).one_or_none()
    return Principal(user_id, row.role, row.status) if row else None


def set_status(session: Session, user_id: uuid.UUID, status: str) -> bool:
    """Suspend or re-activate. A suspended user's refresh tokens are revoked; their access tokens
    stop working at the next request, because every request checks the status."""
    changed = session.execute(update(UserProfile).where(UserProfile.id == user_id).values(status=status)).rowcount
    if changed and status != "active":
        tokens.revoke_user(session, user_id, reason=f"account {status}")
    return bool(changed)
