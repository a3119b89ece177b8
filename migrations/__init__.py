"""Alembic migrations, shipped in the wheel as the package `migrations` (env.py, alembic.ini and
versions/ as its data) so that `ombaro migrate` runs from an installed engine, not only a checkout."""
