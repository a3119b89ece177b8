"""Messaging: the delivery runtime campaigns and booking notifications share (docs/campaigns.md).

- `delivery`: claim -> provider call -> record, each its own committed transaction; the claim
  names the job attempt making the call;
- `throttle`: the per-provider token bucket in Redis, shared by every worker;
- `reconcile`: deliveries whose call timed out or whose claimant died, looked up at the provider
  where it can be asked, never sent again on a guess.

Messaging knows nothing of campaigns or bookings: whoever owns a delivery composes its message.
This package's public API is what it exports here; its modules are private to it.
"""

from ombaro.messaging.delivery import (
    MAX_ATTEMPTS,
    SMS_OPT_OUT,
    Claimant,
    Loaded,
    Recipient,
    Runtime,
    delay_job,
    fail,
    load_recipients,
    mark_sent,
    no_enqueue,
    record,
    take_tokens,
    tokens_for,
    transmit,
    unreachable,
)
from ombaro.messaging.reconcile import (
    GIVE_UP_SECONDS,
    NOT_FOUND_GRACE_SECONDS,
    STALE_SENDING_SECONDS,
    Composer,
    reconcile,
)
from ombaro.messaging.throttle import TokenBucket

__all__ = [
    "GIVE_UP_SECONDS",
    "MAX_ATTEMPTS",
    "NOT_FOUND_GRACE_SECONDS",
    "SMS_OPT_OUT",
    "STALE_SENDING_SECONDS",
    "Claimant",
    "Composer",
    "Loaded",
    "Recipient",
    "Runtime",
    "TokenBucket",
    "delay_job",
    "fail",
    "load_recipients",
    "mark_sent",
    "no_enqueue",
    "reconcile",
    "record",
    "take_tokens",
    "tokens_for",
    "transmit",
    "unreachable",
]
