"""Prices from the catalogue, promotions, GST. Money is Decimal, rounded half-up to the paise at
three named points only: a line's unit price (base price per 60 minutes scaled to the booked
duration), the discount, and the GST. Every other figure is an exact sum or difference of those.
The same arithmetic as the demo data set (devtools/demo/), so the two never disagree."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ombaro.bookings.states import BookingRejected
from ombaro.money import PAISA, ZERO, round_money

PAISE = PAISA
GST_RATE = Decimal("0.18")  # GST on spa and wellness services


def money(value: Decimal | int | str) -> Decimal:
    """Round to the paise, half-up (Decimal's default would be half-even)."""
    return round_money(Decimal(value))


def unit_price(base_price_60min: Decimal, duration: int) -> Decimal:
    """Rounding point 1: the catalogue's price per 60 minutes, for the booked duration."""
    return money(base_price_60min * duration / 60)


@dataclass(frozen=True)
class Addon:
    id: uuid.UUID
    code: str
    name: str
    price: Decimal
    duration: int

    def as_json(self) -> dict[str, object]:
        return {"id": str(self.id), "code": self.code, "name": self.name, "price": str(self.price),
                "duration": self.duration}


@dataclass(frozen=True)
class Line:
    service_id: uuid.UUID
    code: str
    name: str
    duration: int
    quantity: int
    unit_price: Decimal
    addons: tuple[Addon, ...] = ()

    @property
    def subtotal(self) -> Decimal:
        """Sessions times their price, plus each add-on once."""
        return self.unit_price * self.quantity + sum((a.price for a in self.addons), ZERO)

    @property
    def minutes(self) -> int:
        return self.duration * self.quantity + sum(a.duration for a in self.addons)


@dataclass(frozen=True)
class PromotionTerms:
    id: uuid.UUID
    code: str
    type: str | None
    discount_value: Decimal
    min_booking_amount: Decimal | None
    max_discount_amount: Decimal | None
    services: frozenset[uuid.UUID]  # empty: every service
    vendors: frozenset[uuid.UUID]  # empty: every vendor
    valid_from: dt.datetime
    valid_to: dt.datetime
    status: str


def discount_for(terms: PromotionTerms, lines: Sequence[Line], *, vendor_id: uuid.UUID, now: dt.datetime) -> Decimal:
    """Rounding point 2: what the promotion takes off, never more than the lines it applies to.
    Raises BookingRejected naming the condition that is not met (usage limits are checked by the
    caller under the promotion's row lock)."""
    field = "promotion_code"
    if terms.status != "active":
        raise BookingRejected(field, f"promotion {terms.code} is {terms.status}")
    if not terms.valid_from <= now <= terms.valid_to:
        raise BookingRejected(field, f"promotion {terms.code} is valid from {terms.valid_from:%Y-%m-%d %H:%M} "
                                     f"to {terms.valid_to:%Y-%m-%d %H:%M} UTC")
    if terms.vendors and vendor_id not in terms.vendors:
        raise BookingRejected(field, f"promotion {terms.code} does not apply at this vendor")
    applicable = [line for line in lines if not terms.services or line.service_id in terms.services]
    if not applicable:
        raise BookingRejected(field, f"promotion {terms.code} applies to none of the booked services")
    subtotal = sum((line.subtotal for line in lines), ZERO)
    if terms.min_booking_amount is not None and subtotal < terms.min_booking_amount:
        raise BookingRejected(field, f"promotion {terms.code} needs a booking of at least "
                                     f"Rs {terms.min_booking_amount}")
    base = sum((line.subtotal for line in applicable), ZERO)
    if terms.type == "percentage":
        discount = money(base * terms.discount_value / 100)
    elif terms.type == "free_service":
        discount = min(line.unit_price for line in applicable)  # one session of the cheapest
    elif terms.type == "free_addon":
        prices = [a.price for line in applicable for a in line.addons]
        if not prices:
            raise BookingRejected(field, f"promotion {terms.code} makes an add-on free: book one")
        discount = max(prices)
    else:  # fixed_amount (and untyped codes)
        discount = money(terms.discount_value)
    if terms.max_discount_amount is not None:
        discount = min(discount, terms.max_discount_amount)
    return min(discount, base)


@dataclass(frozen=True)
class Quote:
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    minutes: int


def quote(lines: Sequence[Line], discount: Decimal = ZERO) -> Quote:
    """Rounding point 3: GST on what is paid after the discount."""
    subtotal = sum((line.subtotal for line in lines), ZERO)
    tax = money((subtotal - discount) * GST_RATE)
    return Quote(subtotal, discount, tax, subtotal - discount + tax, sum(line.minutes for line in lines))
