"""Passwords hashed with argon2id (argon2-cffi's defaults follow RFC 9106's recommendations)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id
# Verified against when an account does not exist, so a wrong email costs as long as a wrong password.
_DUMMY = _hasher.hash("not a real password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`. Costs one argon2 verification whatever `stored` is: no
    account, or a placeholder that is not a hash ('!', an account that never had a password), is
    checked against a dummy hash, so the time says nothing about the account."""
    usable = stored is not None and stored.startswith("$argon2")
    try:
        return _hasher.verify(stored if usable else _DUMMY, password) and usable  # type: ignore[arg-type]
    except (VerificationError, InvalidHashError):
        return False


def burn(password: str) -> None:
    """Spend what hashing `password` costs, for a path that must take as long as one that hashes."""
    _hasher.hash(password)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
