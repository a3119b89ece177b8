"""Approving and paying settlements: pending -> approved -> processing -> completed | failed.

Maker-checker: the approver must not be the person who ran the settlement (checked here and by a
CHECK on settlement_approvals). A payout is a transfer to the vendor's Razorpay linked account.

Never paid twice, even by a provider that ignores our idempotency header (issue 13):

- each attempt has a key derived from the settlement and the attempt number; a new attempt (a new
  key) exists only after the previous one definitively failed;
- every call to the provider is recorded, and committed, before it is made (`sending`, `sends`,
  `first_sent_at`): a worker killed during the call leaves that record behind;
- after an uncertain outcome (no answer, a dropped connection, a killed worker) the attempt is
  never sent again on a guess: it is looked up by its key among every transfer made since the
  first send (all pages). Found: recorded. Not found: the request may still be in flight at the
  provider, so the payout is `held` for the reconciler and finance. Only when the provider
  answered (429, 5xx), or the connection was never made, does a look-up that finds nothing allow
  the same key to be sent again;
- the reconciler decides held and abandoned attempts once no request can still be in flight.

Lock order, everywhere (docs/settlements.md): the settlement row, then its payout rows (then its
approval row). Code that starts from a payout reads its settlement id without a lock first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import func, select, text, true
from sqlalchemy.orm import Session

from ombaro.commands import RetryLater
from ombaro.db import fixed_insert
from ombaro.identity.administration import made_by
from ombaro.models.jobs import Job
from ombaro.models.payments import PaymentSettlement
from ombaro.models.settlements import Payout, SettlementApproval, VendorPayoutAccount
from ombaro.money import to_paise
from ombaro.providers import PaymentProvider, ProviderRejected, ProviderUnavailable, Transfer
from ombaro.settlements.runs import SettlementError, SettlementNotFound

PAYOUT_KIND = "settlements.payout"
# Razorpay transfer states -> our payout states (created/pending: accepted, not final yet).
TRANSFER_STATES = {"created": "processing", "pending": "processing", "processed": "processed",
                   "failed": "failed", "reversed": "failed"}
# Attempts whose transfer is not known: not sent yet, sent with no answer recorded, or held.
UNDECIDED = ("pending", "sending", "held")
T = TypeVar("T")


class Committed(Protocol):
    """Runs a function in a transaction of its own, committed when it returns (ombaro.db.committed_as)."""

    def __call__(self, work: Callable[[Session], T], /) -> T: ...


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


_SET_PAYOUT_ACCOUNT = select(VendorPayoutAccount).from_statement(fixed_insert(
    VendorPayoutAccount.__table__, ("vendor_id", "account_id", "created_by"),
    "ON CONFLICT (vendor_id) DO UPDATE SET account_id = EXCLUDED.account_id, created_by = EXCLUDED.created_by, "
    "updated_at = now()"))


def set_payout_account(session: Session, *, vendor_id: uuid.UUID, account_id: str,
                       created_by: uuid.UUID | None) -> VendorPayoutAccount:
    account: VendorPayoutAccount = session.scalars(
        _SET_PAYOUT_ACCOUNT, {"vendor_id": vendor_id, "account_id": account_id, "created_by": created_by},
        execution_options={"populate_existing": True}).one()
    return account


def request_payout(session: Session, settlement_id: uuid.UUID, *, provider: str,
                   requested_by: uuid.UUID | None) -> Payout:
    """approved (or failed) -> processing, with the attempt to send. A settlement already
    processing keeps its live attempt: asking again runs its job again (same key: a pending
    attempt is sent, one of unknown outcome is looked up, never re-sent blindly), unless a job
    for it is still queued or running, which answers for this request too."""
    settlement = _locked(session, settlement_id)
    live = session.scalars(select(Payout).where(Payout.settlement_id == settlement_id, Payout.status != "failed")
                           .with_for_update()).one_or_none()
    if live is not None and live.status in UNDECIDED:
        if live_job(session, live.id) is None:
            live.submissions += 1
            session.flush()
        return live
    if live is not None and live.status == "processing":
        raise SettlementConflict(f"settlement {settlement_id}: its payout (transfer {live.provider_transfer_id}) is "
                                 "processing at the provider; the reconciler records its outcome")
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


def live_job(session: Session, payout_id: uuid.UUID) -> Job | None:
    """The `settlements.payout` job still queued or running for this attempt, if any."""
    return session.scalars(select(Job).where(Job.kind == PAYOUT_KIND, Job.status.in_(("queued", "running")),
                                             Job.params["payout_id"].astext == str(payout_id))
                           .order_by(Job.created_at.desc()).limit(1)).first()


def _lock_pair(session: Session, payout_id: uuid.UUID, *,
               skip_locked: bool = False) -> tuple[PaymentSettlement, Payout] | None:
    """The payout and its settlement, locked in the one order (settlement first). With
    `skip_locked`, None when either is locked by someone else (the reconciler never waits)."""
    settlement_id = session.execute(select(Payout.settlement_id).where(Payout.id == payout_id)).scalar_one()
    settlement = session.scalars(select(PaymentSettlement).where(PaymentSettlement.id == settlement_id)
                                 .with_for_update(skip_locked=skip_locked)
                                 .execution_options(populate_existing=True)).one_or_none()
    payout = session.scalars(select(Payout).where(Payout.id == payout_id).with_for_update(skip_locked=skip_locked)
                             .execution_options(populate_existing=True)).one_or_none() if settlement else None
    return (settlement, payout) if settlement is not None and payout is not None else None


def _pair(session: Session, payout_id: uuid.UUID) -> tuple[PaymentSettlement, Payout]:
    pair = _lock_pair(session, payout_id)
    assert pair is not None  # waiting locks always return the rows
    return pair


@dataclass(frozen=True)
class SendStep:
    """What one run of a payout job does, decided (and for `send`, recorded) before any call."""

    action: str  # send | look (a send of unknown outcome was made) | wait (a send is in flight) | done
    status: str
    payout_id: uuid.UUID
    settlement_id: uuid.UUID
    key: str
    account: str
    amount_paise: int
    first_sent_at: dt.datetime | None


def begin_send(session: Session, payout_id: uuid.UUID, *, job_id: uuid.UUID | None) -> SendStep:
    """The first transaction of a payout job, committed before the provider is called: a pending
    attempt becomes `sending` with the send counted and timed, so whatever happens to this worker
    during the call, the next run knows a transfer may exist and looks for it."""
    _, payout = _pair(session, payout_id)
    action = "done"
    if payout.status == "pending":
        now = _now(session)
        payout.status, payout.sends, payout.last_sent_at = "sending", payout.sends + 1, now
        payout.first_sent_at = payout.first_sent_at or now
        payout.updated_at = func.now()
        action = "send"
    elif payout.status in ("sending", "held"):
        action = "wait" if payout.status == "sending" and _send_in_flight(session, payout_id, job_id) else "look"
    session.flush()
    return SendStep(action, payout.status, payout.id, payout.settlement_id, payout.idempotency_key,
                    payout.destination_account, to_paise(payout.amount), payout.first_sent_at)


def _send_in_flight(session: Session, payout_id: uuid.UUID, job_id: uuid.UUID | None) -> bool:
    """Another job of this attempt is running with a live lease: its call may not be answered yet."""
    return session.execute(select(func.count()).select_from(Job).where(
        Job.kind == PAYOUT_KIND, Job.status == "running", Job.lease_expires_at > func.now(),
        Job.params["payout_id"].astext == str(payout_id),
        Job.id != job_id if job_id is not None else true())).scalar_one() > 0


def send_payout(session: Session, provider: PaymentProvider, payout_id: uuid.UUID, *,
                job_id: uuid.UUID | None, committed: Committed) -> str:
    """The `settlements.payout` job: send one attempt, or find out what became of it.

    `committed` runs a function in a transaction of its own, committed on return: the send is
    recorded that way before the call. The outcome is written in `session` (the job's own
    transaction). RetryLater (the job runs again after a back-off) when the outcome is not known yet."""
    step = committed(lambda s: begin_send(s, payout_id, job_id=job_id))
    if step.action == "done":
        return step.status
    if step.action == "wait":
        raise RetryLater(f"payout {payout_id}: another worker's call to the provider is in flight")
    if step.action == "look":
        return _look_up(session, provider, step)
    try:
        transfer = provider.create_transfer(
            account=step.account, amount_paise=step.amount_paise, idempotency_key=step.key,
            notes={"settlement_id": str(step.settlement_id), "payout_id": str(step.payout_id)})
    except ProviderRejected as exc:
        _, payout = _pair(session, payout_id)
        _finish(session, payout, "failed", reason=str(exc) or "refused by the provider")
        return payout.status
    except ProviderUnavailable as exc:
        if not exc.sent:  # the connection was never made: nothing can exist
            committed(lambda s: _unsend(s, payout_id))
            raise RetryLater(f"payout {payout_id}: the provider was not reached, sending again later: {exc}") from exc
        if not exc.answered:  # it may still be in flight: the next run looks, it does not send
            raise RetryLater(f"payout {payout_id}: outcome unknown; the next run looks the transfer up by its key, "
                             f"it does not send again: {exc}") from exc
        # The provider answered (429, 5xx): it is done with the request; did it make the transfer?
        try:
            found = provider.find_transfer(idempotency_key=step.key, since=_since(step))
        except ProviderUnavailable as lookup:
            raise RetryLater(f"payout {payout_id}: {exc}; look-up failed too ({lookup}); the next run looks "
                             "again") from exc
        if found is None:
            committed(lambda s: _unsend(s, payout_id))
            raise RetryLater(f"payout {payout_id}: the provider answered {exc} and has no transfer with key "
                             f"{step.key}: sending again later with the same key") from exc
        transfer = found
    _, payout = _pair(session, payout_id)
    record_transfer(session, payout, transfer)
    return payout.status


def _since(step: SendStep) -> dt.datetime:
    assert step.first_sent_at is not None  # every send is recorded before it is made
    return step.first_sent_at


def _unsend(session: Session, payout_id: uuid.UUID) -> None:
    """sending -> pending: the provider certainly made nothing with this key (not reached, or it
    answered and a complete look-up found nothing), so the same key may be sent again."""
    _, payout = _pair(session, payout_id)
    if payout.status == "sending":
        payout.status, payout.updated_at = "pending", func.now()
        session.flush()


def _look_up(session: Session, provider: PaymentProvider, step: SendStep) -> str:
    """After a send of unknown outcome: the transfer with our key among every transfer since the
    first send. Found: recorded. Not found: `held` (the request may yet be made by the provider;
    the reconciler decides once it cannot be in flight any more). Never a second send."""
    try:
        found = provider.find_transfer(idempotency_key=step.key, since=_since(step))
    except ProviderUnavailable as exc:
        raise RetryLater(f"payout {step.payout_id}: outcome unknown and the look-up failed, trying again: "
                         f"{exc}") from exc
    _, payout = _pair(session, step.payout_id)
    if found is not None:
        record_transfer(session, payout, found)
    elif payout.status in ("sending", "held"):
        _hold(payout, f"no answer to a send and no transfer with key {payout.idempotency_key} since "
                      f"{_since(step).isoformat()}: held for the reconciler and finance, not sent again")
        session.flush()
    return payout.status


def _hold(payout: Payout, reason: str) -> None:
    payout.status, payout.hold_reason, payout.updated_at = "held", reason[:2000], func.now()


def record_transfer(session: Session, payout: Payout, transfer: Transfer) -> None:
    """The provider's transfer for this attempt. The caller holds the settlement's lock, then the
    payout's (the lock order)."""
    if to_paise(payout.amount) != transfer.amount_paise:
        raise SettlementConflict(f"payout {payout.id}: the provider's transfer {transfer.id} is for "
                                 f"{transfer.amount_paise} paise, not {to_paise(payout.amount)}")
    payout.provider_transfer_id = payout.provider_transfer_id or transfer.id
    state = TRANSFER_STATES.get(transfer.status, "processing")
    if state == "processing":
        if payout.status in UNDECIDED:
            payout.status, payout.updated_at = "processing", func.now()
        session.flush()
        return
    _finish(session, payout, state, reason=transfer.failure_reason or f"transfer {transfer.status}")


