"""Vendors and their therapists: businesses, opening hours, staff, skills, shifts, leave
and last known locations."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from devtools.demo.base import BuilderBase, ascii_name, clock_time, hhmm, new_uid, weighted
from devtools.demo.reference import (
    BANKS,
    BUSINESS_PREFIXES,
    BUSINESS_SUFFIX,
    BUSINESS_TYPES,
    CITIES,
    CITY_WEIGHTS,
    LANDMARKS,
    SERVICE_INDEX,
    SERVICES,
    STREETS,
    THERAPIST_SURNAMES,
    WEEKDAYS,
    Therapist,
    Vendor,
    money,
)


class VendorsSection(BuilderBase):
    def build_vendors(self) -> None:
        rng = self.rng("vendors")
        rounds = max(CITY_WEIGHTS.values())
        city_order = [c for r in range(rounds) for c, w in CITY_WEIGHTS.items() if w > r]
        n_vendors = self.count(40, 2)
        names: set[str] = set()
        for i in range(n_vendors):
            city = city_order[i % len(city_order)]
            c = CITIES[city]
            business_type = weighted(rng, BUSINESS_TYPES)
            locality, pincode = rng.choice(c.localities)
            name = f"{rng.choice(BUSINESS_PREFIXES)} {BUSINESS_SUFFIX[business_type]}, {locality}"
            while name in names:
                name = f"{rng.choice(BUSINESS_PREFIXES)} {BUSINESS_SUFFIX[business_type]}, {locality}"
            names.add(name)
            # The first ten are always verified and active, so tiny scales still have bookable vendors.
            verification, status = "verified", "active"
            if i >= 10 and i % 11 == 10:
                verification = "pending"
            elif i >= 10 and i % 17 == 16:
                status = "suspended"
            elif i >= 10 and i % 23 == 22:
                verification, status = "rejected", "inactive"
            lat, lon = self.point_near(rng, city, 0.08)
            address = {
                "street": f"{rng.randint(1, 250)}, {rng.choice(STREETS)}, {locality}", "city": city,
                "state": c.state, "pincode": pincode, "country": "India",
                "latitude": float(lat), "longitude": float(lon), "landmark": rng.choice(LANDMARKS),
            }
            hours: dict[int, tuple[int, int] | None] = {}
            if business_type == "home_service":
                open_at, close_at = 7 * 60, 22 * 60
            else:
                open_at = rng.choice((8 * 60, 9 * 60, 9 * 60, 10 * 60))
                close_at = rng.choice((20 * 60, 21 * 60, 21 * 60, 22 * 60))
            closed_day = rng.choice((0, 1)) if rng.random() < 0.2 else None  # a few close on Mon or Tue
            for wd in range(7):
                if wd == closed_day:
                    hours[wd] = None
                elif wd >= 5 and business_type != "home_service":
                    hours[wd] = (open_at, min(close_at + 60, 22 * 60))  # weekends run later
                else:
                    hours[wd] = (open_at, close_at)
            operating_hours = {
                WEEKDAYS[wd]: ({"open": hhmm(h[0]), "close": hhmm(h[1]), "closed": False} if h
                               else {"open": "00:00", "close": "00:00", "closed": True})
                for wd, h in hours.items()
            }
            core = ["SWD", "ARO", "DPT"]
            extra = [s.code for s in SERVICES if s.code not in core]
            if business_type == "home_service":
                extra = [c for c in extra if c not in ("HOT", "SHR", "CPL", "POT")]  # need a treatment room
            offered = sorted(core + rng.sample(extra, rng.randint(min(4, len(extra)), min(11, len(extra)))),
                             key=SERVICE_INDEX.__getitem__)
            vendor_id = new_uid(rng)
            created_at = self.days_ago(rng, 200, 1400)
            contact_female = rng.random() < 0.4
            contact = self.person(rng, female=contact_female)
            slug = ascii_name(name.split(",")[0]) + ascii_name(locality)[:6]
            email = self.email("owner", f"{slug}.in")
            mobile = self.mobile(rng)
            self.add_user(rng, user_id=vendor_id, email=email, name=contact, mobile=mobile, role="vendor",
                          gender="female" if contact_female else "male", created_at=created_at,
                          address={k: address[k] for k in ("street", "city", "state", "pincode", "country")})
            pan = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(3)) + rng.choice("CF") \
                + ascii_name(name)[0].upper() + f"{rng.randrange(10000):04d}" + rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ")
            commission = Decimal(rng.choice(("10.00", "12.00", "12.50", "15.00", "15.00", "18.00", "20.00")))
            self.rows["vendors"].append({
                "id": vendor_id, "business_name": name, "business_type": business_type,
                "gst_number": f"{c.gst_state_code}{pan}1Z{rng.choice('0123456789ABCDEFGHJK')}",
                "pan_number": pan, "business_address": address, "contact_person": contact,
                "contact_mobile": mobile, "contact_email": email,
                "services_offered": [self.services[code]["id"] for code in offered],
                "operating_hours": operating_hours, "rating": Decimal("0.00"), "total_reviews": 0,
                "verification_status": verification,
                "verification_documents": [
                    {"type": "gst_certificate", "url": f"https://files.ombaro.in/vendors/{vendor_id}/gst.pdf"},
                    {"type": "trade_license", "url": f"https://files.ombaro.in/vendors/{vendor_id}/license.pdf"},
                ],
                "commission_rate": commission, "status": status,
                "created_at": created_at, "updated_at": created_at,
            })
            vendor = Vendor(vendor_id, city, business_type, address, hours, offered,
                             verification == "verified" and status == "active", created_at)
            self.vendors.append(vendor)
            if rng.random() < 0.35:
                for role, perms in (("manager", ["bookings", "therapists", "reports"]),
                                    ("receptionist", ["bookings"])):
                    female = rng.random() < 0.6
                    staff_name = self.person(rng, female=female)
                    first, last = staff_name.split(" ", 1)
                    self.rows["vendor_staff"].append({
                        "id": new_uid(rng), "vendor_id": vendor_id, "user_id": None, "name": staff_name,
                        "role": role, "mobile": self.mobile(rng),
                        "email": self.email(f"{ascii_name(first)}.{ascii_name(last)}", f"{slug}.in"),
                        "permissions": perms, "status": "active", "created_at": created_at,
                        "updated_at": created_at,
                    })

    def build_therapists(self) -> None:
        rng = self.rng("therapists")
        leave_rng = self.rng("therapist_leaves")
        for vendor in self.vendors:
            for _ in range(rng.randint(5, 15)):
                self._therapist(rng, vendor)
            active = [t for t in vendor.therapists if t.status == "active"]
            # Every offered service must be deliverable; couples massage needs two therapists.
            for code in vendor.offered:
                needed = 2 if self.services[code]["category"] == "couples" else 1
                have = sum(code in t.codes for t in active)
                others = [t for t in active if code not in t.codes]
                for t in rng.sample(others, min(len(others), max(0, needed - have))):
                    t.codes.append(code)
                    t.codes.sort(key=SERVICE_INDEX.__getitem__)
            vendor.services = [
                c for c in vendor.offered
                if sum(c in t.codes for t in active) >= (2 if self.services[c]["category"] == "couples" else 1)
            ]
        for row, t in zip(self.rows["therapists"], self._all_therapists(), strict=True):
            row["specialization"] = list(t.codes)
        self._therapist_leaves(leave_rng)
        self._therapist_locations(self.rng("therapist_locations"))

    def _all_therapists(self) -> list[Therapist]:
        return [t for v in self.vendors for t in v.therapists]

    def _therapist(self, rng: random.Random, vendor: Vendor) -> None:
        female = rng.random() < 0.65
        name = self.person(rng, female=female, surnames=THERAPIST_SURNAMES)
        first, last = name.split(" ", 1)
        therapist_id, user_id = new_uid(rng), new_uid(rng)
        email = self.email(f"{ascii_name(first)}.{ascii_name(last)}", "therapists.ombaro.in")
        mobile = self.mobile(rng)
        created_at = max(vendor.created_at, self.days_ago(rng, 100, 1300)) + dt.timedelta(days=rng.randint(0, 30))
        created_at = min(created_at, self.anchor - dt.timedelta(days=95))
        status = weighted(rng, (("active", 94), ("inactive", 4), ("terminated", 2)))
        active = status == "active"
        weights = [(s, SERVICES[SERVICE_INDEX[s]].popularity) for s in vendor.offered]
        codes: list[str] = []
        for _ in range(rng.randint(3, 6)):
            code = weighted(rng, weights)
            if code not in codes:
                codes.append(code)
        codes.sort(key=SERVICE_INDEX.__getitem__)
        city = CITIES[vendor.city]
        languages = ["Hindi", "English"] if rng.random() < 0.7 else ["Hindi"]
        if city.language not in languages and rng.random() < 0.6:
            languages.append(city.language)
        if rng.random() < 0.12:
            languages.append(rng.choice(("Nepali", "Manipuri", "Malayalam", "Assamese")))
        home = self.street_address(rng, vendor.city)
        address = {"street": f"{home['line1']}, {home['line2']}", "city": vendor.city, "state": city.state,
                   "pincode": home["pincode"], "country": "India"}
        dob = self.today - dt.timedelta(days=rng.randint(21 * 365, 45 * 365))
        experience = rng.randint(1, 15)
        bank, ifsc = rng.choice(BANKS)
        self.add_user(rng, user_id=user_id, email=email, name=name, mobile=mobile, role="therapist",
                      gender="female" if female else "male", created_at=created_at, address=address, dob=dob,
                      status="active" if active else "inactive")
        # Weekly shifts inside the vendor's hours: one weekly off, a 9-hour shift with a break in the middle.
        off_day = rng.randrange(7)
        shift_kind = rng.choice(("morning", "evening", "morning", "evening", "full"))
        shifts: dict[int, tuple[int, int, int, int]] = {}
        for wd, hours in vendor.hours.items():
            if hours is None or wd == off_day:
                continue
            open_at, close_at = hours
            if close_at - open_at <= 10 * 60 or shift_kind == "full":
                start, end = open_at, close_at
            elif shift_kind == "morning":
                start, end = open_at, open_at + 9 * 60
            else:
                start, end = close_at - 9 * 60, close_at
            break_start = start + ((end - start) // 2 // 30) * 30
            break_len = rng.choice((30, 60, 60))
            shifts[wd] = (start, end, break_start, break_start + break_len)
            self.rows["therapist_schedules"].append({
                "id": new_uid(rng), "therapist_id": therapist_id, "day_of_week": (wd + 1) % 7,  # 0 = Sunday
                "start_time": clock_time(start), "end_time": clock_time(end), "is_available": True,
                "break_start": clock_time(break_start), "break_end": clock_time(break_start + break_len),
                "created_at": created_at, "updated_at": created_at,
            })
        account = self.account_number(therapist_id, rng.randrange(10000))
        self.rows["therapists"].append({
            "id": therapist_id, "user_id": user_id, "vendor_id": vendor.id, "name": name, "email": email,
            "mobile": mobile, "gender": "female" if female else "male", "date_of_birth": dob,
            "profile_image": None, "specialization": codes, "experience_years": experience,
            "certifications": [{"name": rng.choice(("Diploma in Spa Therapy", "CIDESCO Certificate",
                                                    "Ayurvedic Massage Certification", "ITEC Diploma")),
                                "issuer": rng.choice(("VLCC Institute", "Kerala Ayurveda Academy", "CIDESCO",
                                                      "Orient Spa Academy")),
                                "year": self.today.year - rng.randint(1, experience)}],
            "languages": languages, "rating": Decimal("0.00"), "total_reviews": 0, "total_services": 0,
            "status": status,
            "availability_status": weighted(rng, (("available", 45), ("busy", 20), ("offline", 35)))
            if active else "offline",
            "emergency_contact": {"name": self.person(rng, female=rng.random() < 0.5),
                                  "relation": rng.choice(("mother", "father", "spouse", "sibling")),
                                  "phone": self.mobile(rng)},
            "address": address,
            "bank_details": {"account_number": account,
                             "ifsc": f"{ifsc}{rng.randrange(10**6):06d}", "bank_name": bank,
                             "branch": home["locality"]},
            "created_at": created_at, "updated_at": created_at,
        })
        vendor.therapists.append(Therapist(therapist_id, vendor, name, "female" if female else "male",
                                            codes, status, shifts))

    def _therapist_leaves(self, rng: random.Random) -> None:
        therapists = self._all_therapists()
        rows = self.rows["therapists"]
        for t, row in zip(therapists, rows, strict=True):
            if t.status != "active" or rng.random() > 0.09:
                continue
            start = self.today + dt.timedelta(days=rng.randint(-75, 10))
            end = start + dt.timedelta(days=rng.choice((0, 0, 1, 2, 4)))
            applied = self.at(start - dt.timedelta(days=rng.randint(1, 10)), rng.randint(8 * 60, 20 * 60))
            applied = min(applied, self.anchor - dt.timedelta(hours=2))
            status = "pending" if start > self.today and rng.random() < 0.5 else weighted(
                rng, (("approved", 85), ("rejected", 15)))
            leave_type = weighted(rng, (("sick", 35), ("casual", 35), ("emergency", 15), ("annual", 15)))
            decided = applied + dt.timedelta(hours=rng.randint(1, 30))
            self.rows["therapist_leaves"].append({
                "id": new_uid(rng), "therapist_id": t.id, "leave_type": leave_type, "start_date": start,
                "end_date": end,
                "reason": {"sick": "Fever and cold", "casual": "Family function",
                           "emergency": "Family emergency", "annual": "Visiting home town"}[leave_type],
                "status": status,
                "approved_by": t.vendor.id if status == "approved" else None,
                "approved_at": decided if status == "approved" else None,
                "rejection_reason": "Peak weekend, please pick other dates" if status == "rejected" else None,
                "documents": None, "created_at": applied,
                "updated_at": decided if status != "pending" else applied,
            })
            if status == "approved":
                day = start
                while day <= end:
                    t.leave_days.add(day)
                    day += dt.timedelta(days=1)
                if start <= self.today <= end:
                    t.status = "on_leave"  # on leave today: no upcoming work
                    row["status"] = "on_leave"
                    row["availability_status"] = "offline"

    def _therapist_locations(self, rng: random.Random) -> None:
        """A few GPS fixes in the last hour before the anchor for therapists who are out and about."""
        for t in self._all_therapists():
            if t.status != "active" or rng.random() > 0.4:
                continue
            lat = t.vendor.address["latitude"] + rng.uniform(-0.03, 0.03)
            lon = t.vendor.address["longitude"] + rng.uniform(-0.03, 0.03)
            moving = rng.random() < 0.5
            for k in range(6):
                if moving:
                    lat += rng.uniform(-0.002, 0.002)
                    lon += rng.uniform(-0.002, 0.002)
                self.rows["therapist_locations"].append({
                    "id": new_uid(rng), "therapist_id": t.id,
                    "latitude": Decimal(f"{lat:.6f}"), "longitude": Decimal(f"{lon:.6f}"),
                    "accuracy": money(Decimal(rng.randint(300, 2500)) / 100),
                    "altitude": money(Decimal(rng.randint(500, 90000)) / 100),
                    "speed": money(Decimal(rng.randint(800, 3500)) / 100) if moving else Decimal("0.00"),
                    "heading": money(Decimal(rng.randint(0, 35999)) / 100),
                    "battery_level": max(5, 90 - 3 * k - rng.randint(0, 40)),
                    "is_moving": moving,
                    "timestamp": self.anchor - dt.timedelta(minutes=60 - 10 * k, seconds=rng.randint(0, 59)),
                })

