"""Personal fields sealed with AES-256-GCM. The key id travels with the ciphertext, so keys can
rotate: new values use the current key, old ones still open with theirs."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_MARK = "aes-256-gcm"


class SealError(ValueError):
    pass


def seal(value: Mapping[str, Any], *, keys: Mapping[str, bytes], key_id: str, context: str,
         nonce: bytes | None = None) -> dict[str, str]:
    """Encrypt a JSON object. `context` (e.g. 'therapists.bank_details:<id>') is authenticated
    data: a sealed value copied onto another row does not open there. `nonce` only for the demo
    data, which derives it from the plaintext to stay deterministic; everything else draws one."""
    nonce = nonce if nonce is not None else os.urandom(12)
    plaintext = json.dumps(dict(value), sort_keys=True).encode()
    ciphertext = AESGCM(keys[key_id]).encrypt(nonce, plaintext, context.encode())
    return {"alg": SEALED_MARK, "kid": key_id, "nonce": base64.b64encode(nonce).decode(),
            "ct": base64.b64encode(ciphertext).decode()}


def unseal(sealed: Mapping[str, Any], *, keys: Mapping[str, bytes], context: str) -> dict[str, Any]:
    if sealed.get("alg") != SEALED_MARK:
        raise SealError("not a sealed value")
    key = keys.get(str(sealed.get("kid")))
    if key is None:
        raise SealError(f"no key {sealed.get('kid')!r} to open this value")
    try:
        plaintext = AESGCM(key).decrypt(base64.b64decode(sealed["nonce"]), base64.b64decode(sealed["ct"]),
                                        context.encode())
    except (InvalidTag, KeyError, ValueError) as exc:
        raise SealError("sealed value does not open (tampered, or sealed for another record)") from exc
    opened: dict[str, Any] = json.loads(plaintext)
    return opened


def is_sealed(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("alg") == SEALED_MARK


def mask_account_number(number: str | None) -> str | None:
    """`XXXXXX7890`: enough for a person to recognise their account, useless to anyone else."""
    if not number:
        return number
    digits = str(number)
    return "X" * max(0, len(digits) - 4) + digits[-4:]


def masked_bank_details(details: Mapping[str, Any]) -> dict[str, Any]:
    shown = {k: details.get(k) for k in ("bank_name", "branch", "ifsc") if k in details}
    shown["account_number"] = mask_account_number(details.get("account_number"))
    return shown
