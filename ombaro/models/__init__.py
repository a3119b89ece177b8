"""Every table of the engine. Importing this package registers them all on Base.metadata."""

from ombaro.models.access import AuditLog, RefreshToken
from ombaro.models.analytics import AnalyticsEvent
from ombaro.models.base import Base
from ombaro.models.bookings import Booking, BookingItem, Review, TherapistAssignment
from ombaro.models.campaigns import Delivery, NotificationEvent, OutboxMessage, PushDevice  # noqa: F401
from ombaro.models.catalog import AddonService, Service, ServicePackage
from ombaro.models.customers import Customer, CustomerAddress, LoyaltyTransaction
from ombaro.models.dispatch import BookingNumberCounter, TherapistLastPosition  # noqa: F401
from ombaro.models.hr import AttendanceRecord, Employee, LeaveRequest, PerformanceReview, SalaryRecord
from ombaro.models.identity import RolePermission, User, UserProfile
from ombaro.models.jobs import Job, Schedule, ViewRefresh
from ombaro.models.marketing import Campaign, Promotion, PromotionUsage
from ombaro.models.payments import Payment, PaymentSettlement
from ombaro.models.payroll import CompensationStructure, PayrollRun, SalaryRecordDetail, StatutoryRate  # noqa: F401
from ombaro.models.settlements import PaymentRefund, Payout, SettlementAdjustment, SettlementItem, TdsRate  # noqa: F401
from ombaro.models.support import Notification, SupportTicket, TicketMessage
from ombaro.models.vendors import (
    Therapist,
    TherapistLeave,
    TherapistLocation,
    TherapistSchedule,
    Vendor,
    VendorStaff,
)

__all__ = [
    "AddonService",
    "AnalyticsEvent",
    "AttendanceRecord",
    "AuditLog",
    "Base",
    "Booking",
    "BookingItem",
    "Campaign",
    "Customer",
    "CustomerAddress",
    "Employee",
    "Job",
    "LeaveRequest",
    "LoyaltyTransaction",
    "Notification",
    "Payment",
    "PaymentSettlement",
    "PerformanceReview",
    "Promotion",
    "PromotionUsage",
    "RefreshToken",
    "Review",
    "RolePermission",
    "SalaryRecord",
    "Schedule",
    "Service",
    "ServicePackage",
    "SupportTicket",
    "Therapist",
    "TherapistAssignment",
    "TherapistLeave",
    "TherapistLocation",
    "TherapistSchedule",
    "TicketMessage",
    "User",
    "UserProfile",
    "Vendor",
    "VendorStaff",
    "ViewRefresh",
]
