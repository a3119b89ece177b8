"""Bookings: 90 days of history and two upcoming days, with their items, the therapists
assigned and the payments (payments.py)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from bisect import bisect_left
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from devtools.demo.base import clock_time, new_uid, weighted
from devtools.demo.payments import PaymentsSection
from devtools.demo.reference import (
    CUSTOMER_CANCEL_REASONS,
    HISTORY_DAYS,
    PLATFORM_ZONE,
    SERVICE_INDEX,
    SERVICES,
    SPECIAL_INSTRUCTIONS,
    UPCOMING_DAYS,
    VENDOR_CANCEL_REASONS,
    Customer,
    Row,
    Therapist,
    Vendor,
    gst_on,
    item_price,
    money,
)


class BookingsSection(PaymentsSection):
    """Its payments are PaymentsSection's helpers."""

    def build_bookings(self) -> None:
        rng = self.rng("bookings")
        pay_rng = self.rng("payments")
        bookable = [v for v in self.vendors if v.bookable and v.services]
        vendor_weights = [sum(t.status == "active" for t in v.therapists) + 1 for v in bookable]
        by_city: dict[str, list[Customer]] = defaultdict(list)
        for c in self.customers:
            by_city[c.city].append(c)  # already in sign-up order
        signup = {city: [c.created_at for c in cs] for city, cs in by_city.items()}
        busy: dict[tuple[uuid.UUID, dt.date], list[tuple[int, int]]] = defaultdict(list)
        promo_uses: Counter[tuple[uuid.UUID, uuid.UUID]] = Counter()
        drafts: list[Row] = []
        per_day = 20000 / HISTORY_DAYS * self.scale
        day_factor = (0.85, 0.85, 0.9, 0.95, 1.05, 1.3, 1.35)
        for offset in range(-(HISTORY_DAYS - 1), UPCOMING_DAYS + 1):
            day = self.today + dt.timedelta(days=offset)
            if offset <= 0:
                trend = 0.9 + 0.2 * (offset + HISTORY_DAYS - 1) / (HISTORY_DAYS - 1)  # slow growth
                target = per_day * trend * day_factor[day.weekday()] * rng.uniform(0.9, 1.1)
            else:
                target = per_day * (0.55 if offset == 1 else 0.3)  # booked ahead so far
            for _ in range(max(1, round(target))):
                draft = self._booking(rng, pay_rng, day, bookable, vendor_weights, by_city, signup, busy,
                                      promo_uses)
                if draft is not None:
                    drafts.append(draft)
        # Numbers follow creation: OBO-<IST creation date>-<sequence of that day>.
        drafts.sort(key=lambda d: (d["row"]["created_at"], d["row"]["id"]))
        sequence: Counter[dt.date] = Counter()
        for d in drafts:
            made = d["row"]["created_at"].astimezone(PLATFORM_ZONE).date()
            sequence[made] += 1
            d["row"]["booking_number"] = f"OBO-{made:%Y%m%d}-{sequence[made]:04d}"
        drafts.sort(key=lambda d: (d["row"]["booking_date"], d["row"]["booking_time"], d["row"]["booking_number"]))
        self.bookings = drafts
        for d in drafts:
            self.rows["bookings"].append(d["row"])
            self.rows["booking_items"].extend(d["items"])
            self.rows["therapist_assignments"].extend(d["assignments"])
            self.rows["payments"].extend(d["payments"])
            if d["row"]["promotion_id"] is not None:
                self.rows["promotion_usage"].append({
                    "id": new_uid(pay_rng), "promotion_id": d["row"]["promotion_id"],
                    "customer_id": d["row"]["customer_id"], "booking_id": d["row"]["id"],
                    "discount_amount": d["row"]["discount_amount"], "used_at": d["row"]["created_at"],
                })
        uses = Counter(u["promotion_id"] for u in self.rows["promotion_usage"])
        for p in self.rows["promotions"]:
            p["current_usage_count"] = uses.get(p["id"], 0)

    def _booking(self, rng: random.Random, pay_rng: random.Random, day: dt.date, bookable: list[Vendor],
                 vendor_weights: list[int], by_city: dict[str, list[Customer]],
                 signup: dict[str, list[dt.datetime]],
                 busy: dict[tuple[uuid.UUID, dt.date], list[tuple[int, int]]],
                 promo_uses: Counter[tuple[uuid.UUID, uuid.UUID]]) -> Row | None:
        upcoming = day > self.today
        if upcoming:
            status = weighted(rng, (("pending", 20), ("confirmed", 35), ("assigned", 40), ("cancelled", 5)))
        else:
            status = weighted(rng, (("completed", 88), ("cancelled", 12)))
        for _attempt in range(4):
            vendor = rng.choices(bookable, weights=vendor_weights)[0]
            hours = vendor.hours[day.weekday()]
            if hours is None:
                continue
            plan = self._plan_items(rng, vendor)
            length = sum(p["minutes"] for p in plan)
            if hours[1] - hours[0] < length:
                continue
            starts = list(range(hours[0], hours[1] - length + 1, 30))
            weights = [1.6 if s >= 17 * 60 else 0.6 if s < 11 * 60 else 1.0 for s in starts]
            instructions = rng.choice(SPECIAL_INSTRUCTIONS) if rng.random() < 0.15 else None
            wants_female = instructions == "Prefer a female therapist"
            for _slot in range(8):
                start = rng.choices(starts, weights=weights)[0]
                picks = self._staff(rng, vendor, day, start, plan, busy, wants_female) \
                    if status in ("completed", "assigned") else []
                if picks is not None:
                    break
            else:
                continue
            start_at = self.at(day, start)
            created = self._created_at(rng, start_at)
            customers = by_city.get(vendor.city, [])
            eligible = bisect_left(signup.get(vendor.city, []), created)
            if eligible == 0:
                continue
            customer = customers[rng.randrange(eligible)]
            for therapist, _index, item_start, minutes in picks:
                busy[(therapist.id, day)].append((item_start, item_start + minutes))
            return self._booking_rows(rng, pay_rng, vendor, customer, day, start, start_at, created, status,
                                      plan, picks, instructions, promo_uses)
        return None

    def _plan_items(self, rng: random.Random, vendor: Vendor) -> list[dict[str, Any]]:
        weights = [(c, SERVICES[SERVICE_INDEX[c]].popularity) for c in vendor.services]
        plan: list[dict[str, Any]] = []
        for _ in range(2 if rng.random() < 0.18 else 1):
            code = weighted(rng, weights)
            if any(p["code"] == code for p in plan):
                continue
            options = SERVICES[SERVICE_INDEX[code]].durations
            duration = weighted(rng, list(zip(options, (50, 35, 15)[: len(options)], strict=True)))
            addons: list[Row] = []
            roll = rng.random()
            if roll < 0.3:
                addons = rng.sample(self.addons, 2 if roll < 0.05 else 1)
            plan.append({"code": code, "duration": duration, "addons": addons,
                         "minutes": duration + sum(a["duration"] for a in addons),
                         "therapists": 2 if self.services[code]["category"] == "couples" else 1})
        return plan

    def _staff(self, rng: random.Random, vendor: Vendor, day: dt.date, start: int, plan: list[dict[str, Any]],
               busy: dict[tuple[uuid.UUID, dt.date], list[tuple[int, int]]],
               wants_female: bool) -> list[tuple[Therapist, int, int, int]] | None:
        """Therapists for each item, back to back from `start`: same vendor, right skill, on shift,
        not on leave, no overlap with their other work that day. None when the slot cannot be staffed."""
        picks: list[tuple[Therapist, int, int, int]] = []
        at = start
        for index, item in enumerate(plan):
            end = at + item["minutes"]
            free = []
            for t in vendor.therapists:
                if t.status in ("inactive", "terminated") or (day > self.today and t.status != "active"):
                    continue
                shift = t.shifts.get(day.weekday())
                if shift is None or item["code"] not in t.codes or day in t.leave_days:
                    continue
                s0, s1, b0, b1 = shift
                if at < s0 or end > s1 or (at < b1 and end > b0):
                    continue
                if any(at < e and end > s for s, e in busy.get((t.id, day), [])):
                    continue
                if any(p[0].id == t.id and at < p[2] + p[3] and end > p[2] for p in picks):
                    continue
                free.append(t)
            if wants_female and sum(t.gender == "female" for t in free) >= item["therapists"]:
                free = [t for t in free if t.gender == "female"]
            if len(free) < item["therapists"]:
                return None
            for t in rng.sample(free, item["therapists"]):
                picks.append((t, index, at, item["minutes"]))
            at = end
        return picks

    def _created_at(self, rng: random.Random, start_at: dt.datetime) -> dt.datetime:
        lead = weighted(rng, (("same_day", 25), ("days", 55), ("weeks", 20)))
        if lead == "same_day":
            minutes = rng.randint(60, 8 * 60)
        elif lead == "days":
            minutes = rng.randint(24 * 60, 3 * 24 * 60)
        else:
            minutes = rng.randint(4 * 24 * 60, 14 * 24 * 60)
        created = start_at - dt.timedelta(minutes=minutes, seconds=rng.randint(0, 59))
        if created > self.anchor:  # upcoming: it must already exist when the data set is taken
            created = self.anchor - dt.timedelta(minutes=rng.randint(10, 12 * 60), seconds=rng.randint(0, 59))
        return created

    def _booking_rows(self, rng: random.Random, pay_rng: random.Random, vendor: Vendor, customer: Customer,
                      day: dt.date, start: int, start_at: dt.datetime, created: dt.datetime, status: str,
                      plan: list[dict[str, Any]], picks: list[tuple[Therapist, int, int, int]],
                      instructions: str | None, promo_uses: Counter[tuple[uuid.UUID, uuid.UUID]]) -> Row:
        booking_id = new_uid(rng)
        if vendor.business_type == "home_service":
            booking_type = "home_service"
        elif vendor.business_type == "hotel_spa":
            booking_type = weighted(rng, (("hotel_service", 70), ("spa_visit", 30)))
        else:
            booking_type = weighted(rng, (("spa_visit", 82), ("home_service", 18)))
        if booking_type == "home_service":
            a = rng.choice(customer.addresses)
            location = {"address": f"{a['line1']}, {a['line2']}, {vendor.city} {a['pincode']}",
                        "city": vendor.city, "latitude": float(a["latitude"]),
                        "longitude": float(a["longitude"]), "landmark": a["landmark"]}
        else:
            va = vendor.address
            prefix = f"Room {rng.randint(1, 12)}{rng.randint(1, 40):02d}, " if booking_type == "hotel_service" else ""
            location = {"address": f"{prefix}{va['street']}, {vendor.city} {va['pincode']}", "city": vendor.city,
                        "latitude": va["latitude"], "longitude": va["longitude"], "landmark": va["landmark"]}
        items: list[Row] = []
        subtotal = Decimal("0.00")
        for p in plan:
            service = self.services[p["code"]]
            price = item_price(service["base_price_60min"], p["duration"])
            quantity = 1
            line = money(price * quantity + sum((a["price"] for a in p["addons"]), Decimal("0.00")))
            subtotal += line
            items.append({
                "id": new_uid(rng), "booking_id": booking_id, "service_id": service["id"], "duration": p["duration"],
                "price": price, "quantity": quantity,
                "addon_services": [{"id": str(a["id"]), "name": a["name"], "price": str(a["price"])}
                                   for a in p["addons"]],
                "subtotal": line, "created_at": created,
            })
        promotion, discount = None, Decimal("0.00")
        if status != "cancelled" and rng.random() < 0.12:
            for promo in rng.sample(self.promotions, len(self.promotions)):
                key = (promo.id, customer.id)
                if promo.code == "WEEKDAY10" and day.weekday() > 3:  # Monday to Thursday only
                    continue
                if (promo.valid_from <= created <= promo.valid_to and subtotal >= promo.min_amount
                        and promo_uses[key] < promo.per_customer):
                    if promo.kind == "percentage":
                        discount = money(subtotal * promo.value / 100)
                        if promo.max_discount is not None:
                            discount = min(discount, promo.max_discount)
                    else:
                        discount = min(promo.value, subtotal)
                    promotion = promo
                    promo_uses[key] += 1
                    break
        tax = gst_on(subtotal - discount)
        total = subtotal - discount + tax
        end_at = start_at + dt.timedelta(minutes=sum(p["minutes"] for p in plan))
        row: Row = {
            "id": booking_id, "booking_number": "", "customer_id": customer.id, "vendor_id": vendor.id,
            "booking_type": booking_type, "service_location": location, "booking_date": day,
            "booking_time": clock_time(start), "status": status, "cancellation_reason": None, "cancelled_by": None,
            "cancelled_at": None, "payment_status": "pending", "special_instructions": instructions,
            "subtotal_amount": subtotal, "discount_amount": discount, "tax_amount": tax, "total_amount": total,
            "promotion_id": promotion.id if promotion else None, "created_at": created, "updated_at": created,
        }
        assignments: list[Row] = []
        finished = end_at
        for therapist, index, item_start, minutes in picks:
            service_code = plan[index]["code"]
            assigned_at = min(created + dt.timedelta(minutes=rng.randint(2, 90)),
                              self.at(day, item_start) - dt.timedelta(minutes=15), self.anchor)
            assigned_at = max(assigned_at, created + dt.timedelta(seconds=30))
            a_row: Row = {
                "id": new_uid(rng), "booking_id": booking_id, "therapist_id": therapist.id, "vendor_id": vendor.id,
                "customer_id": customer.id, "service_id": self.services[service_code]["id"],
                "assignment_date": day, "assignment_time": clock_time(item_start),
                "status": "completed" if status == "completed" else rng.choice(("assigned", "acknowledged")),
                "location_address": location["address"],
                "location_latitude": Decimal(f"{location['latitude']:.6f}"),
                "location_longitude": Decimal(f"{location['longitude']:.6f}"),
                "estimated_duration": minutes, "actual_start_time": None, "actual_end_time": None,
                "actual_duration": None, "distance_traveled": None, "travel_time": None,
                "customer_rating": None, "customer_feedback": None, "notes": None,
                "created_at": assigned_at, "updated_at": assigned_at,
            }
            if booking_type == "home_service":
                a_row["distance_traveled"] = money(Decimal(rng.randint(150, 1500)) / 100)
                a_row["travel_time"] = rng.randint(10, 50)
            if status == "completed":
                actual_start = self.at(day, item_start) + dt.timedelta(minutes=rng.randint(-3, 8))
                actual_minutes = minutes + rng.randint(-5, 5)
                actual_end = actual_start + dt.timedelta(minutes=actual_minutes)
                a_row.update(actual_start_time=actual_start, actual_end_time=actual_end,
                             actual_duration=actual_minutes, updated_at=actual_end)
                finished = max(finished, actual_end)
            assignments.append(a_row)
        payments: list[Row] = []
        if status == "completed":
            row["updated_at"] = finished + dt.timedelta(minutes=rng.randint(1, 15))
            if pay_rng.random() < 0.98:
                row["payment_status"] = "paid"
                prepaid = pay_rng.random() < 0.35
                paid_at = created + dt.timedelta(minutes=pay_rng.randint(1, 4)) if prepaid \
                    else finished + dt.timedelta(minutes=pay_rng.randint(2, 20))
                payments.extend(self._payments(pay_rng, row, booking_type, paid_at, allow_cash=not prepaid))
        elif status == "cancelled":
            by_customer = rng.random() < 0.85
            horizon = min(start_at, self.anchor)
            cancelled_at = created + (horizon - created) * rng.uniform(0.1, 0.95)
            cancelled_at = cancelled_at.replace(microsecond=0)
            row.update(cancellation_reason=rng.choice(CUSTOMER_CANCEL_REASONS if by_customer
                                                      else VENDOR_CANCEL_REASONS),
                       cancelled_by=customer.id if by_customer else vendor.id, cancelled_at=cancelled_at,
                       updated_at=cancelled_at)
            if pay_rng.random() < 0.3:  # it had been paid online: refunded
                paid_at = created + dt.timedelta(minutes=pay_rng.randint(1, 4))
                paid_at = min(paid_at, cancelled_at - dt.timedelta(seconds=30))
                method = self._method(pay_rng, booking_type, allow_cash=False)
                payment = self._payment_row(pay_rng, row, method, paid_at, "success")
                refund_at = min(cancelled_at + dt.timedelta(hours=pay_rng.randint(2, 72)), self.anchor)
                payment.update(status="refunded", refund_amount=payment["total_amount"], refund_date=refund_at,
                               refund_reason=row["cancellation_reason"], updated_at=refund_at)
                payments.append(payment)
                row["payment_status"] = "refunded"
        elif pay_rng.random() < 0.4:  # upcoming, prepaid online
            row["payment_status"] = "paid"
            payments.extend(self._payments(pay_rng, row, booking_type,
                                           created + dt.timedelta(minutes=pay_rng.randint(1, 4)),
                                           allow_cash=False))
        return {"row": row, "items": items, "assignments": assignments, "payments": payments,
                "plan": plan, "vendor": vendor, "customer": customer, "picks": picks, "end": finished}

