"""Migration 0006: its tables match the models, it round-trips on its own, and it seeds what the
run needs (rates, holidays, the schedule)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, text

from cli import alembic_config
from ombaro.models import Base
from ombaro.payroll.rates import RateBook

OURS = {"compensation_structures", "statutory_rates", "holidays", "payroll_adjustments", "payroll_runs",
        "payroll_failures", "salary_record_details", "tax_declarations", "payroll_arrears"}


def test_payroll_models_match_the_migrated_database(engine: Engine) -> None:
    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is not None and table.name in OURS

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True,
                                                         "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


def test_every_seeded_rate_reads_as_its_kind_requires(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT kind, scope, effective_from, data FROM statutory_rates "
                                 "WHERE source IS NOT NULL AND source NOT LIKE 'test%'")).all()
    book = RateBook(rows)
    for kind, scope, effective_from, _ in rows:
        book.in_force(kind, scope, effective_from)  # parses, or raises BadRate naming the row
    assert {r.kind for r in rows} == {"pf", "esi", "professional_tax", "income_tax", "overtime", "attendance",
                                      "wage_deductions", "gratuity", "separation", "gratuity_exemption",
                                      "leave_encashment_exemption", "earned_leave"}
    assert {r.scope for r in rows if r.kind == "income_tax"} == {"new", "old"}


def test_migration_0006_downgrades_and_upgrades_again(make_database: Callable[[], str]) -> None:
    url = make_database()
    cfg = alembic_config(url)
    cfg.attributes["configure_logger"] = False
    command.upgrade(cfg, "heads")
    command.downgrade(cfg, "0006-1")
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM pg_class WHERE relname = ANY(:t)"),
                                {"t": list(OURS)}).scalar_one()
            policy = conn.execute(text("SELECT qual FROM pg_policies WHERE tablename = 'salary_records' "
                                       "AND policyname = 'select_finance'")).scalar_one()
            assert left == 0 and "directors" in policy  # 0003's policy is back
            assert conn.execute(text("SELECT count(*) FROM schedules WHERE name = 'payroll.monthly-run'"))\
                .scalar_one() == 0
        command.upgrade(cfg, "heads")
        with eng.connect() as conn:
            policy = conn.execute(text("SELECT qual FROM pg_policies WHERE tablename = 'salary_records' "
                                       "AND policyname = 'select_finance'")).scalar_one()
            assert "directors" not in policy
            assert conn.execute(text("SELECT count(*) FROM holidays WHERE date = '2026-08-15'")).scalar_one() == 1
    finally:
        eng.dispose()
