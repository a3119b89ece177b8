"""Alembic revisions, one module each (a package so the wheel ships them as modules)."""
