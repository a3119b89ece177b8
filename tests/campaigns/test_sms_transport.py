"""The Twilio SDK over the kept-alive transport (ombaro/providers/sms.py), against the local provider
server: what a connection that cannot be made, or that the server closed while idle, becomes."""

from __future__ import annotations

import socket

from ombaro.config import MessagingSettings
from ombaro.providers.channels import Message
from ombaro.providers.sms import TwilioMessages
from tests.campaigns.helpers import TWILIO_SID, TWILIO_TOKEN
from tests.campaigns.provider_server import ProviderServer


def sms_sender(base: str) -> TwilioMessages:
    return TwilioMessages(MessagingSettings(twilio_account_sid=TWILIO_SID, twilio_auth_token=TWILIO_TOKEN,
                                            twilio_api_base=base, sms_from="+15005550006",
                                            provider_timeout_seconds=2, provider_concurrency=1), "sms")


def sms(ref: str) -> Message:
    return Message(ref=ref, to=f"+9170000{ref:>5}".replace(" ", "1"), body=f"Offer {ref}. Reply STOP to opt out")


def test_a_server_that_cannot_be_reached_leaves_the_sms_to_retry_not_in_doubt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    [result] = sms_sender(f"http://127.0.0.1:{port}").send([sms("1")])
    assert (result.outcome, result.called) == ("retry", True)
    assert result.error is not None and result.error.startswith("connection failed")


def test_a_kept_alive_connection_the_server_closed_is_reopened_and_the_sms_goes_once() -> None:
    first = ProviderServer().start()
    sender = sms_sender(first.url)
    assert [r.outcome for r in sender.send([sms("1")])] == ["sent"]
    first.stop()  # closes the connection the sender keeps open
    again = ProviderServer().start(port=first.port)
    try:
        [result] = sender.send([sms("2")])
        assert result.outcome == "sent", result.error
        assert [m.to for m in again.accepted("twilio")] == [sms("2").to]
        assert [r.outcome for r in sender.send([sms("3"), sms("4")])] == ["sent", "sent"]
        assert len(again.accepted("twilio")) == 3 and again.duplicates() == {}
    finally:
        again.stop()
