"""Bank details sealed at rest (AES-256-GCM, rotating keys), shown only to those who need them."""

from __future__ import annotations

import base64
import os
import secrets
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ombaro.identity import crypto
from ombaro.logmask import mask
from tests.factories.accounts import client_for, make_account

BANK = {"account_number": "123456789012", "ifsc": "HDFC0001234", "bank_name": "HDFC Bank", "branch": "Baner"}


@pytest.fixture(scope="module")
def therapist_with_bank(engine: Engine) -> Any:
    vendor = make_account(engine, "vendor")
    return vendor, make_account(engine, "therapist", vendor_id=vendor.id, bank_details=BANK)


def test_bank_details_are_encrypted_at_rest(engine: Engine, therapist_with_bank: Any) -> None:
    _, therapist = therapist_with_bank
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT bank_details FROM therapists WHERE id = :id"),
                              {"id": therapist.therapist_id}).scalar_one()
    assert stored["alg"] == "aes-256-gcm" and stored["kid"]
    assert "123456789012" not in str(stored) and "HDFC" not in str(stored)


def test_bank_details_in_full_for_finance_and_the_vendor_masked_for_operations(
    app: Any, engine: Engine, therapist_with_bank: Any,
) -> None:
    vendor, therapist = therapist_with_bank
    path = f"/api/v1/therapists/{therapist.therapist_id}"
    assert client_for(app, vendor).get(path).json["bank_details"] == BANK
    assert client_for(app, therapist).get(path).json["bank_details"] == BANK
    front_office = client_for(app, make_account(engine, "fo_department")).get(path).json["bank_details"]
    assert front_office["account_number"] == "XXXXXXXX9012"
    assert "123456789012" not in str(front_office)


def test_a_sealed_value_moved_to_another_row_does_not_open(engine: Engine, therapist_with_bank: Any) -> None:
    from ombaro.config import load_settings

    settings = load_settings()
    _, therapist = therapist_with_bank
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT bank_details FROM therapists WHERE id = :id"),
                              {"id": therapist.therapist_id}).scalar_one()
    assert crypto.unseal(stored, keys=settings.data_keys,
                         context=f"therapists.bank_details:{therapist.therapist_id}") == BANK
    with pytest.raises(crypto.SealError):
        crypto.unseal(stored, keys=settings.data_keys, context="therapists.bank_details:someone-else")


def test_keys_rotate_old_values_still_open() -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    sealed_old = crypto.seal(BANK, keys={"k1": old_key}, key_id="k1", context="c")
    ring = {"k1": old_key, "k2": new_key}
    sealed_new = crypto.seal(BANK, keys=ring, key_id="k2", context="c")
    assert (sealed_old["kid"], sealed_new["kid"]) == ("k1", "k2")
    assert crypto.unseal(sealed_old, keys=ring, context="c") == crypto.unseal(sealed_new, keys=ring, context="c")
    with pytest.raises(crypto.SealError):
        crypto.unseal(sealed_new, keys={"k1": old_key}, context="c")


def test_data_keys_setting_rejects_short_keys() -> None:
    from ombaro.config import ConfigError, parse_data_keys

    assert parse_data_keys("a:" + base64.b64encode(os.urandom(32)).decode()).keys() == {"a"}
    with pytest.raises(ConfigError):
        parse_data_keys("a:" + base64.b64encode(os.urandom(16)).decode())


def test_logs_mask_tokens_passwords_and_account_numbers() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    line = (f'Authorization: Bearer {token} body={{"password": "hunter2hunter2", '
            f'"account_number": "123456789012", "refresh_token": "{secrets.token_urlsafe(16)}"}}')
    masked = mask(line)
    assert token not in masked and "hunter2hunter2" not in masked and "123456789012" not in masked
    assert "9012" in masked
