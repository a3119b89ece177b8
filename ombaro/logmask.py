"""A logging filter that masks secrets that could slip into a log line: bearer tokens, JWTs,
refresh tokens, passwords and bank account numbers."""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/-]+=*"), r"\1[masked]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+"), "[jwt masked]"),
    (re.compile(r"(?i)((?:password|refresh_token|access_token|encrypted_password)['\"]?\s*[:=]\s*['\"]?)[^'\",\s}]+"),
     r"\1[masked]"),
    (re.compile(r"(?i)(account_number['\"]?\s*[:=]\s*['\"]?)\d*(\d{4})"), r"\1XXXX\2"),
)


def mask(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install() -> None:
    """Mask on every handler of the root logger (filters on loggers do not see propagated records)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
