"""What a campaign says on each channel, with the customer's name, tier and city filled in.

Templates use `string.Template` placeholders (`$first_name`, `${city}`) and nothing else: the text
a marketer types is never evaluated, an unknown placeholder is refused when the campaign is
created, and values are HTML-escaped in HTML parts.

Content is stored per channel in `campaigns.content`:
`{"email": {"subject", "body", "html"?}, "sms": {"body"}, "whatsapp": {"body"},
"push": {"title", "body", "data"?}, "in_app": {"title", "body", "data"?}}`. The older flat form
`{"subject", "body", ...}` is read as the content of the campaign's single channel.
"""

from __future__ import annotations

import html
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ombaro.messaging import SMS_OPT_OUT, Recipient
from ombaro.providers.channels import BatchTemplate, Message

CHANNELS = ("email", "sms", "whatsapp", "push", "in_app")
TYPE_CHANNELS: dict[str, tuple[str, ...]] = {
    "email": ("email",), "sms": ("sms",), "push": ("push",), "in_app": ("in_app",),
    # WhatsApp is reachable only through a multi-channel campaign (campaigns.type has no 'whatsapp').
    "multi_channel": CHANNELS,
}
VARIABLES = ("name", "first_name", "tier", "city")
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "body"), "sms": ("body",), "whatsapp": ("body",), "push": ("title", "body"),
    "in_app": ("title", "body"),
}
TEXT_FIELDS = ("subject", "title", "body", "html")
# Longest text per channel: SMS 6 concatenated segments of 153 GSM-7 characters.
MAX_LENGTH = {"sms": 918, "whatsapp": 1024, "push": 1000, "in_app": 2000, "email": 100_000}


class InvalidContent(ValueError):
    """The campaign's content cannot be sent: the message says which channel and field."""


