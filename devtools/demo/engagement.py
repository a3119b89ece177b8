"""Support tickets, notifications and analytics events."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from devtools.demo.base import BuilderBase, new_uid, weighted
from devtools.demo.reference import (
    CITIES,
    HISTORY_DAYS,
    PLATFORM_ZONE,
    TICKET_SUBJECTS,
)


class EngagementSection(BuilderBase):
    def build_support(self) -> None:
        rng = self.rng("support")
        care = self.staff_of("customer_care")
        with_history = [d for d in self.bookings if d["row"]["created_at"] < self.anchor - dt.timedelta(hours=6)]
        n = min(len(with_history), self.count(60, 3))
        picked = sorted(rng.sample(range(len(with_history)), n))
        categories = (("booking_issue", 30), ("payment_issue", 20), ("service_quality", 20), ("technical", 12),
                      ("feedback", 10), ("other", 8))
        drafts = []
        for i in picked:
            d = with_history[i]
            category = weighted(rng, categories)
            opened = d["row"]["created_at"] + dt.timedelta(hours=rng.randint(1, 72))
            opened = min(opened, self.anchor - dt.timedelta(hours=1))
            drafts.append((opened, d, category))
        drafts.sort(key=lambda x: (x[0], x[1]["row"]["id"]))
        sequence: Counter[dt.date] = Counter()
        for opened, d, category in drafts:
            made = opened.astimezone(PLATFORM_ZONE).date()
            sequence[made] += 1
            age = self.anchor - opened
            if age > dt.timedelta(days=7):
                status = weighted(rng, (("closed", 60), ("resolved", 40)))
            else:
                status = weighted(rng, (("open", 30), ("in_progress", 35), ("waiting", 15), ("resolved", 20)))
            agent = rng.choice(care)
            assigned_at = opened + dt.timedelta(minutes=rng.randint(5, 240)) if status != "open" else None
            if assigned_at is not None:
                assigned_at = min(assigned_at, self.anchor)
            resolved_at = None
            if status in ("resolved", "closed") and assigned_at is not None:
                resolved_at = min(assigned_at + dt.timedelta(hours=rng.randint(1, 72)), self.anchor)
            ticket_id = new_uid(rng)
            subject = rng.choice(TICKET_SUBJECTS[category])
            self.rows["support_tickets"].append({
                "id": ticket_id, "ticket_number": f"TKT-{made:%Y%m%d}-{sequence[made]:04d}",
                "customer_id": d["row"]["customer_id"], "booking_id": d["row"]["id"], "category": category,
                "priority": weighted(rng, (("low", 20), ("medium", 50), ("high", 25), ("urgent", 5))),
                "subject": subject,
                "description": f"{subject}. Booking {d['row']['booking_number']}.",
                "status": status, "assigned_to": agent.id if assigned_at else None, "assigned_at": assigned_at,
                "resolved_at": resolved_at,
                "resolution_notes": "Explained and resolved; customer confirmed." if resolved_at else None,
                "satisfaction_rating": rng.randint(3, 5) if resolved_at and rng.random() < 0.6 else None,
                "attachments": None, "created_at": opened, "updated_at": resolved_at or assigned_at or opened,
            })
            messages = [(d["row"]["customer_id"], "customer", f"Hi, {subject.lower()}. Please help.", opened, False)]
            if assigned_at:
                messages.append((agent.id, "employee", "Thanks for reaching out, we are looking into this.",
                                 assigned_at, False))
                if rng.random() < 0.4:
                    messages.append((agent.id, "employee", "Checked with the vendor; awaiting their reply.",
                                     assigned_at + dt.timedelta(minutes=5), True))
            if resolved_at:
                messages.append((agent.id, "employee", "This is resolved now. Anything else we can help with?",
                                 resolved_at, False))
            for sender, kind, text, at, internal in messages:
                self.rows["ticket_messages"].append({
                    "id": new_uid(rng), "ticket_id": ticket_id, "sender_id": sender, "sender_type": kind,
                    "message": text, "attachments": None, "is_internal": internal,
                    "created_at": min(at, self.anchor),
                })

    def build_notifications(self) -> None:
        rng = self.rng("notifications")
        since = self.anchor - dt.timedelta(days=7)
        for d in self.bookings:
            row = d["row"]
            if row["created_at"] < since:
                continue
            events = []
            if row["status"] != "pending":
                events.append(("booking_confirmed", "Booking confirmed",
                               f"Your booking {row['booking_number']} on {row['booking_date']:%d %b} at "
                               f"{row['booking_time']:%H:%M} is confirmed.",
                               row["created_at"] + dt.timedelta(minutes=2)))
            if row["status"] == "cancelled":
                events.append(("booking_cancelled", "Booking cancelled",
                               f"Booking {row['booking_number']} was cancelled.", row["cancelled_at"]))
            if row["status"] == "completed":
                events.append(("service_completed", "How was your session?",
                               "Rate your therapist and earn loyalty points.", d["end"] + dt.timedelta(minutes=10)))
            for kind, title, message, at in events:
                if at > self.anchor:
                    continue
                read = at < self.anchor - dt.timedelta(hours=12) and rng.random() < 0.7
                self.rows["notifications"].append({
                    "id": new_uid(rng), "user_id": row["customer_id"], "type": kind, "title": title,
                    "message": message, "data": {"booking_id": str(row["id"])},
                    "channels": ["push", "in_app"] if rng.random() < 0.7 else ["push", "in_app", "sms"],
                    "is_read": read, "read_at": at + dt.timedelta(minutes=rng.randint(1, 600)) if read else None,
                    "created_at": at,
                })

    def build_analytics(self) -> None:
        rng = self.rng("analytics")
        platforms = (("android", 55), ("ios", 30), ("web", 15))
        for d in self.bookings:
            row = d["row"]
            if row["created_at"] < self.at(self.first_day, 0):
                continue
            platform = weighted(rng, platforms)
            session = f"sess_{rng.getrandbits(64):016x}"
            city = d["vendor"].city
            for name, shift in (("booking_started", -4), ("booking_completed", 0)):
                self.rows["analytics_events"].append({
                    "id": new_uid(rng), "user_id": row["customer_id"], "session_id": session, "event_name": name,
                    "event_category": "booking",
                    "event_properties": {"vendor_id": str(row["vendor_id"]),
                                         "amount": str(row["total_amount"])} if shift == 0 else
                    {"vendor_id": str(row["vendor_id"])},
                    "device_info": {"platform": platform, "app_version": "3.4.1"},
                    "location_info": {"city": city, "state": CITIES[city].state, "country": "India"},
                    "timestamp": row["created_at"] + dt.timedelta(minutes=shift),
                })
        browsing = self.count(60, 3)
        for offset in range(HISTORY_DAYS):
            day = self.first_day + dt.timedelta(days=offset)
            for _ in range(browsing):
                customer = rng.choice(self.customers)
                if customer.created_at > self.at(day, 23 * 60):
                    continue
                platform = weighted(rng, platforms)
                session = f"sess_{rng.getrandbits(64):016x}"
                at = self.at(day, rng.randint(7 * 60, 23 * 60 - 30))
                for step, name in enumerate(("app_open", "search", "page_view")[: rng.randint(1, 3)]):
                    props: dict[str, Any] = {}
                    if name == "search":
                        props = {"query": rng.choice(("deep tissue", "spa near me", "couples", "thai",
                                                      "home massage"))}
                    elif name == "page_view":
                        props = {"page": rng.choice(("vendor", "service", "offers"))}
                    self.rows["analytics_events"].append({
                        "id": new_uid(rng), "user_id": customer.id, "session_id": session, "event_name": name,
                        "event_category": "engagement", "event_properties": props,
                        "device_info": {"platform": platform, "app_version": "3.4.1"},
                        "location_info": {"city": customer.city, "state": CITIES[customer.city].state,
                                          "country": "India"},
                        "timestamp": at + dt.timedelta(minutes=2 * step),
                    })


# Insertion order respects foreign keys (rows of self-referencing tables are already ordered).
