"""What follows from bookings: reviews, ratings, loyalty and customers' totals."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import Counter, defaultdict
from decimal import Decimal

from devtools.demo.base import BuilderBase, new_uid, weighted
from devtools.demo.reference import (
    REVIEW_TEXTS,
    Row,
    money,
)


class FeedbackSection(BuilderBase):
    def build_feedback(self) -> None:
        """Assignment ratings, reviews, and the aggregates they feed (ratings, customer totals)."""
        rng = self.rng("reviews")
        care = self.staff_of("customer_care")
        rating_weights = ((5, 50), (4, 30), (3, 12), (2, 5), (1, 3))
        for d in self.bookings:
            row = d["row"]
            if row["status"] != "completed" or not d["assignments"]:
                continue
            roll = rng.random()
            if roll > 0.35:
                continue
            rating = weighted(rng, rating_weights)
            assignment = d["assignments"][0]
            assignment["customer_rating"] = rating
            therapist = next(p[0] for p in d["picks"] if p[0].id == assignment["therapist_id"])
            if roll > 0.08:  # rated in the app only; about one in twelve also writes a review
                continue
            written = d["end"] + dt.timedelta(minutes=rng.randint(30, 48 * 60))
            if written > self.anchor:
                continue
            title, text = rng.choice(REVIEW_TEXTS[rating])
            service_name = self.services[d["plan"][0]["code"]]["name"]
            text = text.format(therapist=therapist.name.split()[0], service=service_name.lower(),
                               city=d["vendor"].city)
            assignment["customer_feedback"] = text
            recent = written > self.anchor - dt.timedelta(days=2)
            status = "pending" if recent else weighted(rng, (("approved", 92), ("rejected", 4), ("flagged", 4)))
            self.rows["reviews"].append({
                "id": new_uid(rng), "booking_id": row["id"], "customer_id": row["customer_id"],
                "vendor_id": row["vendor_id"], "therapist_id": therapist.id,
                "service_id": self.services[d["plan"][0]["code"]]["id"], "overall_rating": rating,
                "service_quality_rating": max(1, min(5, rating + rng.choice((-1, 0, 0, 1)))),
                "professionalism_rating": max(1, min(5, rating + rng.choice((-1, 0, 0, 1)))),
                "cleanliness_rating": max(1, min(5, rating + rng.choice((-1, 0, 0, 1)))),
                "value_for_money_rating": max(1, min(5, rating + rng.choice((-1, 0, 0)))),
                "title": title, "review_text": text, "photos": None, "would_recommend": rating >= 4,
                "status": status, "moderated_by": rng.choice(care).id if status != "pending" else None,
                "moderation_notes": "Contains personal contact details" if status == "rejected" else None,
                "helpful_count": rng.randint(0, 12) if status == "approved" else 0,
                "created_at": written, "updated_at": written,
            })
        # Therapist rating: mean of in-app ratings; services: completed assignments.
        stats: dict[uuid.UUID, list[int]] = defaultdict(list)
        done: Counter[uuid.UUID] = Counter()
        for a in self.rows["therapist_assignments"]:
            if a["status"] == "completed":
                done[a["therapist_id"]] += 1
                if a["customer_rating"] is not None:
                    stats[a["therapist_id"]].append(a["customer_rating"])
        for t in self.rows["therapists"]:
            ratings = stats.get(t["id"], [])
            t["total_services"] = done.get(t["id"], 0)
            t["total_reviews"] = len(ratings)
            t["rating"] = money(Decimal(sum(ratings)) / len(ratings)) if ratings else Decimal("0.00")
        # Vendor rating: mean of approved reviews.
        vendor_reviews: dict[uuid.UUID, list[int]] = defaultdict(list)
        for r in self.rows["reviews"]:
            if r["status"] == "approved":
                vendor_reviews[r["vendor_id"]].append(r["overall_rating"])
        for v in self.rows["vendors"]:
            ratings = vendor_reviews.get(v["id"], [])
            v["total_reviews"] = len(ratings)
            v["rating"] = money(Decimal(sum(ratings)) / len(ratings)) if ratings else Decimal("0.00")
        # Customer totals, loyalty (1 point per Rs 100 paid) and preferences from their own history.
        per_customer: dict[uuid.UUID, list[Row]] = defaultdict(list)
        for d in self.bookings:
            per_customer[d["row"]["customer_id"]].append(d)
        for c in self.rows["customers"]:
            history = per_customer.get(c["id"], [])
            paid = [d for d in history if d["row"]["status"] == "completed" and d["row"]["payment_status"] == "paid"]
            c["total_bookings"] = len(history)
            c["total_spent"] = sum((d["row"]["total_amount"] for d in paid), Decimal("0.00"))
            # The ledger and the balance agree: one 'earned' entry per paid booking.
            for d in paid:
                points = int(d["row"]["total_amount"] // 100)
                if points:
                    self.rows["loyalty_transactions"].append({
                        "id": new_uid(rng), "customer_id": c["id"], "transaction_type": "earned", "points": points,
                        "booking_id": d["row"]["id"], "description": f"Points for {d['row']['booking_number']}",
                        "created_at": d["row"]["updated_at"],
                    })
                    c["loyalty_points"] += points
            if history:
                services = Counter(self.services[d["plan"][0]["code"]]["id"] for d in history)
                vendors = Counter(d["row"]["vendor_id"] for d in history)
                therapists = Counter(a["therapist_id"] for d in history for a in d["assignments"])
                c["preferred_services"] = [s for s, _ in services.most_common(2)]
                c["preferred_vendors"] = [v for v, _ in vendors.most_common(1)]
                c["preferred_therapists"] = [t for t, _ in therapists.most_common(1)] or None
                last = max(d["row"]["updated_at"] for d in history)
                c["updated_at"] = max(c["created_at"], min(last, self.anchor))
