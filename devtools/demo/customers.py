"""Customers and their addresses."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal

from devtools.demo.base import BuilderBase, ascii_name, new_uid, weighted
from devtools.demo.reference import (
    HISTORY_DAYS,
    PLATFORM_ZONE,
    Customer,
)


class CustomersSection(BuilderBase):
    def build_customers(self) -> None:
        rng = self.rng("customers")
        # Customers live where bookable vendors are, in proportion to their therapists.
        capacity: Counter[str] = Counter()
        for v in self.vendors:
            if v.bookable and v.services:
                capacity[v.city] += sum(t.status == "active" for t in v.therapists)
        cities = [(c, w) for c, w in capacity.items() if w > 0]
        n = self.count(3000, 30)
        drafts = []
        for _ in range(n):
            # Most signed up before the window; a third during it (their bookings start after sign-up).
            created = self.days_ago(rng, 1, HISTORY_DAYS - 1) if rng.random() < 0.3 \
                else self.days_ago(rng, HISTORY_DAYS + 5, 900)
            drafts.append((created, new_uid(rng)))
        drafts.sort()  # referrers are always earlier customers, and inserted first
        tiers = (("silver", 60), ("gold", 25), ("platinum", 10), ("diamond", 5))
        for idx, (created, customer_id) in enumerate(drafts):
            city = weighted(rng, cities)
            female = rng.random() < 0.58
            name = self.person(rng, female=female)
            first, last = name.split(" ", 1)
            domain = weighted(rng, (("gmail.com", 70), ("yahoo.co.in", 10), ("outlook.com", 10),
                                     ("rediffmail.com", 5), ("hotmail.com", 5)))
            email = self.email(f"{ascii_name(first)}.{ascii_name(last)}", domain)
            mobile = self.mobile(rng)
            home = self.street_address(rng, city)
            address = {"street": f"{home['line1']}, {home['line2']}", "city": city, "state": home["state"],
                       "pincode": home["pincode"], "country": "India"}
            dob = self.today - dt.timedelta(days=rng.randint(20 * 365, 60 * 365))
            self.add_user(rng, user_id=customer_id, email=email, name=name, mobile=mobile, role="customer",
                          gender="female" if female else "male", created_at=created, address=address, dob=dob,
                          confirmed=rng.random() < 0.92)
            prefs = {"email": rng.random() > 0.08, "sms": rng.random() > 0.10,
                     "whatsapp": rng.random() < 0.30, "push": rng.random() > 0.15}
            referred_by = self.customers[rng.randrange(idx)].id if idx > 10 and rng.random() < 0.15 else None
            self.rows["customers"].append({
                "id": customer_id, "membership_tier": weighted(rng, tiers),
                "membership_start_date": created.astimezone(PLATFORM_ZONE).date(),
                "loyalty_points": 0, "total_bookings": 0, "total_spent": Decimal("0.00"),
                "preferred_services": None, "preferred_therapists": None, "preferred_vendors": None,
                "communication_preferences": prefs,
                "allergies": [rng.choice(("nut oils", "lavender", "latex", "strong fragrances"))]
                if rng.random() < 0.05 else None,
                "medical_conditions": [rng.choice(("hypertension", "lower back pain", "diabetes", "migraine"))]
                if rng.random() < 0.04 else None,
                "special_requirements": None, "referral_code": self.unique_code(rng, "OMB", 6),
                "referred_by": referred_by, "referral_count": 0,
                "created_at": created, "updated_at": created,
            })
            addresses = [{**home, "type": "home", "label": "Home"}]
            if rng.random() < 0.35:
                work = self.street_address(rng, city)
                tower = rng.choice(("Tech Park", "Business Bay", "Trade Centre", "Corporate Tower"))
                work["line1"] = f"{rng.randint(1, 12)}th Floor, {tower}"
                addresses.append({**work, "type": "work", "label": "Office"})
            for k, a in enumerate(addresses):
                a["id"] = new_uid(rng)
                self.rows["customer_addresses"].append({
                    "id": a["id"], "customer_id": customer_id, "address_type": a["type"], "label": a["label"],
                    "address_line1": a["line1"], "address_line2": a["line2"], "landmark": a["landmark"],
                    "city": city, "state": a["state"], "pincode": a["pincode"], "country": "India",
                    "latitude": a["latitude"], "longitude": a["longitude"], "is_default": k == 0,
                    "created_at": created, "updated_at": created,
                })
            self.customers.append(Customer(customer_id, city, created, addresses))
        referrals = Counter(r["referred_by"] for r in self.rows["customers"] if r["referred_by"])
        for row in self.rows["customers"]:
            row["referral_count"] = referrals.get(row["id"], 0)

