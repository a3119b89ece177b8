"""Bookings: creation with server-side prices, promotions, numbers and hours; the state machine;
cancelling and rescheduling (docs/dispatch.md, "Bookings")."""

from ombaro.bookings.service import (
    BookingRequest,
    CreatedBooking,
    ItemRequest,
    NotACustomer,
    cancel_booking,
    confirm_for_dispatch,
    create_booking,
    next_booking_number,
    reschedule_booking,
)
from ombaro.bookings.states import BookingNotFound, BookingRejected, InvalidTransition

__all__ = [
    "BookingNotFound",
    "BookingRejected",
    "BookingRequest",
    "CreatedBooking",
    "InvalidTransition",
    "ItemRequest",
    "NotACustomer",
    "cancel_booking",
    "confirm_for_dispatch",
    "create_booking",
    "next_booking_number",
    "reschedule_booking",
]
