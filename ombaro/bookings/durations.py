"""How long a booking takes: what the vendor's hours are checked against and what dispatch plans."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def booking_minutes(items: Iterable[Any], addon_minutes: dict[str, int]) -> int:
    """Minutes of a booking: each line's duration times its quantity, plus its add-ons once."""
    total = 0
    for item in items:
        total += int(item.duration) * int(item.quantity or 1)
        for addon in item.addon_services or []:
            minutes = addon.get("duration") if isinstance(addon, dict) else None
            total += int(minutes) if minutes is not None else addon_minutes.get(str(addon.get("id")), 0)
    return total
