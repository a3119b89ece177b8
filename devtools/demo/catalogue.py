"""The catalogue: services, add-ons and packages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from devtools.demo.base import BuilderBase, new_uid
from devtools.demo.reference import (
    ADDONS,
    CONTRAINDICATIONS,
    PACKAGES,
    ROOM_SETUPS,
    SERVICES,
    item_price,
    money,
)


class CatalogueSection(BuilderBase):
    # -- catalogue -------------------------------------------------------------------

    def build_catalogue(self) -> None:
        rng = self.rng("catalogue")
        created = self.anchor - dt.timedelta(days=1000)
        for spec in SERVICES:
            row = {
                "id": new_uid(rng), "code": spec.code, "name": spec.name, "category": spec.category,
                "description": spec.description, "style": spec.style, "pressure_level": spec.pressure,
                "techniques": spec.techniques, "focus_areas": spec.focus_areas,
                "primary_benefits": spec.benefits,
                "contraindications": CONTRAINDICATIONS.get(
                    spec.code, "Fever, open wounds, skin infections, recent surgery"),
                "oils_products": spec.oils,
                "room_setup": ROOM_SETUPS.get(spec.code, "Dim lighting, heated table, soft instrumental music"),
                "recommended_addons": list(spec.addons), "duration_options": list(spec.durations),
                "base_price_60min": Decimal(spec.price), "is_active": True,
                "created_at": created, "updated_at": created,
            }
            self.rows["services"].append(row)
            self.services[spec.code] = row
        for code, name, description, minutes, price in ADDONS:
            self.addons.append({
                "id": new_uid(rng), "code": code, "name": name, "description": description, "duration": minutes,
                "price": Decimal(price), "is_active": True, "created_at": created, "updated_at": created,
            })
        self.rows["addon_services"] = self.addons
        for name, description, parts, discount in PACKAGES:
            full = sum(item_price(self.services[c]["base_price_60min"], m) for c, m in parts)
            self.rows["service_packages"].append({
                "id": new_uid(rng), "name": name, "description": description,
                "service_ids": [self.services[c]["id"] for c, _ in parts],
                "total_duration": sum(m for _, m in parts),
                "package_price": money(full * (100 - Decimal(discount)) / 100),
                "discount_percentage": Decimal(discount), "is_active": True,
                "created_at": created, "updated_at": created,
            })