def channels_of(campaign_type: str | None, content: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """channel -> its content, for the channels this campaign sends on."""
    allowed = TYPE_CHANNELS.get(campaign_type or "", ())
    per_channel = {ch: dict(content[ch]) for ch in CHANNELS if isinstance(content.get(ch), Mapping)}
    if per_channel:
        return {ch: c for ch, c in per_channel.items() if ch in allowed}
    flat = {k: v for k, v in content.items() if k in (*TEXT_FIELDS, "data")}
    if "title" not in flat and "subject" in flat:
        flat["title"] = flat["subject"]
    if campaign_type == "multi_channel":  # legacy flat content: every channel but opt-in WhatsApp
        return {ch: dict(flat) for ch in ("email", "sms", "push", "in_app")}
    return {campaign_type: flat} if campaign_type in TYPE_CHANNELS else {}


def validate(campaign_type: str, content: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The per-channel content, or InvalidContent naming what is wrong."""
    if campaign_type not in TYPE_CHANNELS:
        raise InvalidContent(f"unknown campaign type {campaign_type!r}")
    unknown = [k for k, v in content.items() if k in CHANNELS and k not in TYPE_CHANNELS[campaign_type]]
    if unknown:
        raise InvalidContent(f"a {campaign_type} campaign cannot carry content for {', '.join(unknown)}")
    channels = channels_of(campaign_type, content)
    if not channels:
        raise InvalidContent("the campaign has content for none of its channels")
    for channel, fields in channels.items():
        for name in REQUIRED_FIELDS[channel]:
            if not str(fields.get(name) or "").strip():
                raise InvalidContent(f"{channel}.{name} is required")
        for name in TEXT_FIELDS:
            value = fields.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise InvalidContent(f"{channel}.{name} must be text")
            template = string.Template(value)
            if not template.is_valid():
                raise InvalidContent(f"{channel}.{name} has a malformed placeholder (write $$ for a dollar sign)")
            strangers = sorted(set(template.get_identifiers()) - set(VARIABLES))
            if strangers:
                raise InvalidContent(f"{channel}.{name} uses unknown placeholders {strangers}; "
                                     f"known: {', '.join(VARIABLES)}")
        body = render(str(fields["body"]), sample_variables())
        if len(body) > MAX_LENGTH[channel]:
            raise InvalidContent(f"{channel}.body is longer than {MAX_LENGTH[channel]} characters")
        data = fields.get("data")
        if data is not None and not (isinstance(data, Mapping) and all(isinstance(v, str) for v in data.values())):
            raise InvalidContent(f"{channel}.data must map names to text")
    return channels


def sample_variables() -> dict[str, str]:
    return {"name": "Anjali Deshpande", "first_name": "Anjali", "tier": "Platinum", "city": "Bengaluru"}


def variables(name: str | None, tier: str | None, city: str | None) -> dict[str, str]:
    full = (name or "").strip()
    return {"name": full or "there", "first_name": full.split(" ")[0] if full else "there",
            "tier": (tier or "").title(), "city": city or ""}


def render(template: str, values: Mapping[str, str]) -> str:
    """Placeholders replaced by values; nothing else in the text is interpreted."""
    return string.Template(template).safe_substitute(values)


def tag(name: str, *, escaped: bool = False) -> str:
    """The SendGrid substitution tag standing for a variable in shared email content."""
    return f"[%{name}{'_html' if escaped else ''}%]"


@dataclass(frozen=True)
class Unsubscribe:
    url: str  # one-click link for this delivery


class CampaignComposer:
    """Builds each recipient's message for one campaign."""

    def __init__(self, campaign_id: Any, campaign_type: str | None, content: Mapping[str, Any]) -> None:
        self.campaign_id = str(campaign_id)
        self.content = channels_of(campaign_type, content)
        self._templates: dict[str, BatchTemplate] = {}

    def email_template(self) -> BatchTemplate:
        """The campaign's email content with substitution tags, shared by all its recipients."""
        if "email" not in self._templates:
            fields = self.content["email"]
            text_tags = {v: tag(v) for v in (*VARIABLES, "unsubscribe_url")}
            html_tags = {v: tag(v, escaped=True) for v in (*VARIABLES, "unsubscribe_url")}
            text = render(str(fields["body"]), text_tags) + email_footer_text(tag("unsubscribe_url"))
            source_html = fields.get("html") or text_to_html(str(fields["body"]))
            body_html = render(str(source_html), html_tags) + email_footer_html(tag("unsubscribe_url", escaped=True))
            self._templates["email"] = BatchTemplate(f"campaign:{self.campaign_id}:email", text, body_html)
        return self._templates["email"]

    def compose(self, r: Recipient, unsubscribe: Unsubscribe | None) -> Message:
        fields = self.content[r.channel]
        values = variables(r.name, r.tier, r.city)
        ref = str(r.delivery_id)
        data = {str(k): str(v) for k, v in (fields.get("data") or {}).items()}
        data.update({"campaign_id": self.campaign_id})
        if r.channel == "email":
            url = unsubscribe.url if unsubscribe else ""
            substitutions = {tag(k): v for k, v in values.items()}
            substitutions.update({tag(k, escaped=True): html.escape(v) for k, v in values.items()})
            substitutions[tag("unsubscribe_url")] = url
            substitutions[tag("unsubscribe_url", escaped=True)] = html.escape(url)
            template = self.email_template()
            headers = {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"} \
                if url else {}
            body = _fill(template.text, substitutions)
            return Message(ref=ref, to=r.email or "", subject=render(str(fields["subject"]), values), body=body,
                           html=_fill(template.html or "", substitutions), headers=headers, user_id=r.user_id,
                           template=template, substitutions=substitutions, data=data)
        body = render(str(fields["body"]), values)
        if r.channel in ("sms", "whatsapp"):
            if "stop" not in body.lower():
                body = f"{body}\n{SMS_OPT_OUT}"
            return Message(ref=ref, to=r.mobile or "", body=body, user_id=r.user_id)
        title = render(str(fields.get("title") or fields.get("subject") or ""), values)
        if r.channel == "push":
            return Message(ref=ref, to=r.device_token or "", subject=title, body=body, data=data, user_id=r.user_id)
        return Message(ref=ref, to=str(r.user_id), subject=title, body=body, data=data, user_id=r.user_id,
                       kind="promotion")


def _fill(text: str, substitutions: Mapping[str, str]) -> str:
    for key, value in substitutions.items():
        text = text.replace(key, value)
    return text


def text_to_html(text: str) -> str:
    escaped = html.escape(text, quote=False)
    return "<p>" + escaped.replace("\n\n", "</p><p>").replace("\n", "<br>") + "</p>"


def email_footer_text(url: str) -> str:
    return f"\n\n--\nYou receive this because you are an OMBARO customer. Unsubscribe: {url}\n"


def email_footer_html(url: str) -> str:
    return (f'<p style="font-size:12px;color:#777">You receive this because you are an OMBARO customer. '
            f'<a href="{url}">Unsubscribe</a></p>')
