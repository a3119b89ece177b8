"""The small two-tenant world of the access tests (made by tests/identity's `world` fixture)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from tests.factories.accounts import Account, unique_mobile


@dataclass(frozen=True)
class World:
    vendor_a: Account
    vendor_b: Account
    therapist_a: Account
    therapist_b: Account
    customer_1: Account
    customer_2: Account
    booking_1: uuid.UUID  # customer 1 at vendor A, assigned to therapist A
    booking_2: uuid.UUID  # customer 2 at vendor B, assigned to therapist B
    settlement_a: uuid.UUID
    settlement_b: uuid.UUID


def new_customer() -> dict[str, str]:
    tag = secrets.token_hex(4)
    return {"email": f"asha.{tag}@example.test", "mobile": unique_mobile(),
            "password": "a long enough passphrase", "name": "Asha Rao"}
