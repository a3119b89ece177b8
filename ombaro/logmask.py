"""A logging filter that masks secrets and personal data that could slip into a log line: bearer
tokens, JWTs, refresh tokens, passwords, bank account numbers, mobile numbers, PAN and postal
addresses. SQL errors carry their parameters (`[parameters: {...}]`), so a traceback is masked
like a message: the filter masks the formatted exception and stack of every record, and both our
formatters mask them again should a record reach them some other way."""

from __future__ import annotations

import logging
import re

# A value after a key: a flat dict, a quoted string, or a bare word (not our own "[... masked]").
_VALUE = r"""(\{[^{}]*\}|'[^']*'|"[^"]*"|(?!\[)[^,\s})\]]+)"""
_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/-]+=*"), r"\1[masked]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"), "[jwt masked]"),
    (re.compile(r"(?i)((?:password|refresh_token|access_token|encrypted_password)['\"]?\s*[:=]\s*['\"]?)[^'\",\s}]+"),
     r"\1[masked]"),
    (re.compile(r"(?i)(account_number['\"]?\s*[:=]\s*['\"]?)\d*(\d{4})"), r"\1XXXX\2"),
    # Postal addresses by their keys, whatever the value's shape (a dict, a JSON string, a word).
    (re.compile(r"(?i)((?:[a-z_]*address|street|address_line_?\d|line_?[12]|landmark|pincode|postal_code)['\"]?"
                r"\s*[:=]\s*)" + _VALUE), r"\1[address masked]"),
    # PAN: five letters, four digits, a letter (Income Tax Department's format).
    (re.compile(r"(?<![A-Za-z0-9])[A-Z]{5}[0-9]{4}[A-Z](?![A-Za-z0-9])"), "[PAN masked]"),
    # Mobile numbers: E.164 (+ and 10 to 15 digits), and Indian mobiles written without it.
    (re.compile(r"(?<![\w+])\+[0-9][0-9 -]{8,16}[0-9](?![\w])"), "[mobile masked]"),
    (re.compile(r"(?<![\w+])(?:91[ -]?)?[6-9][0-9]{9}(?![\w])"), "[mobile masked]"),
)


def mask(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_EXCEPTION_FORMATTER = logging.Formatter()


class MaskingFilter(logging.Filter):
    """Masks the message, the exception text and the stack text of every record it sees. The
    exception is formatted here once and left in `exc_text`, which every Formatter prints instead of
    formatting `exc_info` again."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTION_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return True


def install() -> None:
    """Mask on every handler of the root logger (filters on loggers do not see propagated records)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
