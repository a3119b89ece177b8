"""Bookings: creation with server-side prices, promotions, numbers and hours; the state machine;
cancelling and rescheduling (docs/dispatch.md, "Bookings").

This package's public API is what it exports here (dispatch uses the states it may dispatch from,
its errors and a booking's minutes); its modules are private to it. Bookings never import
dispatch: dispatch depends on bookings, not the other way round."""

from ombaro.bookings.durations import booking_minutes
from ombaro.bookings.queries import own_rows
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
from ombaro.bookings.states import DISPATCHABLE, BookingNotFound, BookingRejected, InvalidTransition

__all__ = [
    "DISPATCHABLE",
    "BookingNotFound",
    "BookingRejected",
    "BookingRequest",
    "CreatedBooking",
    "InvalidTransition",
    "ItemRequest",
    "NotACustomer",
    "booking_minutes",
    "cancel_booking",
    "confirm_for_dispatch",
    "create_booking",
    "next_booking_number",
    "own_rows",
    "reschedule_booking",
]
