"""The booking state machine and the errors of the bookings domain.

    pending ──confirm──▶ confirmed ──(dispatch)──▶ assigned ──(service starts)──▶ in_progress ──▶ completed
       │                    │  ▲                     │   │
       │                    │  └──(assignment cancelled, nobody left)─┘
       └──── reschedule / cancel from pending, confirmed, assigned, rescheduled ────▶ rescheduled / cancelled

`assigned`, `in_progress` and `completed` follow the assignments (a database trigger, migration
0004); people move a booking by confirming, rescheduling or cancelling it. Anything else is an
InvalidTransition, which the API answers with 409 naming the current state.
"""

from __future__ import annotations

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "assigned", "rescheduled", "cancelled"}),
    "confirmed": frozenset({"assigned", "rescheduled", "cancelled"}),
    "rescheduled": frozenset({"assigned", "rescheduled", "cancelled"}),
    "assigned": frozenset({"in_progress", "confirmed", "completed", "rescheduled", "cancelled"}),
    "in_progress": frozenset({"completed"}),
    "completed": frozenset(),
    "cancelled": frozenset(),
}

# What a person may do to a booking, and from which states.
ACTIONS: dict[str, tuple[str, ...]] = {
    "cancel": ("pending", "confirmed", "assigned", "rescheduled"),
    "reschedule": ("pending", "confirmed", "assigned", "rescheduled"),
    "dispatch": ("pending", "confirmed", "rescheduled"),
}
DISPATCHABLE = ("confirmed", "rescheduled")


class BookingError(Exception):
    pass


class InvalidTransition(BookingError):
    """409: the booking (or assignment) is in a state that does not allow this."""

    def __init__(self, message: str, *, current: str) -> None:
        super().__init__(message)
        self.current = current


class BookingRejected(BookingError):
    """422 about one field of the request (the API puts it in the `errors` object)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class BookingNotFound(LookupError):
    pass


def ensure_allowed(action: str, status: str, booking_number: str) -> None:
    allowed = ACTIONS[action]
    if status not in allowed:
        raise InvalidTransition(
            f"booking {booking_number} is {status}: {action} is allowed only when it is {', '.join(allowed)}",
            current=status)
