"""Payments of bookings: method, gateway references, status."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from devtools.demo.base import BuilderBase, new_uid, weighted
from devtools.demo.reference import (
    BANKS,
    PLATFORM_ZONE,
    Row,
)


class PaymentsSection(BuilderBase):
    def _payments(self, rng: random.Random, booking: Row, booking_type: str, paid_at: dt.datetime, *,
                  allow_cash: bool) -> list[Row]:
        """The successful payment for a booking, sometimes preceded by a failed attempt."""
        method = self._method(rng, booking_type, allow_cash=allow_cash)
        rows: list[Row] = []
        if method != "cash" and rng.random() < 0.04:
            failed_at = paid_at - dt.timedelta(minutes=rng.randint(1, 3))
            rows.append(self._payment_row(rng, booking, method, failed_at, "failed"))
        rows.append(self._payment_row(rng, booking, method, paid_at, "success"))
        return rows

    @staticmethod
    def _method(rng: random.Random, booking_type: str, *, allow_cash: bool) -> str:
        """Cash is paid at the counter (or to the therapist) after the session; everything else is Razorpay."""
        cash_share = 0.3 if booking_type == "spa_visit" else 0.15
        if allow_cash and rng.random() < cash_share:
            return "cash"
        method: str = weighted(rng, (("upi", 50), ("credit_card", 20), ("debit_card", 15), ("net_banking", 5),
                                     ("wallet", 10)))
        return method

    def _payment_row(self, rng: random.Random, booking: Row, method: str, at: dt.datetime, status: str) -> Row:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        transaction_id = f"TXN{at.astimezone(PLATFORM_ZONE):%Y%m%d}{rng.getrandbits(64):016X}"
        if method == "cash":
            gateway, gateway_id = None, None
            metadata: dict[str, Any] = {"collected_by": "front_desk", "receipt": f"RCPT-{rng.randrange(10**6):06d}"}
        else:
            gateway = "razorpay"
            gateway_id = "pay_" + "".join(rng.choice(alphabet) for _ in range(14))
            metadata = {"razorpay_order_id": "order_" + "".join(rng.choice(alphabet) for _ in range(14)),
                        "razorpay_payment_id": gateway_id, "method": method}
            if method == "upi":
                handle = rng.choice(("okaxis", "okhdfcbank", "ybl", "paytm"))
                metadata["vpa"] = f"user{rng.randrange(10**6)}@{handle}"
            elif method in ("credit_card", "debit_card"):
                metadata["card_network"] = rng.choice(("Visa", "MasterCard", "RuPay"))
                metadata["card_last4"] = f"{rng.randrange(10000):04d}"
            elif method == "net_banking":
                metadata["bank"] = rng.choice(BANKS)[0]
            else:
                metadata["wallet"] = rng.choice(("paytm", "phonepe", "amazonpay"))
            if status == "failed":
                metadata["error_code"] = "BAD_REQUEST_ERROR"
                metadata["error_description"] = "Payment declined by the issuing bank"
        return {
            "id": new_uid(rng), "transaction_id": transaction_id, "booking_id": booking["id"],
            "customer_id": booking["customer_id"], "vendor_id": booking["vendor_id"],
            "amount": booking["subtotal_amount"], "tax_amount": booking["tax_amount"],
            "discount_amount": booking["discount_amount"], "convenience_fee": Decimal("0.00"),
            "total_amount": booking["total_amount"], "payment_method": method, "payment_gateway": gateway,
            "gateway_transaction_id": gateway_id, "status": status, "payment_date": at,
            "refund_amount": None, "refund_date": None, "refund_reason": None, "metadata": metadata,
            "created_at": at, "updated_at": at,
        }

