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

from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ombaro.access.permissions import load_grants
from ombaro.access.roles import STAFF_ROLES
from ombaro.config import Settings
from ombaro.identity import administration, crypto, passwords, tokens
from ombaro.identity.errors import AccountDisabled, AccountError, AccountExists, InvalidCredentials, NotAllowed
from ombaro.models.customers import Customer
from ombaro.models.hr import Employee
from ombaro.models.identity import User, UserProfile
from ombaro.models.vendors import Therapist, Vendor, VendorStaff

__all__ = ["AccountDisabled", "AccountError", "AccountExists", "InvalidCredentials", "NotAllowed", "Principal"]


SIGN_IN_REFUSED = "email or password is wrong, or this account may not sign in"


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to, as the database says now (not as the token said then)."""

    user_id: uuid.UUID
    role: str
    status: str
    session_live: bool = True  # the token's login (refresh-token family) is not revoked


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _new_user(session: Session, *, email: str, mobile: str, password: str, name: str, role: str,
              profile: dict[str, Any] | None = None, created_by: uuid.UUID | None = None) -> User:
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
    session.add(UserProfile(id=user.id, name=name, mobile=mobile, role=role, created_by=created_by,
                            **(profile or {})))
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent registration with the same email or mobile
        raise AccountExists("an account with this email or mobile already exists") from exc
    return user


# The platform's date on the database's clock, as the views read it (migration 0001), not the
# machine's date (from 18:30 to 24:00 UTC the IST date is already the next one).
PLATFORM_TODAY = text("(now() AT TIME ZONE coalesce(nullif(current_setting('ombaro.timezone', true), ''), "
                      "'Asia/Kolkata'))::date")


def register_customer(session: Session, *, email: str, mobile: str, password: str, name: str,
                      gender: str | None = None) -> User:
    user = _new_user(session, email=email, mobile=mobile, password=password, name=name, role="customer",
                     profile={"gender": gender})
    session.add(Customer(id=user.id, membership_start_date=PLATFORM_TODAY,
                         referral_code=f"OMB{secrets.token_hex(4).upper()}",
                         communication_preferences={"email": True, "sms": True, "whatsapp": False, "push": True}))
    session.flush()
    return user


def register(session: Session, *, email: str, mobile: str, password: str, name: str,
             gender: str | None = None) -> User | None:
    """Self-registration that gives nothing away: the new customer, or None when the email or the
    mobile is taken, after the same work (the password is hashed either way), so that neither the
    answer the API builds from it nor its time says whether someone already has an account."""
    try:
        with session.begin_nested():
            return register_customer(session, email=email, mobile=mobile, password=password, name=name,
                                     gender=gender)
    except AccountExists:
        passwords.burn(password)
        return None


def create_staff_account(session: Session, settings: Settings, *, creator_role: str, email: str, mobile: str,
                         password: str, name: str, role: str, employee: dict[str, Any] | None = None,
                         vendor: dict[str, Any] | None = None, creator_id: uuid.UUID | None = None,
                         grants: administration.Grants | None = None) -> User:
    """An account of `role` created by `creator_id`, of `creator_role`: employees (HR or super
    admin) get an `employees` row, vendors (super admin) a `vendors` row. Refused before anything is
    written when the role's permissions exceed the creator's (ombaro.identity.administration)."""
    administration.check_may_administer(grants if grants is not None else load_grants(session),
                                        actor_role=creator_role, target_role=role, action="create")
    user = _new_user(session, email=email, mobile=mobile, password=password, name=name, role=role,
                     created_by=creator_id)
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


NEXT_EMPLOYEE_NUMBER = text("SELECT nextval('employee_code_seq')")


def _employee_code(session: Session) -> str:
    """The next free EMPnnnn code from `employee_code_seq` (migration 0010). Codes written by other
    means (the demo data, imports) may sit ahead of the sequence: those are skipped, not reused."""
    while True:
        code = f"EMP{session.scalar(NEXT_EMPLOYEE_NUMBER):04d}"
        if session.scalar(select(func.count()).select_from(Employee).where(Employee.employee_code == code)) == 0:
            return code


def vendor_of(session: Session, user_id: uuid.UUID) -> uuid.UUID | None:
    """The vendor a user acts for: the vendor account itself, or an active member of its staff."""
    if session.get(Vendor, user_id) is not None:
        return user_id
    return session.scalar(select(VendorStaff.vendor_id).where(VendorStaff.user_id == user_id,
                                                              VendorStaff.status == "active"))


def authenticate(session: Session, settings: Settings, *, email: str, password: str, ip: str | None = None,
                 user_agent: str | None = None) -> tokens.TokenPair:
    """One answer for every failure (unknown email, wrong password, placeholder hash, suspended or
    inactive account) after the same work (one argon2 verification): neither the answer nor its
    time tells whether the account exists or what state it is in."""
    row = session.execute(
        select(User, UserProfile.role, UserProfile.status).join(UserProfile, UserProfile.id == User.id)
        .where(func.lower(User.email) == normalise_email(email))
    ).one_or_none()
    matches = passwords.verify_password(row[0].encrypted_password if row else None, password)
    if row is None or not matches or row.status != "active":
        raise InvalidCredentials(SIGN_IN_REFUSED)
    user, role, _status = row
    if passwords.needs_rehash(user.encrypted_password):
        user.encrypted_password = passwords.hash_password(password)
    user.last_sign_in_at = dt.datetime.now(dt.UTC)
    return _pair(session, settings, user.id, role, ip=ip, user_agent=user_agent)


def refresh(session: Session, settings: Settings, *, refresh_token: str, ip: str | None = None,
            user_agent: str | None = None) -> tokens.TokenPair:
    user_id, successor, family = tokens.rotate_refresh_token(session, settings, refresh_token, ip=ip,
                                                             user_agent=user_agent)
    principal = principal_of(session, user_id)
    if principal is None or principal.status != "active":
        tokens.revoke_user(session, user_id, reason="account not active")
        raise AccountDisabled("this account is not active")
    access = tokens.issue_access_token(settings, user_id, principal.role, session_id=family)
    return tokens.TokenPair(access, successor, settings.access_token_seconds)


def _pair(session: Session, settings: Settings, user_id: uuid.UUID, role: str, **where: str | None) -> tokens.TokenPair:
    """A new login: a refresh-token family of its own, named in the access token."""
    family = uuid.uuid4()
    refresh_token = tokens.issue_refresh_token(session, settings, user_id, family_id=family, **where)
    access = tokens.issue_access_token(settings, user_id, role, session_id=family)
    return tokens.TokenPair(access, refresh_token, settings.access_token_seconds)


# One round trip per request: the account's role and status, and whether the token's login is live
# (a family with a token not revoked; idx_refresh_tokens_family). A token without `sid` skips the check.
_PRINCIPAL = text("""
    SELECT p.role, p.status,
           CAST(:sid AS uuid) IS NULL OR EXISTS (
               SELECT 1 FROM auth.refresh_tokens AS r
               WHERE r.family_id = CAST(:sid AS uuid) AND r.user_id = p.id AND r.revoked_at IS NULL) AS live
    FROM user_profiles AS p WHERE p.id = :uid
