"""Personal data in tracebacks: a failed SQL statement's error carries its parameters, and a logged
exception must not write the mobile, address or PAN in them, in either log format, nor in a
stack dump (docs/security.md)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from ombaro import logmask, logs

pytestmark = pytest.mark.db

MOBILE, BARE_MOBILE, PAN = "+919812345678", "9812345671", "ABCPE1234F"
STREET, PINCODE = "14 Residency Road", "560025"
PERSONAL = (MOBILE, BARE_MOBILE, PAN, STREET, PINCODE, "9812345678")


def failed_insert(engine: Engine) -> IntegrityError:
    """A real PostgreSQL error raised through SQLAlchemy, with the row's values in its message."""
    with engine.connect() as conn:
        conn.execute(text("CREATE TEMP TABLE people (mobile text, contact text, address jsonb, pan_number text, "
                          "age int CHECK (age > 0))"))
        try:
            conn.execute(text("INSERT INTO people VALUES (:mobile, :contact, CAST(:address AS jsonb), :pan_number, "
                              ":age)"), {"mobile": MOBILE, "contact": BARE_MOBILE, "pan_number": PAN, "age": -1,
                                         "address": json.dumps({"street": STREET, "city": "Bengaluru",
                                                                "pincode": PINCODE})})
        except IntegrityError as exc:
            return exc
    raise AssertionError("the insert should have failed")


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Two handlers as logs.configure installs them (JSON and text), masking filter included."""
    json_out, text_out = io.StringIO(), io.StringIO()
    handlers = []
    for stream, formatter in ((json_out, logs.JsonFormatter("test")), (text_out, logs.TextFormatter("test"))):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(logs.ContextFilter())
        handler.addFilter(logmask.MaskingFilter())
        handlers.append(handler)
    logger = logging.getLogger("tests.observability.masking")
    for handler in handlers:
        logger.addHandler(handler)
    logger.propagate = False
    try:
        yield json_out, text_out
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.propagate = True


def test_the_error_really_carries_the_personal_data(engine: Engine) -> None:
    error = str(failed_insert(engine))
    assert all(value in error for value in (MOBILE, BARE_MOBILE, PAN, STREET, PINCODE))


def test_a_logged_sql_error_masks_mobiles_addresses_and_pan_in_both_formats(
        engine: Engine, captured: tuple[io.StringIO, io.StringIO]) -> None:
    json_out, text_out = captured
    logger = logging.getLogger("tests.observability.masking")
    try:
        raise failed_insert(engine)
    except IntegrityError:
        logger.exception("saving the customer failed")
    logger.warning("where we were", stack_info=True)
    logger.error("again with %s", "arguments", exc_info=(IntegrityError, failed_insert(engine), None))
    json_text, plain = json_out.getvalue(), text_out.getvalue()
    entries = [json.loads(line) for line in json_text.splitlines()]
    assert "IntegrityError" in entries[0]["exc_info"] and "stack_info" in entries[1]
    assert "Traceback" in plain and "IntegrityError" in plain and "Stack (most recent call last)" in plain
    for output in (json_text, plain):
        assert [value for value in PERSONAL if value in output] == []
        assert "[mobile masked]" in output and "[PAN masked]" in output and "[address masked]" in output


def test_the_text_format_masks_a_traceback_without_the_filter() -> None:
    """A record that reaches our formatter by another path (a handler without the filter)."""
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, None)
    try:
        raise ValueError(f"[parameters: {{'mobile': '{MOBILE}', 'pan_number': '{PAN}'}}]")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    for formatter in (logs.TextFormatter("test"), logs.JsonFormatter("test")):
        record.exc_text = None
        line = formatter.format(record)
        assert MOBILE not in line and PAN not in line and "ValueError" in line


def test_masking_is_idempotent_and_leaves_ordinary_numbers() -> None:
    line = (f"job 3f6c1e8e-8a43-4a39-9d5e-0e1d7a1f0b9c took 1733460000 ms for 61000.00; "
            f"address={{'city': 'Pune'}} mobile={MOBILE}")
    once = logmask.mask(line)
    assert logmask.mask(once) == once
    assert "3f6c1e8e-8a43-4a39-9d5e-0e1d7a1f0b9c" in once and "1733460000" in once and "61000.00" in once
    assert MOBILE not in once and "Pune" not in once
