"""The account errors the API maps to HTTP statuses (web/errors.py)."""

from __future__ import annotations


class AccountError(Exception):
    """Base of the account errors."""


class AccountExists(AccountError):
    pass


class InvalidCredentials(AccountError):
    pass


class AccountDisabled(AccountError):
    pass


class NotAllowed(AccountError):
    """403: the caller may not do this to this account."""