def _finish(session: Session, payout: Payout, state: str, *, reason: str | None) -> None:
    """A final outcome: processed completes the settlement, failed makes it retryable. Final
    states never move (a late `transfer.failed` after processed changes nothing). The caller
    holds the settlement's lock already (taking it again here is a no-op, not a new order)."""
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


def _object_at(entity: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested object of a webhook's entity, or an empty one when it is absent or not an object."""
    value = entity.get(key)
    return value if isinstance(value, dict) else {}


def transfer_event(session: Session, kind: str, entity: dict[str, Any]) -> str:
    """A transfer.* webhook: find the attempt by the provider's id or by our key in its notes."""
    notes = _object_at(entity, "notes")
    payout_id = session.execute(select(Payout.id).where(
        (Payout.provider_transfer_id == entity.get("id")) | (Payout.idempotency_key == notes.get("idempotency_key")))
        ).scalars().first()
    if payout_id is None or not entity.get("id"):
        return "unknown transfer"
    status = {"transfer.processed": "processed", "transfer.failed": "failed", "transfer.reversed": "reversed"}.get(kind)
    if status is None:
        return "ignored"
    _, payout = _pair(session, payout_id)
    error = _object_at(entity, "error")
    amount = int(entity.get("amount") or to_paise(payout.amount))
    record_transfer(session, payout, Transfer(id=str(entity["id"]), status=status, amount_paise=amount,
                                              failure_reason=error.get("description") or error.get("reason")))
    return f"payout {payout.status}"


def reconcile(session: Session, provider: PaymentProvider, *, pending_after_seconds: int = 600,
              limit: int = 100) -> dict[str, int]:
    """Ask the provider about attempts whose outcome we do not know.

    `processing`: fetch the transfer. `pending`, `sending` or `held` with no job left to run it and
    no send for `pending_after_seconds` (far longer than any call may take, so no request of ours
    can still be in flight): look the key up over every transfer since the first send. Found:
    recorded. Not found: it was never made; the attempt fails and the settlement becomes payable
    again by finance, with a new key. The provider's answers are awaited without holding locks;
    rows someone else holds are left for the next run."""
    counts = {"checked": 0, "processed": 0, "failed": 0, "held": 0, "unchanged": 0, "unreachable": 0}
    stale = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, pending_after_seconds)
    candidates = session.execute(
        select(Payout.id, Payout.status, Payout.sends).where(
            (Payout.status == "processing")
            | (Payout.status.in_(UNDECIDED) & (func.coalesce(Payout.last_sent_at, Payout.updated_at) < stale)
               & text("NOT EXISTS (SELECT 1 FROM jobs AS j WHERE j.kind = 'settlements.payout' "
                      "AND j.params ->> 'payout_id' = payouts.id::text AND j.status IN ('queued', 'running'))")))
        .order_by(Payout.updated_at).limit(limit)).all()
    for payout_id, seen, sends in candidates:
        counts["checked"] += 1
        payout_row = session.get_one(Payout, payout_id)
        try:
            if seen == "processing" and payout_row.provider_transfer_id:
                transfer: Transfer | None = provider.fetch_transfer(payout_row.provider_transfer_id)
            elif payout_row.first_sent_at is None:
                transfer = None  # never sent: every send is recorded before it is made
            else:
                transfer = provider.find_transfer(idempotency_key=payout_row.idempotency_key,
                                                  since=payout_row.first_sent_at)
        except (ProviderUnavailable, ProviderRejected):
            counts["unreachable"] += 1
            continue
        pair = _lock_pair(session, payout_id, skip_locked=True)
        if pair is None or pair[1].status != seen or pair[1].sends != sends:
            counts["unchanged"] += 1  # someone else is deciding it right now
            continue
        payout = pair[1]
        if transfer is not None:
            record_transfer(session, payout, transfer)
        elif seen == "processing":
            counts["unchanged"] += 1
            continue
        else:
            since = payout.first_sent_at.isoformat() if payout.first_sent_at else "ever (never sent)"
            _finish(session, payout, "failed", reason=f"never made: the provider has no transfer with key "
                                                      f"{payout.idempotency_key} since {since}")
        key = payout.status if payout.status != seen else "unchanged"
        counts[key if key in counts else "unchanged"] += 1
    return counts


def _now(session: Session) -> dt.datetime:
    return session.execute(select(func.now())).scalar_one()


def payout_view(payout: Payout) -> dict[str, Any]:
    return {"id": payout.id, "attempt": payout.attempt, "idempotency_key": payout.idempotency_key,
            "amount": payout.amount, "status": payout.status, "provider": payout.provider,
            "provider_transfer_id": payout.provider_transfer_id, "failure_reason": payout.failure_reason,
            "hold_reason": payout.hold_reason, "sends": payout.sends, "first_sent_at": payout.first_sent_at,
            "created_at": payout.created_at, "completed_at": payout.completed_at}
