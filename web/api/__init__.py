"""One module of endpoints per area of the API. Every module here with a flask-smorest blueprint
named `blp` is registered by create_app (health and docs are plain Flask blueprints)."""

from __future__ import annotations

import importlib
import pkgutil

from web.sanitize import Blueprint


def blueprints() -> list[Blueprint]:
    found = []
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        blueprint = getattr(importlib.import_module(f"{__name__}.{module.name}"), "blp", None)
        if isinstance(blueprint, Blueprint):
            found.append(blueprint)
    return found
