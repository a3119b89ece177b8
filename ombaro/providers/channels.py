"""The channel layer: one small interface per channel, and which implementation each one gets.

Every sender takes a batch of messages and answers one `Result` per message; it never raises for a
provider's answer. A result is one of:

- `sent`: the provider accepted the message (its id in `provider_id`);
- `failed`: the provider refused it for good (invalid number, bounced address): not retried;
- `retry`: nothing was sent (429, 5xx, connection refused): safe to try again, after
  `retry_after` seconds when the provider said so;
- `unknown`: the request may have reached the provider but no answer came (a read timeout, a
  dropped connection): sending again could send twice. docs/campaigns.md says what happens next.

Selection is by configuration: a provider whose credentials are unset is replaced by the
development outbox (ombaro/providers/outbox.py), so development sends nothing anywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sqlalchemy import Engine

from ombaro.config import MessagingSettings

Outcome = Literal["sent", "failed", "retry", "unknown"]
CHANNELS = ("email", "sms", "whatsapp", "push", "in_app")


@dataclass(frozen=True)
class BatchTemplate:
    """Content shared by many messages, with substitution tags (`-first_name-`) that each message
    fills from `Message.substitutions`: what lets SendGrid take 1,000 recipients in one request."""

    key: str  # messages with the same key share this content
    text: str
    html: str | None = None


@dataclass(frozen=True)
class Message:
    ref: str  # our delivery id: providers echo it back in status webhooks
    to: str  # address, E.164 number, device token or (in-app) user id
    body: str
    subject: str | None = None  # email subject, push and in-app title
    html: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # email headers (List-Unsubscribe)
    data: Mapping[str, str] = field(default_factory=dict)  # push / in-app payload, deep links
    user_id: uuid.UUID | None = None
    kind: str = "promotion"  # notifications.type of an in-app message
    template: BatchTemplate | None = None
    substitutions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    ref: str
    outcome: Outcome
    provider_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    called: bool = True  # False: the sender did not call the provider at all (it was told to wait)


class Sender(Protocol):
    provider: str  # the rate-limit bucket and the name recorded on deliveries
    per_request: int  # messages one provider request carries (SendGrid: 1,000 personalizations)

    def send(self, messages: Sequence[Message]) -> list[Result]: ...


class EmailSender(Sender, Protocol):
    """Email: SendGrid's v3 mail/send, or the outbox."""


class SmsSender(Sender, Protocol):
    """SMS: Twilio's Messages API, or the outbox. Every marketing SMS carries the opt-out line."""


class WhatsAppSender(Sender, Protocol):
    """WhatsApp: Twilio's Messages API with whatsapp: addresses, or the outbox."""


class PushSender(Sender, Protocol):
    """Push: FCM HTTP v1, or the outbox. `to` is a device registration token."""


class InAppSender(Sender, Protocol):
    """In-app: a row in `notifications` the user reads through the API."""


@dataclass(frozen=True)
class Channels:
    email: EmailSender
    sms: SmsSender
    whatsapp: WhatsAppSender
    push: PushSender
    in_app: InAppSender

    def sender(self, channel: str) -> Sender:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        sender: Sender = getattr(self, channel)
        return sender


def configured_channels(settings: MessagingSettings, engine: Engine) -> Channels:
    """The implementation of each channel the configuration asks for (outbox when unconfigured)."""
    from ombaro.providers.email import SendGridEmail
    from ombaro.providers.outbox import InAppNotifications, Outbox
    from ombaro.providers.push import FcmPush
    from ombaro.providers.sms import TwilioMessages

    email: EmailSender = (SendGridEmail(settings) if settings.sendgrid_api_key
                          else Outbox(engine, "email"))
    twilio_ready = bool(settings.twilio_account_sid and settings.twilio_auth_token)
    sms: SmsSender = (TwilioMessages(settings, "sms") if twilio_ready and settings.sms_from
                      else Outbox(engine, "sms"))
    whatsapp: WhatsAppSender = (TwilioMessages(settings, "whatsapp") if twilio_ready and settings.whatsapp_from
                                else Outbox(engine, "whatsapp"))
    push: PushSender = FcmPush(settings) if settings.fcm_credentials_file else Outbox(engine, "push")
    return Channels(email=email, sms=sms, whatsapp=whatsapp, push=push, in_app=InAppNotifications(engine))
