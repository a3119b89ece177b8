"""The platform's own staff: employees, attendance, leave, salaries and performance reviews."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Computed, ForeignKey, Index, Numeric, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ombaro.models.base import Base, created_at, updated_at, uuid_pk
from ombaro.models.identity import GENDERS

EMPLOYEE_TYPES = ("full_time", "part_time", "contract", "intern")
EMPLOYEE_STATUSES = ("active", "inactive", "on_leave", "terminated")
ATTENDANCE_STATUSES = ("present", "absent", "late", "half_day", "leave", "work_from_home", "holiday")
LEAVE_TYPES = ("sick", "casual", "earned", "maternity", "paternity", "emergency", "unpaid")
LEAVE_REQUEST_STATUSES = ("pending", "approved", "rejected", "cancelled")
SALARY_STATUSES = ("pending", "processed", "paid", "hold")
REVIEW_TYPES = ("quarterly", "half_yearly", "annual", "probation")
PERFORMANCE_REVIEW_STATUSES = ("draft", "submitted", "acknowledged")


class Employee(Base):
    """A member of staff; the id is their user id, the department maps to a role."""

    __tablename__ = "employees"
    __table_args__ = (
        CheckConstraint(f"gender IN {GENDERS!r}", name="gender"),
        CheckConstraint(f"employee_type IN {EMPLOYEE_TYPES!r}", name="employee_type"),
        CheckConstraint(f"status IN {EMPLOYEE_STATUSES!r}", name="status"),
        Index("idx_employees_department", "department"),
        Index("idx_employees_manager", "reporting_manager"),
        Index("idx_employees_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(ForeignKey("auth.users.id", ondelete="CASCADE"), primary_key=True)
    employee_code: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    email: Mapped[str] = mapped_column(unique=True)
    mobile: Mapped[str]
    gender: Mapped[str | None]
    date_of_birth: Mapped[dt.date | None]
    profile_photo: Mapped[str | None]
    department: Mapped[str]
    designation: Mapped[str]
    employee_type: Mapped[str | None]
    reporting_manager: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("employees.id"))
    joining_date: Mapped[dt.date]
    probation_end_date: Mapped[dt.date | None]
    confirmation_date: Mapped[dt.date | None]
    resignation_date: Mapped[dt.date | None]
    last_working_date: Mapped[dt.date | None]
    # 0024: covered by the Payment of Gratuity Act (NULL: the company's separation policy decides)
    gratuity_act_covered: Mapped[bool | None]
    status: Mapped[str] = mapped_column(server_default=text("'active'"))
    address: Mapped[dict[str, Any] | None]
    emergency_contact: Mapped[dict[str, Any] | None]  # {name, relation, phone, alternate_phone}
    bank_details: Mapped[dict[str, Any] | None]  # encrypted by the application before it is stored
    documents: Mapped[list[Any] | None] = mapped_column(server_default=text("'[]'::jsonb"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class AttendanceRecord(Base):
    """One employee's attendance on one date."""

    __tablename__ = "attendance_records"
    __table_args__ = (
        CheckConstraint(f"status IN {ATTENDANCE_STATUSES!r}", name="status"),
        UniqueConstraint("employee_id", "date"),
        Index("idx_attendance_employee", "employee_id"),
        Index("idx_attendance_date", "date"),
        Index("idx_attendance_status", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    date: Mapped[dt.date]
    check_in_time: Mapped[dt.datetime | None]
    check_out_time: Mapped[dt.datetime | None]
    status: Mapped[str]
    work_hours: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    check_in_location: Mapped[dict[str, Any] | None]  # {latitude, longitude, address}
    check_out_location: Mapped[dict[str, Any] | None]
    notes: Mapped[str | None]
    approved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("employees.id"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class LeaveRequest(Base):
    """An employee's request for leave; total_days is computed by the database."""

    __tablename__ = "leave_requests"
    __table_args__ = (
        CheckConstraint(f"leave_type IN {LEAVE_TYPES!r}", name="leave_type"),
        CheckConstraint(f"status IN {LEAVE_REQUEST_STATUSES!r}", name="status"),
        CheckConstraint("to_date >= from_date", name="dates_ordered"),
        Index("idx_leave_requests_employee", "employee_id"),
        Index("idx_leave_requests_status", "status"),
        Index("idx_leave_requests_dates", "from_date", "to_date"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    leave_type: Mapped[str]
    from_date: Mapped[dt.date]
    to_date: Mapped[dt.date]
    total_days: Mapped[int | None] = mapped_column(Computed("to_date - from_date + 1", persisted=True))
    reason: Mapped[str]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    applied_date: Mapped[dt.datetime | None] = mapped_column(server_default=func.now())
    approved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("employees.id"))
    approved_date: Mapped[dt.datetime | None]
    rejection_reason: Mapped[str | None]
    documents: Mapped[list[str] | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class SalaryRecord(Base):
    """One employee's pay for one month: one row per (employee, month, year)."""

    __tablename__ = "salary_records"
    __table_args__ = (
        CheckConstraint("month BETWEEN 1 AND 12", name="month"),
        CheckConstraint(f"status IN {SALARY_STATUSES!r}", name="status"),
        UniqueConstraint("employee_id", "month", "year"),
        Index("idx_salary_records_employee", "employee_id"),
        Index("idx_salary_records_period", "year", "month"),
        Index("idx_salary_records_status", "status"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="RESTRICT"))
    month: Mapped[int]
    year: Mapped[int]
    basic_salary: Mapped[Decimal]
    allowances: Mapped[dict[str, Any] | None] = mapped_column(server_default=text("'{}'::jsonb"))
    deductions: Mapped[dict[str, Any] | None] = mapped_column(server_default=text("'{}'::jsonb"))
    overtime_hours: Mapped[Decimal | None] = mapped_column(Numeric(5, 2), server_default=text("0"))
    overtime_amount: Mapped[Decimal | None] = mapped_column(server_default=text("0"))
    bonus: Mapped[Decimal | None] = mapped_column(server_default=text("0"))
    gross_salary: Mapped[Decimal]
    total_deductions: Mapped[Decimal]
    net_salary: Mapped[Decimal]
    payment_date: Mapped[dt.date | None]
    payment_method: Mapped[str | None]
    payment_reference: Mapped[str | None]
    status: Mapped[str] = mapped_column(server_default=text("'pending'"))
    notes: Mapped[str | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class PerformanceReview(Base):
    """A periodic review of an employee by a reviewer (another employee)."""

    __tablename__ = "performance_reviews"
    __table_args__ = (
        CheckConstraint(f"review_type IN {REVIEW_TYPES!r}", name="review_type"),
        CheckConstraint("overall_rating BETWEEN 0 AND 5", name="overall_rating"),
        CheckConstraint(f"status IN {PERFORMANCE_REVIEW_STATUSES!r}", name="status"),
        Index("idx_performance_reviews_employee", "employee_id"),
        Index("idx_performance_reviews_reviewer", "reviewer_id"),
        Index("idx_performance_reviews_period", "review_period_start", "review_period_end"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    employee_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id", ondelete="CASCADE"))
    review_period_start: Mapped[dt.date]
    review_period_end: Mapped[dt.date]
    reviewer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("employees.id"))
    review_type: Mapped[str | None]
    overall_rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    technical_rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    communication_rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    teamwork_rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    leadership_rating: Mapped[Decimal | None] = mapped_column(Numeric(3, 2))
    goals: Mapped[list[Any] | None] = mapped_column(server_default=text("'[]'::jsonb"))
    achievements: Mapped[list[str] | None]
    areas_of_improvement: Mapped[list[str] | None]
    reviewer_comments: Mapped[str | None]
    employee_comments: Mapped[str | None]
    action_plan: Mapped[str | None]
    review_date: Mapped[dt.date]
    status: Mapped[str] = mapped_column(server_default=text("'draft'"))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
