"""Who someone is: the login identity (auth.users), their profile and role, and what each role may do."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk

GENDERS = ("male", "female", "other")
USER_ROLES = (
    "customer", "vendor", "therapist", "employee", "admin",
    "accounts_department", "marketing_department", "finance_department",
    "legal_department", "customer_care", "staff_department",
    "vendor_list", "customer_data", "fo_department", "it_department",
    "super_admin", "ho_details", "corporate_office", "advocate",
    "ca_cs", "directors", "hr_department",
)
ACCOUNT_STATUSES = ("active", "inactive", "suspended")


class User(Base):
    """The login identity. The spec keeps it in Supabase's `auth` schema; we own that schema here."""

    __tablename__ = "users"
    __table_args__ = {"schema": "auth"}

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(unique=True)
    encrypted_password: Mapped[str]
    email_confirmed_at: Mapped[dt.datetime | None]
    last_sign_in_at: Mapped[dt.datetime | None]
    raw_app_meta_data: Mapped[dict[str, Any] | None]  # role and department
    raw_user_meta_data: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class UserProfile(Base):
    """One per user: name, mobile and the role that decides what they may see."""

    __tablename__ = "user_profiles"
    __table_args__ = (
        CheckConstraint(f"gender IN {GENDERS!r}", name="gender"),
        CheckConstraint(f"role IN {USER_ROLES!r}", name="role"),
        CheckConstraint(f"status IN {ACCOUNT_STATUSES!r}", name="status"),
        Index("idx_user_profiles_role", "role"),
        Index("idx_user_profiles_status", "status"),
        Index("idx_user_profiles_created_by", "created_by", postgresql_where=text("created_by IS NOT NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str]
    mobile: Mapped[str] = mapped_column(unique=True)
    gender: Mapped[str | None]
    date_of_birth: Mapped[dt.date | None]
    profile_image: Mapped[str | None]
    role: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text("'active'"))
    address: Mapped[dict[str, Any] | None]  # {street, city, state, pincode, country}
    preferences: Mapped[dict[str, Any] | None]
    # Who made the account (POST /api/v1/users, migration 0010); NULL for self-registration and
    # accounts older than that. Approvals refuse an approver made by the maker.
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("auth.users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class RolePermission(Base):
    """The actions (read, create, update, delete, approve, export) a role has on a module."""

    __tablename__ = "role_permissions"
    __table_args__ = (
        # NULLS NOT DISTINCT: a module-wide grant (sub_module_id NULL) may exist once, as the spec means.
        UniqueConstraint("role_id", "module_id", "sub_module_id", postgresql_nulls_not_distinct=True),
        Index("idx_role_permissions_role", "role_id"),
        Index("idx_role_permissions_module", "module_id"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    role_id: Mapped[str]  # one of USER_ROLES
    module_id: Mapped[str]
    sub_module_id: Mapped[str | None]
    permissions: Mapped[list[str] | None] = mapped_column(server_default=text("'{}'::text[]"))
    created_at: Mapped[dt.datetime] = created_at()
