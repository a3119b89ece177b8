"""Alembic environment: the URL is the caller's (tests pass one) or ombaro.config's database settings
(DATABASE_DIRECT_URL, else DATABASE_URL; nothing else is read, so migrating needs no REDIS_URL)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from ombaro.config import load_database_settings, normalise_database_url
from ombaro.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    # DATABASE_DIRECT_URL: migrations take session-level locks and run long, so never through PgBouncer.
    return normalise_database_url(url) if url else load_database_settings().direct_database_url


def include_object(obj, name, type_, reflected, compare_to):
    # Partitions and materialized views are created in raw SQL; autogenerate must not chase them.
    return not (type_ == "table" and reflected and compare_to is None)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata,
                          include_schemas=True, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          include_schemas=True, include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
