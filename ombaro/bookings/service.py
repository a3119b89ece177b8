"""Creating, cancelling and rescheduling bookings. Functions receive the session and never commit.

Creation runs on the service connection: a promotion's usage limits are global (other customers'
uses), which the customer may neither read nor write, and the booking, its number and its
promotion use must commit together. Cancelling, rescheduling and confirming run as the caller,
under row-level security.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from ombaro.bookings.durations import booking_minutes
from ombaro.bookings.pricing import Addon, Line, PromotionTerms, Quote, discount_for, quote, unit_price
from ombaro.bookings.states import BookingNotFound, BookingRejected, ensure_allowed
from ombaro.models.bookings import Booking, BookingItem
from ombaro.models.catalog import AddonService, Service
from ombaro.models.customers import Customer
from ombaro.models.marketing import Promotion, PromotionUsage
from ombaro.models.vendors import Vendor

MIN_LEAD = dt.timedelta(minutes=30)  # a booking starts at least this long after it is made
MAX_DAYS_AHEAD = 90
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
LOCATED_TYPES = ("home_service", "hotel_service")  # the customer says where; a spa visit is at the vendor


class NotACustomer(PermissionError):
    pass


@dataclass(frozen=True)
class ItemRequest:
    service_id: uuid.UUID
    duration: int
    quantity: int = 1
    addon_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True)
class BookingRequest:
    vendor_id: uuid.UUID
    booking_type: str
    booking_date: dt.date
    booking_time: dt.time
    items: tuple[ItemRequest, ...]
    service_location: dict[str, Any] | None = None
    promotion_code: str | None = None
    special_instructions: str | None = None
    therapist_gender: str | None = None  # saved as the customer's preference; 'any' clears it


@dataclass
class CreatedBooking:
    booking: Booking
    items: list[BookingItem]
    quote: Quote
    lines: list[Line] = field(default_factory=list)


# --- numbers ---------------------------------------------------------------------------------------

def next_booking_number(session: Session, day: dt.date) -> str:
    """OBO-YYYYMMDD-NNNN from the day's counter. The counter row is locked until the booking's
    transaction ends (so take it last); a rolled-back booking gives its number back, and a trigger
    keeps the counter above numbers inserted by any other path, so numbers are unique and may at
    most skip, never repeat."""
    number = session.execute(text(
        "INSERT INTO booking_number_counters AS c (day, last_number) VALUES (:day, 1) "
        "ON CONFLICT (day) DO UPDATE SET last_number = c.last_number + 1, updated_at = now() "
        "RETURNING last_number"), {"day": day}).scalar_one()
    return f"OBO-{day:%Y%m%d}-{number:04d}"


# --- checks ----------------------------------------------------------------------------------------

def _clock(value: str) -> int:
    hours, minutes = value.split(":")[:2]
    return int(hours) * 60 + int(minutes)


def check_operating_hours(vendor: Vendor, day: dt.date, start: dt.time, minutes: int) -> None:
    """The whole service must fit in the vendor's hours that weekday. A vendor that has recorded no
    hours is not restricted."""
    hours = (vendor.operating_hours or {}).get(WEEKDAYS[day.weekday()])
    if not hours:
        return
    weekday = WEEKDAYS[day.weekday()].capitalize()
    if hours.get("closed"):
        raise BookingRejected("booking_date", f"the vendor is closed on {weekday}s")
    opens, closes = _clock(hours["open"]), _clock(hours["close"])
    if closes <= opens:
        closes += 24 * 60  # "00:00": open until midnight
    begins = start.hour * 60 + start.minute
    ends = begins + minutes
    if begins < opens or ends > closes:
        raise BookingRejected(
            "booking_time", f"the vendor is open {hours['open']}-{hours['close']} on {weekday}s; this "
                            f"{minutes}-minute booking would run {begins // 60:02d}:{begins % 60:02d}-"
                            f"{ends // 60 % 24:02d}:{ends % 60:02d}")


def check_when(day: dt.date, start: dt.time, *, zone: str, now: dt.datetime) -> dt.datetime:
    if start.second or start.microsecond:
        raise BookingRejected("booking_time", "give hours and minutes only")
    starts = dt.datetime.combine(day, start, tzinfo=ZoneInfo(zone))
    if starts < now + MIN_LEAD:
        raise BookingRejected("booking_time", f"must be at least {int(MIN_LEAD.total_seconds() // 60)} minutes "
                                              "from now")
    if day > now.astimezone(ZoneInfo(zone)).date() + dt.timedelta(days=MAX_DAYS_AHEAD):
        raise BookingRejected("booking_date", f"bookings open {MAX_DAYS_AHEAD} days ahead")
    return starts


def _bookable_vendor(session: Session, vendor_id: uuid.UUID) -> Vendor:
    vendor = session.get(Vendor, vendor_id)
    if vendor is None or vendor.status != "active" or vendor.verification_status != "verified":
        raise BookingRejected("vendor_id", "this vendor is not taking bookings")
    return vendor


def _price_lines(session: Session, vendor: Vendor, items: Sequence[ItemRequest]) -> list[Line]:
    services = {s.id: s for s in session.scalars(select(Service).where(Service.id.in_([i.service_id for i in items])))}
    addon_ids = {a for item in items for a in item.addon_ids}
    addons = {a.id: a for a in session.scalars(select(AddonService).where(AddonService.id.in_(addon_ids)))} \
        if addon_ids else {}
    offered = set(vendor.services_offered or ())
    lines = []
    for index, item in enumerate(items):
        where = f"items.{index}"
        service = services.get(item.service_id)
        if service is None or service.is_active is False:
            raise BookingRejected(f"{where}.service_id", "no such service in the catalogue")
        if offered and service.id not in offered:
            raise BookingRejected(f"{where}.service_id", f"{service.name} is not offered by this vendor")
        if service.duration_options and item.duration not in service.duration_options:
            raise BookingRejected(f"{where}.duration", f"{service.name} is booked for "
                                                      f"{', '.join(map(str, service.duration_options))} minutes")
        chosen = []
        for addon_id in item.addon_ids:
            addon = addons.get(addon_id)
            if addon is None or addon.is_active is False:
                raise BookingRejected(f"{where}.addon_ids", f"no such add-on: {addon_id}")
            chosen.append(Addon(addon.id, addon.code, addon.name, addon.price, addon.duration))
        lines.append(Line(service.id, service.code, service.name, item.duration, item.quantity,
                          unit_price(service.base_price_60min, item.duration), tuple(chosen)))
    return lines


def _service_location(request: BookingRequest, vendor: Vendor) -> dict[str, Any]:
    address = vendor.business_address or {}
    if request.booking_type not in LOCATED_TYPES:
        street = address.get("street") or ", ".join(p for p in (address.get("line1"), address.get("line2")) if p)
        return {"address": street or vendor.business_name, "city": address.get("city"),
                "latitude": address.get("latitude"), "longitude": address.get("longitude"),
                "landmark": address.get("landmark")}
    location = dict(request.service_location or {})
    for name in ("address", "latitude", "longitude"):
        if location.get(name) in (None, ""):
            raise BookingRejected(f"service_location.{name}", f"is required for a {request.booking_type}")
    location.setdefault("city", address.get("city"))
    return location


def _promotion(session: Session, code: str, *, customer_id: uuid.UUID, lines: Sequence[Line],
               vendor_id: uuid.UUID, now: dt.datetime) -> tuple[Promotion, Decimal]:
    """The promotion, locked for the rest of the transaction: concurrent bookings with one code
    queue here, so usage counts and limits are read after the previous booking committed."""
    promotion = session.scalars(select(Promotion).where(func.upper(Promotion.code) == code.strip().upper())
                                .with_for_update()).first()
    if promotion is None:
        raise BookingRejected("promotion_code", f"no promotion {code}")
    terms = PromotionTerms(promotion.id, promotion.code, promotion.type, promotion.discount_value,
                           promotion.min_booking_amount, promotion.max_discount_amount,
                           frozenset(promotion.applicable_services or ()),
                           frozenset(promotion.applicable_vendors or ()), promotion.valid_from, promotion.valid_to,
                           promotion.status)
    discount = discount_for(terms, lines, vendor_id=vendor_id, now=now)
    used_by_customer = session.execute(select(func.count()).select_from(PromotionUsage).where(
        PromotionUsage.promotion_id == promotion.id, PromotionUsage.customer_id == customer_id)).scalar_one()
    if promotion.usage_limit_per_customer is not None and used_by_customer >= promotion.usage_limit_per_customer:
        raise BookingRejected("promotion_code", f"you have already used {promotion.code} "
                                                f"{promotion.usage_limit_per_customer} time(s)")
    if promotion.total_usage_limit is not None and (promotion.current_usage_count or 0) >= promotion.total_usage_limit:
        raise BookingRejected("promotion_code", f"promotion {promotion.code} has been used up")
    return promotion, discount


# --- commands ----------------------------------------------------------------------------------------

def create_booking(session: Session, customer_id: uuid.UUID, request: BookingRequest, *, zone: str,
                   now: dt.datetime) -> CreatedBooking:
    """Price from the catalogue, check hours and promotion, number it, and record it confirmed
    (the caller submits its dispatch in the same transaction)."""
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotACustomer("only customers make bookings")
    vendor = _bookable_vendor(session, request.vendor_id)
    lines = _price_lines(session, vendor, request.items)
    minutes = sum(line.minutes for line in lines)
    check_when(request.booking_date, request.booking_time, zone=zone, now=now)
    check_operating_hours(vendor, request.booking_date, request.booking_time, minutes)
    location = _service_location(request, vendor)
    promotion, discount = None, Decimal("0.00")
    if request.promotion_code:
        promotion, discount = _promotion(session, request.promotion_code, customer_id=customer_id, lines=lines,
                                         vendor_id=vendor.id, now=now)
    priced = quote(lines, discount)
    if request.therapist_gender is not None:
        customer.preferred_therapist_gender = None if request.therapist_gender == "any" else request.therapist_gender

    number = next_booking_number(session, now.astimezone(ZoneInfo(zone)).date())
    booking = Booking(
        booking_number=number, customer_id=customer_id, vendor_id=vendor.id, booking_type=request.booking_type,
        service_location=location, booking_date=request.booking_date, booking_time=request.booking_time,
        status="confirmed", payment_status="pending", promotion_id=promotion.id if promotion else None,
        subtotal_amount=priced.subtotal, discount_amount=priced.discount, tax_amount=priced.tax,
        total_amount=priced.total, special_instructions=request.special_instructions)
    session.add(booking)
    session.flush()
    items = [BookingItem(booking_id=booking.id, service_id=line.service_id, duration=line.duration,
                         price=line.unit_price, quantity=line.quantity,
                         addon_services=[a.as_json() for a in line.addons], subtotal=line.subtotal)
             for line in lines]
    session.add_all(items)
    if promotion is not None:
        session.add(PromotionUsage(promotion_id=promotion.id, customer_id=customer_id, booking_id=booking.id,
                                   discount_amount=priced.discount))
        session.execute(update(Promotion).where(Promotion.id == promotion.id).values(
            current_usage_count=func.coalesce(Promotion.current_usage_count, 0) + 1, updated_at=func.now()))
    session.flush()
    return CreatedBooking(booking, items, priced, lines)


def _locked(session: Session, booking_id: uuid.UUID) -> Booking:
    """The booking, row-locked; under row-level security a booking the caller may not change is
    simply not found."""
    booking = session.scalars(select(Booking).where(Booking.id == booking_id).with_for_update()).first()
    if booking is None:
        raise BookingNotFound(f"no booking {booking_id}")
    return booking


def cancel_booking(session: Session, booking_id: uuid.UUID, *, actor_id: uuid.UUID, reason: str,
                   now: dt.datetime) -> Booking:
    """Cancel with a reason; the database releases its therapists (and tells them) in the same
    transaction. A promotion use stays counted."""
    booking = _locked(session, booking_id)
    ensure_allowed("cancel", booking.status, booking.booking_number)
    booking.status = "cancelled"
    booking.cancellation_reason = reason
    booking.cancelled_by = actor_id
    booking.cancelled_at = now
    session.flush()
    return booking


def minutes_of(session: Session, booking_id: uuid.UUID) -> int:
    items = session.execute(select(BookingItem.duration, BookingItem.quantity, BookingItem.addon_services)
                            .where(BookingItem.booking_id == booking_id)).all()
    wanted = [str(a.get("id")) for item in items for a in (item.addon_services or [])
              if isinstance(a, dict) and a.get("duration") is None]
    durations = {str(i): d for i, d in session.execute(
        select(AddonService.id, AddonService.duration).where(AddonService.id.in_(wanted)))} if wanted else {}
    return booking_minutes(items, durations) or 60


def reschedule_booking(session: Session, booking_id: uuid.UUID, *, booking_date: dt.date, booking_time: dt.time,
                       zone: str, now: dt.datetime) -> Booking:
    """Move to another date or time inside the vendor's hours. The therapist, if any, is released
    (the database does it) and a confirmed booking goes back to dispatch as `rescheduled`."""
    booking = _locked(session, booking_id)
    ensure_allowed("reschedule", booking.status, booking.booking_number)
    if (booking.booking_date, booking.booking_time) == (booking_date, booking_time):
        raise BookingRejected("booking_time", "is already the booking's date and time")
    check_when(booking_date, booking_time, zone=zone, now=now)
    vendor = session.get(Vendor, booking.vendor_id)
    if vendor is not None:
        check_operating_hours(vendor, booking_date, booking_time, minutes_of(session, booking.id))
    booking.booking_date = booking_date
    booking.booking_time = booking_time
    if booking.status != "pending":
        booking.status = "rescheduled"
    session.flush()
    return booking


def confirm_for_dispatch(session: Session, booking_id: uuid.UUID) -> Booking:
    """Operations or the vendor ask for a therapist: a pending booking is confirmed first."""
    booking = _locked(session, booking_id)
    ensure_allowed("dispatch", booking.status, booking.booking_number)
    if booking.status == "pending":
        booking.status = "confirmed"
        session.flush()
    return booking
