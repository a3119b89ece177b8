"""Approving and paying settlements: pending -> approved -> processing -> completed | failed.

Maker-checker: the approver must not be the person who ran the settlement (checked here and by a
CHECK on settlement_approvals). A payout is a transfer to the vendor's Razorpay linked account.

Never paid twice: each attempt has an idempotency key derived from the settlement and the attempt
number, and a new attempt (a new key) is made only after the provider definitively refused the
previous one. When the outcome is unknown (timeout, 5xx, a worker lost) the attempt stays
`pending`: the job retries with the same key after first asking the provider whether it already
has a transfer with that key, and the reconciler settles what no job resolves. A partial unique
index allows one attempt that is not failed per settlement.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from ombaro.commands import RetryLater
from ombaro.identity.administration import made_by
from ombaro.models.payments import PaymentSettlement
from ombaro.models.settlements import Payout, SettlementApproval, VendorPayoutAccount
from ombaro.providers import PaymentProvider, ProviderRejected, ProviderUnavailable, Transfer, to_paise
from ombaro.settlements.runs import SettlementError, SettlementNotFound

PAYOUT_KIND = "settlements.payout"
# Razorpay transfer states -> our payout states (created/pending: accepted, not final yet).
TRANSFER_STATES = {"created": "processing", "pending": "processing", "processed": "processed",
                   "failed": "failed", "reversed": "failed"}


class SettlementConflict(SettlementError):
    """The settlement is not in a state that allows this."""


class MakerCheckerViolation(SettlementError):
    """The person who ran a settlement may not approve it."""


def _locked(session: Session, settlement_id: uuid.UUID) -> PaymentSettlement:
    settlement = session.scalars(select(PaymentSettlement).where(PaymentSettlement.id == settlement_id)
                                 .with_for_update()).one_or_none()
    if settlement is None:
        raise SettlementNotFound(f"no settlement {settlement_id}")
    return settlement


def approve(session: Session, settlement_id: uuid.UUID, *, approver: uuid.UUID) -> PaymentSettlement:
    """pending -> approved, by someone other than the maker (runs in the request's transaction)."""
    settlement = _locked(session, settlement_id)
    if settlement.status != "pending":
        raise SettlementConflict(f"settlement {settlement_id} is {settlement.status}, not pending")
    approval = session.scalars(select(SettlementApproval).where(SettlementApproval.settlement_id == settlement_id)
                               .with_for_update()).one_or_none()
    if approval is None:  # a settlement made outside a run (imported): nobody is its maker
        approval = SettlementApproval(settlement_id=settlement_id)
        session.add(approval)
    _check_checker(session, maker=approval.requested_by, approver=approver)
    approval.approved_by, approval.approved_at = approver, func.now()
    settlement.status = "approved"
    settlement.updated_at = func.now()
    session.flush()
    return settlement


def _check_checker(session: Session, *, maker: uuid.UUID | None, approver: uuid.UUID) -> None:
    """Maker-checker: the approver is neither the maker nor an account the maker created, directly
    or through accounts they created (a maker cannot approve through a colleague they made up)."""
    if maker is None:
        return
    if maker == approver:
        raise MakerCheckerViolation("the person who ran a settlement cannot approve it; ask another finance officer")
    if made_by(session, approver, maker):
        raise MakerCheckerViolation("the approver's account was created by the person who ran this settlement "
                                    "(or by an account they created); ask another finance officer")


def set_payout_account(session: Session, *, vendor_id: uuid.UUID, account_id: str,
                       created_by: uuid.UUID | None) -> VendorPayoutAccount:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return session.scalars(
        pg_insert(VendorPayoutAccount).values(vendor_id=vendor_id, account_id=account_id, created_by=created_by)
        .on_conflict_do_update(index_elements=["vendor_id"],
                               set_={"account_id": account_id, "created_by": created_by, "updated_at": func.now()})
        .returning(VendorPayoutAccount)).one()


def request_payout(session: Session, settlement_id: uuid.UUID, *, provider: str,
                   requested_by: uuid.UUID | None) -> Payout:
    """approved (or failed) -> processing, with the attempt to send. A settlement already
    processing keeps its live attempt: asking again re-sends the same attempt (same key), which is
    how finance retries a payout whose job gave up on an unknown outcome."""
    settlement = _locked(session, settlement_id)
    live = session.scalars(select(Payout).where(Payout.settlement_id == settlement_id, Payout.status != "failed")
                           .with_for_update()).one_or_none()
    if live is not None and live.status in ("pending", "processing"):
        live.submissions += 1
        session.flush()
        return live
    if settlement.status not in ("approved", "failed"):
        raise SettlementConflict(f"settlement {settlement_id} is {settlement.status}: only an approved "
                                 "(or failed) settlement is paid")
    if settlement.net_settlement_amount <= 0:
        raise SettlementConflict(f"settlement {settlement_id} has nothing to pay")
    account = session.scalars(select(VendorPayoutAccount)
                              .where(VendorPayoutAccount.vendor_id == settlement.vendor_id)).one_or_none()
    if account is None:
        raise SettlementConflict(f"vendor {settlement.vendor_id} has no payout account")
    attempt = 1 + session.execute(select(func.coalesce(func.max(Payout.attempt), 0))
                                  .where(Payout.settlement_id == settlement_id)).scalar_one()
    payout = Payout(settlement_id=settlement_id, vendor_id=settlement.vendor_id, attempt=attempt,
                    idempotency_key=f"stl_{settlement_id.hex}_{attempt}", amount=settlement.net_settlement_amount,
                    provider=provider, destination_account=account.account_id, status="pending",
                    requested_by=requested_by, submissions=1)
    session.add(payout)
    settlement.status, settlement.updated_at = "processing", func.now()
    session.flush()
    return payout


def send_payout(session: Session, provider: PaymentProvider, payout_id: uuid.UUID, *, look_first: bool) -> str:
    """The `settlements.payout` job: send one attempt, or find out what became of it.

    ProviderUnavailable raises RetryLater: this transaction rolls back, the attempt stays pending
    and the job runs again later with the same key (after asking the provider first)."""
    payout = session.scalars(select(Payout).where(Payout.id == payout_id).with_for_update()).one()
    if payout.status != "pending":
        return payout.status
    try:
        transfer = provider.find_transfer(idempotency_key=payout.idempotency_key) if look_first else None
        if transfer is None:
            transfer = provider.create_transfer(
                account=payout.destination_account, amount_paise=to_paise(payout.amount),
                idempotency_key=payout.idempotency_key,
                notes={"settlement_id": str(payout.settlement_id), "payout_id": str(payout.id)})
    except ProviderUnavailable as exc:
        raise RetryLater(f"payout {payout.id}: outcome unknown, retrying with the same key: {exc}") from exc
    except ProviderRejected as exc:
        _finish(session, payout, "failed", reason=str(exc) or "refused by the provider")
        return payout.status
    record_transfer(session, payout, transfer)
    return payout.status


def record_transfer(session: Session, payout: Payout, transfer: Transfer) -> None:
    if to_paise(payout.amount) != transfer.amount_paise:
        raise SettlementConflict(f"payout {payout.id}: the provider's transfer {transfer.id} is for "
                                 f"{transfer.amount_paise} paise, not {to_paise(payout.amount)}")
    payout.provider_transfer_id = payout.provider_transfer_id or transfer.id
    state = TRANSFER_STATES.get(transfer.status, "processing")
    if state == "processing":
        if payout.status == "pending":
            payout.status, payout.updated_at = "processing", func.now()
        session.flush()
        return
    _finish(session, payout, state, reason=transfer.failure_reason or f"transfer {transfer.status}")


def _finish(session: Session, payout: Payout, state: str, *, reason: str | None) -> None:
    """A final outcome: processed completes the settlement, failed makes it retryable. Final
    states never move (a late `transfer.failed` after processed changes nothing)."""
    if payout.status in ("processed", "failed"):
        return
    payout.status, payout.updated_at, payout.completed_at = state, func.now(), func.now()
    settlement = session.scalars(select(PaymentSettlement).where(PaymentSettlement.id == payout.settlement_id)
                                 .with_for_update()).one()
    if state == "processed":
        settlement.status = "completed"
        settlement.payment_reference = payout.provider_transfer_id
        settlement.payment_date = func.now()
        settlement.payment_method = "razorpay_transfer"
    else:
        payout.failure_reason = (reason or "failed")[:2000]
        settlement.status = "failed"
        settlement.notes = f"payout attempt {payout.attempt} failed: {payout.failure_reason}"[:2000]
    settlement.updated_at = func.now()
    session.flush()


def transfer_event(session: Session, kind: str, entity: dict[str, Any]) -> str:
    """A transfer.* webhook: find the attempt by the provider's id or by our key in its notes."""
    notes = entity.get("notes") if isinstance(entity.get("notes"), dict) else {}
    payout = session.scalars(select(Payout).where(
        (Payout.provider_transfer_id == entity.get("id")) | (Payout.idempotency_key == notes.get("idempotency_key")))
        .with_for_update()).first()
    if payout is None or not entity.get("id"):
        return "unknown transfer"
    status = {"transfer.processed": "processed", "transfer.failed": "failed", "transfer.reversed": "reversed"}.get(kind)
    if status is None:
        return "ignored"
    error = entity.get("error") if isinstance(entity.get("error"), dict) else {}
    amount = int(entity.get("amount") or to_paise(payout.amount))
    record_transfer(session, payout, Transfer(id=str(entity["id"]), status=status, amount_paise=amount,
                                              failure_reason=error.get("description") or error.get("reason")))
    return f"payout {payout.status}"


def reconcile(session: Session, provider: PaymentProvider, *, pending_after_seconds: int = 600,
              limit: int = 100) -> dict[str, int]:
    """Ask the provider about attempts whose outcome we do not know. `processing`: fetch the
    transfer. `pending` with no job left to retry it, older than `pending_after_seconds`: look it
    up by its key; if the provider has none, it was never made and the attempt fails (the
    settlement becomes retryable with a new key)."""
    counts = {"checked": 0, "processed": 0, "failed": 0, "unchanged": 0, "unreachable": 0}
    stale = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, pending_after_seconds)
    candidates = session.scalars(
        select(Payout).where(
            (Payout.status == "processing")
            | ((Payout.status == "pending") & (Payout.updated_at < stale) & text(
                "NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.kind = 'settlements.payout' "
                "AND j.params ->> 'payout_id' = payouts.id::text AND j.status IN ('queued', 'running'))")))
        .order_by(Payout.updated_at).limit(limit).with_for_update(skip_locked=True)).all()
    for payout in candidates:
        counts["checked"] += 1
        try:
            if payout.status == "processing" and payout.provider_transfer_id:
                transfer: Transfer | None = provider.fetch_transfer(payout.provider_transfer_id)
            else:
                transfer = provider.find_transfer(idempotency_key=payout.idempotency_key)
        except (ProviderUnavailable, ProviderRejected):
            counts["unreachable"] += 1
            continue
        before = payout.status
        if transfer is None:
            _finish(session, payout, "failed", reason="the provider has no transfer with this key: never made")
        else:
            record_transfer(session, payout, transfer)
        key = payout.status if payout.status != before else "unchanged"
        counts[key if key in counts else "unchanged"] += 1
    return counts


def payout_view(payout: Payout) -> dict[str, Any]:
    return {"id": payout.id, "attempt": payout.attempt, "idempotency_key": payout.idempotency_key,
            "amount": payout.amount, "status": payout.status, "provider": payout.provider,
            "provider_transfer_id": payout.provider_transfer_id, "failure_reason": payout.failure_reason,
            "created_at": payout.created_at, "completed_at": payout.completed_at}
