"""Marketing: promotions and campaigns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from devtools.demo.base import BuilderBase, new_uid
from devtools.demo.reference import (
    Promotion,
)


class MarketingSection(BuilderBase):
    def build_marketing(self) -> None:
        rng = self.rng("marketing")
        marketing = self.staff_of("marketing")
        head = marketing[0]
        # (code, name, type, value, min amount, max discount, valid from / to (days from today), per customer)
        specs = (
            ("WELCOME20", "Welcome offer: 20% off your first booking", "percentage", "20", "1000", "300",
             -365, 365, 1),
            ("FLAT250", "Flat Rs 250 off on bookings above Rs 2,000", "fixed_amount", "250", "2000", None,
             -120, 60, 3),
            ("WEEKDAY10", "10% off Monday to Thursday", "percentage", "10", "1500", "400", -60, 90, 5),
            ("MONSOON15", "Monsoon wellness: 15% off", "percentage", "15", "1500", "500", -100, -45, 2),
            ("FESTIVE25", "Festive glow: 25% off", "percentage", "25", "2500", "750", -40, -20, 1),
            ("FREEHTW", "Free hot towel wrap with any 90-minute massage", "free_addon", "250", "2500", "250",
             -10, 50, 1),
        )
        for code, name, kind, value, min_amount, max_discount, start, end, per_customer in specs:
            valid_from = self.at(self.today + dt.timedelta(days=start), 0)
            valid_to = self.at(self.today + dt.timedelta(days=end), 24 * 60 - 1)
            status = "active" if end >= 0 else "expired"
            promo_id = new_uid(rng)
            creator = rng.choice(marketing)
            created_at = min(valid_from - dt.timedelta(days=3), self.anchor)
            self.rows["promotions"].append({
                "id": promo_id, "code": code, "name": name, "description": name, "type": kind,
                "discount_value": Decimal(value), "min_booking_amount": Decimal(min_amount),
                "max_discount_amount": Decimal(max_discount) if max_discount else None,
                "applicable_services": [], "applicable_vendors": [], "usage_limit_per_customer": per_customer,
                "total_usage_limit": None if code == "WELCOME20" else self.count(5000, 200),
                "current_usage_count": 0, "valid_from": valid_from, "valid_to": valid_to,
                "terms_and_conditions": "One code per booking. Not valid with other offers. "
                                        "Discount applies before GST.",
                "status": status, "created_by": creator.id, "created_at": created_at, "updated_at": created_at,
            })
            if kind in ("percentage", "fixed_amount"):  # the add-on offer is not applied to demo bookings
                self.promotions.append(Promotion(
                    promo_id, code, kind, Decimal(value), Decimal(min_amount),
                    Decimal(max_discount) if max_discount else None, valid_from, valid_to, per_customer))
        n_customers = len(self.customers)
        campaigns: tuple[tuple[str, str, str, int, int, str, list[str]], ...] = (
            ("Monsoon Wellness Week", "multi_channel", "completed", -100, -86, "75000", ["silver", "gold"]),
            ("Festive Glow Offer", "email", "completed", -42, -20, "120000", ["gold", "platinum", "diamond"]),
            ("Win-back: we miss you", "sms", "active", -7, 14, "30000", ["silver"]),
            ("Weekend Couples Retreat", "push", "scheduled", 3, 10, "40000", ["gold", "platinum"]),
            ("New Year Detox Packages", "multi_channel", "draft", 30, 45, "90000", []),
        )
        for name, kind, status, start, end, budget, tiers in campaigns:
            audience = max(10, int(n_customers * rng.uniform(0.2, 0.6)))
            sent = audience if status in ("completed", "active") else 0
            delivered = int(sent * rng.uniform(0.92, 0.98))
            opened = int(delivered * rng.uniform(0.18, 0.4))
            clicked = int(opened * rng.uniform(0.1, 0.3))
            start_at = self.at(self.today + dt.timedelta(days=start), 10 * 60)
            created_at = min(start_at - dt.timedelta(days=5), self.anchor - dt.timedelta(hours=5))
            self.rows["campaigns"].append({
                "id": new_uid(rng), "name": name, "type": kind, "status": status,
                "target_audience": {"tier": tiers, "city": [], "last_booking_days": 60},
                "content": {"subject": name, "body": f"{name}: treat yourself at an OMBARO partner near you.",
                            "images": [], "cta": "Book now"},
                "start_date": start_at, "end_date": self.at(self.today + dt.timedelta(days=end), 22 * 60),
                "budget": Decimal(budget), "created_by": rng.choice(marketing).id,
                "approved_by": head.id if status != "draft" else None,
                "metrics": {"sent": sent, "delivered": delivered, "opened": opened, "clicked": clicked,
                            "converted": int(clicked * rng.uniform(0.05, 0.2))},
                "created_at": created_at, "updated_at": created_at,
            })

