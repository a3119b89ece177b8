"""Identity and staff: OMBARO's employees by department, their accounts and compensation."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from devtools.demo.base import BuilderBase, ascii_name, new_uid, weighted
from devtools.demo.reference import (
    BANKS,
    DEPARTMENTS,
    HEAD_OFFICE,
    HISTORY_DAYS,
    TECH_OFFICE,
    Employee,
)


class StaffSection(BuilderBase):
    def build_employees(self) -> None:
        rng = self.rng("employees")
        ceo = new_uid(rng)
        # (department, role, designation, index within department); the head of each comes first.
        people: list[tuple[str, str, str, int]] = [("management", "directors", "Chief Executive Officer", 0)]
        for dept, role, headcount, designations in DEPARTMENTS:
            for i in range(self.count(headcount, 1)):
                if i < 2:
                    designation = designations[min(i, len(designations) - 1)]
                else:
                    designation = rng.choice(designations[2:] or designations[1:])
                people.append((dept, role, designation, i))
        heads: dict[str, uuid.UUID] = {}
        for number, (dept, role, designation, index) in enumerate(people, start=1):
            emp_id = ceo if dept == "management" else new_uid(rng)
            if index == 0 and dept != "management":
                heads[dept] = emp_id
            manager = None if dept == "management" else (ceo if index == 0 else heads[dept])
            female = rng.random() < 0.45
            name = self.person(rng, female=female)
            first, last = name.split(" ", 1)
            email = self.email(f"{ascii_name(first)}.{ascii_name(last)}", "ombaro.in")
            mobile = self.mobile(rng)
            if index == 0:
                joining = self.today - dt.timedelta(days=rng.randint(700, 1800))
            elif rng.random() < 0.08:  # a few joined during the window: attendance starts on joining
                joining = self.today - dt.timedelta(days=rng.randint(10, HISTORY_DAYS - 5))
            else:
                joining = self.today - dt.timedelta(days=rng.randint(120, 1500))
            probation_days = 180 if index == 0 else 90
            probation_end = joining + dt.timedelta(days=probation_days)
            confirmed = probation_end if probation_end <= self.today else None
            employee_type = "full_time" if index == 0 else weighted(
                rng, (("full_time", 85), ("contract", 8), ("part_time", 4), ("intern", 3)))
            # One person in customer care has resigned recently: attendance stops on the last working day.
            resigned = dept == "customer_care" and index == 3
            resignation = self.today - dt.timedelta(days=50) if resigned else None
            last_day = self.today - dt.timedelta(days=20) if resigned else None
            office = TECH_OFFICE if dept == "it" else HEAD_OFFICE
            city = "Bengaluru" if dept == "it" else "Mumbai"
            home = self.street_address(rng, city)
            address = {"street": f"{home['line1']}, {home['line2']}", "city": city, "state": home["state"],
                       "pincode": home["pincode"], "country": "India"}
            created_at = self.at(joining, 9 * 60 + 30)
            dob = self.today - dt.timedelta(days=rng.randint(23 * 365, 55 * 365))
            self.add_user(rng, user_id=emp_id, email=email, name=name, mobile=mobile, role=role,
                          gender="female" if female else "male", created_at=created_at, address=address,
                          department=dept, dob=dob)
            bank, ifsc = rng.choice(BANKS)
            account = self.account_number(emp_id, rng.randrange(10000))
            self.rows["employees"].append({
                "id": emp_id, "employee_code": f"EMP{number:04d}", "name": name, "email": email,
                "mobile": mobile, "gender": "female" if female else "male", "date_of_birth": dob,
                "profile_photo": None, "department": dept, "designation": designation,
                "employee_type": employee_type, "reporting_manager": manager, "joining_date": joining,
                "probation_end_date": probation_end, "confirmation_date": confirmed,
                "resignation_date": resignation, "last_working_date": last_day,
                "status": "inactive" if resigned else "active", "address": address,
                "emergency_contact": {"name": self.person(rng, female=not female), "relation": "spouse",
                                      "phone": self.mobile(rng), "alternate_phone": None},
                "bank_details": {"account_number": account,
                                 "ifsc": f"{ifsc}{rng.randrange(10**6):06d}", "bank_name": bank,
                                 "branch": home["locality"]},
                "documents": [{"type": "offer_letter", "url": f"https://files.ombaro.in/hr/{emp_id}/offer.pdf",
                               "uploaded_at": created_at.isoformat()}],
                "created_at": created_at, "updated_at": created_at,
            })
            self.employees.append(Employee(emp_id, dept, manager, joining, last_day, office))
            self.add_compensation(emp_id, joining, head=index == 0, management=dept == "management",
                                  state="KA" if dept == "it" else "MH")

    def add_compensation(self, emp_id: uuid.UUID, joining: dt.date, *, head: bool, management: bool,
                         state: str) -> None:
        """A salary structure from the joining date (so HR's payroll preview has figures): basic by
        seniority, HRA 40% of basic, the usual fixed allowances; a few earn under the ESI ceiling."""
        rng = self.rng(f"compensation:{emp_id}")  # its own stream: other sections' rows do not move
        low, high = (250_000, 400_000) if management else (90_000, 150_000) if head else (9_000, 70_000)
        basic = Decimal(rng.randrange(low, high, 500))
        self.rows["compensation_structures"].append({
            "id": new_uid(rng), "employee_id": emp_id, "effective_from": joining, "basic": basic,
            "hra": (basic * Decimal("0.40")).quantize(Decimal("1")), "transport": Decimal(1600),
            "medical": Decimal(1250), "special": Decimal(rng.randrange(0, 15_000, 500)), "other": Decimal(0),
            "pf_applicable": True, "esi_applicable": True, "pt_state": state, "overtime_eligible": not head,
            "notes": "demo", "created_at": self.at(joining, 9 * 60), "updated_at": self.at(joining, 9 * 60),
        })