""")


def principal_of(session: Session | Connection, user_id: uuid.UUID, session_id: uuid.UUID | None = None,
                 ) -> Principal | None:
    """The account as the database says now; with `session_id`, also whether that login is live."""
    row = session.execute(_PRINCIPAL, {"uid": user_id, "sid": session_id}).one_or_none()
    return Principal(user_id, row.role, row.status, bool(row.live)) if row else None


def change_password(session: Session, settings: Settings, *, user_id: uuid.UUID, current_password: str,
                    new_password: str, ip: str | None = None, user_agent: str | None = None) -> tokens.TokenPair:
    """Every login of the account ends (its access tokens at once); the caller gets a new one."""
    user = session.get(User, user_id, with_for_update=True)
    principal = principal_of(session, user_id)
    if user is None or principal is None or not passwords.verify_password(user.encrypted_password, current_password):
        raise NotAllowed("the current password is wrong")
    user.encrypted_password = passwords.hash_password(new_password)
    tokens.revoke_user(session, user_id, reason="password changed")
    return _pair(session, settings, user_id, principal.role, ip=ip, user_agent=user_agent)


def set_status(session: Session, user_id: uuid.UUID, status: str, *, actor_id: uuid.UUID | None = None,
               actor_role: str | None = None, grants: administration.Grants | None = None) -> Principal | None:
    """Suspend or re-activate `user_id` on behalf of `actor_role` (None: the system). Refused when
    the account's role exceeds the actor's (ombaro.identity.administration). A deactivated user's
    refresh tokens are revoked, and with them every access token of their logins (the next request
    fails). Returns the account as it was, or None if there is none."""
    target = principal_of(session, user_id)
    if target is None:
        return None
    if actor_role is not None:
        administration.check_may_administer(grants if grants is not None else load_grants(session),
                                            actor_role=actor_role, target_role=target.role,
                                            action="activate" if status == "active" else "suspend",
                                            actor_id=actor_id, target_id=user_id)
    session.execute(update(UserProfile).where(UserProfile.id == user_id).values(status=status))
    if status != "active":
        tokens.revoke_user(session, user_id, reason=f"account {status}")
    return target
