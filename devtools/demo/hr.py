"""HR: employees' leave requests and attendance on every working day."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from decimal import Decimal

from devtools.demo.base import BuilderBase, new_uid, weighted
from devtools.demo.reference import (
    HOLIDAYS,
    Row,
    money,
)


class HrSection(BuilderBase):
    def build_hr(self) -> None:
        rng = self.rng("hr")
        leaves: dict[uuid.UUID, set[dt.date]] = defaultdict(set)
        approvers: dict[uuid.UUID, uuid.UUID] = {}
        for e in self.employees:
            if rng.random() > 0.55:
                continue
            approver = e.manager or e.id
            approvers[e.id] = approver
            start = self.today + dt.timedelta(days=rng.randint(-80, 20))
            start = max(start, e.joining + dt.timedelta(days=1))
            end = start + dt.timedelta(days=rng.choice((0, 0, 1, 2, 3, 4)))
            applied = min(self.at(start - dt.timedelta(days=rng.randint(1, 14)), rng.randint(9 * 60, 19 * 60)),
                          self.anchor - dt.timedelta(hours=3))
            if start > self.today:
                status = weighted(rng, (("pending", 60), ("approved", 40)))
            else:
                status = weighted(rng, (("approved", 80), ("rejected", 10), ("cancelled", 10)))
            if e.last_day is not None and start > e.last_day:
                continue
            decided = applied + dt.timedelta(hours=rng.randint(2, 48))
            leave_type = weighted(rng, (("casual", 40), ("sick", 30), ("earned", 20), ("emergency", 7),
                                         ("unpaid", 3)))
            self.rows["leave_requests"].append({
                "id": new_uid(rng), "employee_id": e.id, "leave_type": leave_type, "from_date": start,
                "to_date": end,
                "reason": {"casual": "Personal work", "sick": "Viral fever", "earned": "Family vacation",
                           "emergency": "Family emergency", "unpaid": "Extended travel"}[leave_type],
                "status": status, "applied_date": applied,
                "approved_by": approver if status in ("approved", "rejected") else None,
                "approved_date": decided if status in ("approved", "rejected") else None,
                "rejection_reason": "Quarter-end close, please move by a week" if status == "rejected" else None,
                "documents": ["https://files.ombaro.in/hr/medical-certificate.pdf"] if leave_type == "sick"
                and end > start else None,
                "created_at": applied, "updated_at": decided if status != "pending" else applied,
            })
            if status == "approved":
                day = start
                while day <= end:
                    leaves[e.id].add(day)
                    day += dt.timedelta(days=1)
        # One attendance row per employee per working day (Mon-Sat) they were on the rolls.
        statuses = (("present", 82), ("late", 6), ("work_from_home", 6), ("half_day", 3), ("absent", 3))
        for e in self.employees:
            day = max(self.first_day, e.joining)
            last = min(self.today, e.last_day or self.today)
            while day <= last:
                if day.weekday() == 6:
                    day += dt.timedelta(days=1)
                    continue
                if (day.month, day.day) in HOLIDAYS:
                    status = "holiday"
                elif day in leaves[e.id]:
                    status = "leave"
                else:
                    status = weighted(rng, statuses)
                row: Row = {"id": new_uid(rng), "employee_id": e.id, "date": day, "status": status,
                            "check_in_time": None, "check_out_time": None, "work_hours": None,
                            "check_in_location": None, "check_out_location": None, "notes": None,
                            "approved_by": approvers.get(e.id) if status == "leave" else None}
                if status in ("present", "late", "work_from_home", "half_day"):
                    check_in = 9 * 60 + rng.randint(-20, 40) if status != "late" else 10 * 60 + rng.randint(5, 90)
                    worked = rng.randint(4 * 60, 5 * 60) if status == "half_day" else rng.randint(8 * 60, 10 * 60)
                    cin, cout = self.at(day, check_in), self.at(day, check_in + worked)
                    place = {"latitude": e.office["latitude"], "longitude": e.office["longitude"],
                             "address": e.office["address"]} if status != "work_from_home" else \
                        {"latitude": None, "longitude": None, "address": "Remote"}
                    row.update(check_in_time=cin, check_out_time=cout, work_hours=money(Decimal(worked) / 60),
                               check_in_location=place, check_out_location=place)
                    if status == "late":
                        row["notes"] = rng.choice(("Traffic on the way", "Train delay", "Doctor's appointment"))
                stamp = row["check_out_time"] or self.at(day, 19 * 60)
                row["created_at"] = row["check_in_time"] or self.at(day, 10 * 60)
                row["updated_at"] = min(stamp, self.anchor)
                self.rows["attendance_records"].append(row)
                day += dt.timedelta(days=1)
