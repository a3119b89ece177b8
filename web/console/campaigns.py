"""Campaigns (marketing): the list with delivery figures, a create form with an audience preview,
and a campaign's page with its approval and sending buttons and a live delivery funnel."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from markupsafe import Markup, escape
from werkzeug.datastructures import ImmutableMultiDict, MultiDict

from ombaro.models.customers import MEMBERSHIP_TIERS
from ombaro.models.marketing import CAMPAIGN_STATUSES, CAMPAIGN_TYPES
from web.console import bp
from web.console.api_client import Answer
from web.console.charts import bar_chart
from web.console.session import api, csrf_token, flash_answer, money, page, status, when
from web.extension import Ombaro

# Per channel: the content fields the form offers (the API validates which are required).
CHANNEL_FIELDS: dict[str, tuple[str, ...]] = {
    "email": ("subject", "body"), "sms": ("body",), "whatsapp": ("body",), "push": ("title", "body"),
    "in_app": ("title", "body"),
}
SENDING = ("active",)
# What each state allows (the API refuses anything else with a 409 naming the state).
ACTIONS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "draft": (("approve", "Approve", "approve"), ("cancel", "Cancel", "update")),
    "scheduled": (("send", "Send now", "update"), ("cancel", "Cancel", "update")),
    "active": (("pause", "Pause", "update"), ("cancel", "Cancel", "update")),
    "paused": (("resume", "Resume", "update"), ("cancel", "Cancel", "update")),
}
DONE = {"approve": "Approved: the campaign is scheduled.", "send": "Sending started.", "pause": "Paused.",
        "resume": "Sending resumed.", "cancel": "Cancelled: pending deliveries are skipped."}


def _aware(value: str) -> str | None:
    """A datetime-local value read in the platform's zone (the API wants an offset)."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value).replace(tzinfo=Ombaro.get().settings.zone).isoformat()
    except ValueError:
        return value  # the API names the field


def _range(form: Mapping[str, str], name: str) -> dict[str, Any] | None:
    bounds = {k: form.get(f"{name}_{k}", "").strip() for k in ("min", "max")}
    shown = {k: int(v) if v.isdigit() else v for k, v in bounds.items() if v}
    return shown or None


def request_body(form: MultiDict[str, str]) -> dict[str, Any]:
    """The API's create body from the form: content per filled-in channel, the audience filters."""
    content = {ch: {f: form.get(f"{ch}_{f}", "") for f in names if form.get(f"{ch}_{f}", "").strip()}
               for ch, names in CHANNEL_FIELDS.items()}
    target: dict[str, Any] = {}
    if tiers := [t for t in form.getlist("tier") if t]:
        target["tier"] = tiers
    if cities := [c.strip() for c in form.get("city", "").split(",") if c.strip()]:
        target["city"] = cities
    for name in ("age_range", "days_since_last_booking"):
        if bounds := _range(form, name):
            target[name] = bounds
    return {"name": form.get("name", ""), "type": form.get("type", ""),
            "content": {ch: c for ch, c in content.items() if c}, "target_audience": target,
            "budget": form.get("budget", ""), "start_date": _aware(form.get("start_date", "")),
            "end_date": _aware(form.get("end_date", ""))}


def _flat(value: Any, prefix: str = "") -> list[str]:
    """Marshmallow's nested errors as lines: 'age range min: Not a valid integer.'"""
    if isinstance(value, Mapping):
        return [line for k, v in value.items() for line in _flat(v, f"{prefix}{str(k).replace('_', ' ')} ")]
    if isinstance(value, list):
        return [line for v in value for line in _flat(v, prefix)]
    return [f"{prefix.strip()}: {value}" if prefix.strip() else str(value)]


def field_errors(answer: Answer | None) -> dict[str, str]:
    """Top-level field -> its errors as one readable line (the form marks each field's)."""
    errors = answer.body.get("errors") if answer and not answer.ok and isinstance(answer.body, Mapping) else None
    if not isinstance(errors, Mapping):
        return {}
    return {field: "; ".join(_flat(v)) for field, v in errors.items()}


def funnel(figures: Mapping[str, Any]) -> tuple[list[str], list[float]]:
    steps = [("Deliveries", figures.get("total", 0)), ("Queued", figures.get("in_flight", 0)),
             ("Sent", figures.get("sent", 0)), ("Delivered", figures.get("delivered", 0)),
             ("Opened", figures.get("opened", 0)), ("Clicked", figures.get("clicked", 0)),
             ("Converted", figures.get("converted", 0)),
             ("Failed", figures.get("failed", 0) + figures.get("bounced", 0))]
    return [label for label, _ in steps], [float(v or 0) for _, v in steps]


def _list_page(form: MultiDict[str, str], preview: Answer | None = None, created: Answer | None = None,
               status: int = 200) -> Any:
    query = {"status": [s for s in request.args.getlist("status") if s], "limit": request.args.get("limit", "50")}
    listing = api("GET", "/api/v1/campaigns", query=query)
    return render_template(
        "console/campaigns.html", campaigns=listing.body if listing.ok else [], listing=listing, query=query,
        statuses=CAMPAIGN_STATUSES, new_campaign_form=new_campaign_form, campaign_rows=campaign_rows,
        form=form, preview=preview, errors=field_errors(preview) or field_errors(created)), status


def campaign_rows(campaigns: Iterable[Mapping[str, Any]], href: Callable[..., str]) -> Markup:
    """The campaigns' table rows (or the row saying there are none), byte for byte what the
    template's loop wrote (issue 16: 45 us a row in Jinja's escape, Markup, filter and attribute
    calls; this writes a row with one escape a value). `href` is the render's `console_href`; a
    key the answer lacks is written as Jinja writes an undefined value (nothing, or 0 for a figure)."""
    rows = []
    for c in campaigns:
        m = c.get("metrics") or {}
        address = href("console.campaign", campaign_id=c.get("id", ""))
        failed = (m.get("failed") or 0) + (m.get("bounced") or 0)
        rows.append(
            f'\n  <tr>\n    <td><a href="{escape(address)}">{escape(c.get("name", ""))}</a></td>\n'
            f'    <td>{escape(str(c.get("type", "")).replace("_", " "))}</td>\n'
            f'    <td>{status(c.get("status", ""))}</td>\n'
            f'    <td>{escape(when(c.get("start_date")))}</td>\n'
            f'    <td class="num">{money(c.get("budget", ""))}</td>\n'
            f'    <td class="num">{escape(m.get("sent") or 0)}</td>'
            f'<td class="num">{escape(m.get("delivered") or 0)}</td>\n'
            f'    <td class="num">{escape(m.get("opened") or 0)}</td><td class="num">{escape(failed)}</td>\n'
            '  </tr>\n  ')
    return Markup("".join(rows) or '<tr><td colspan="9" class="muted">No campaigns yet.</td></tr>')


# The form as a GET shows it: nothing typed in yet, email preselected.
BLANK_FORM: ImmutableMultiDict[str, str] = ImmutableMultiDict({"type": "email"})
# The blank form's HTML per (host, root), its CSRF token left as CSRF_SLOT (no form value holds a NUL).
_BLANK_FORMS: dict[tuple[str, str], str] = {}
CSRF_SLOT = "\x00csrf\x00"


def new_campaign_form(form: MultiDict[str, str], errors: Mapping[str, str]) -> Markup:
    """The new-campaign form, filled in with `form` and its field `errors`. The blank one (every
    GET) is the same for everyone but for the session's CSRF token and the address it posts to:
    rendered once per host and root, the token put in per page (issue 16: a third of the page's
    rendering)."""
    def render(csrf_value: str) -> str:
        return current_app.jinja_env.get_template("console/campaigns_form.html").render(
            form=form, errors=errors, types=CAMPAIGN_TYPES, tiers=MEMBERSHIP_TIERS, channel_fields=CHANNEL_FIELDS,
            csrf_value=csrf_value)

    if form is not BLANK_FORM or errors:
        return Markup(render(csrf_token()))
    key = (request.host, request.script_root)
    html = _BLANK_FORMS.get(key)
    if html is None:
        html = render(CSRF_SLOT)
        if len(_BLANK_FORMS) >= 64:  # any Host header may arrive: bounded
            _BLANK_FORMS.clear()
        _BLANK_FORMS[key] = html
    return Markup(html.replace(CSRF_SLOT, str(escape(csrf_token()))))


@bp.get("/campaigns")
@page("campaigns")
def campaigns() -> Any:
    return _list_page(BLANK_FORM)


@bp.post("/campaigns")
@page("campaigns")
def campaign_form() -> Any:
    """One form, two buttons: preview the audience (shown on the page) or create the draft."""
    body = request_body(request.form)
    if request.form.get("action") == "preview":
        preview = api("POST", "/api/v1/campaigns/preview",
                      json={k: body[k] for k in ("type", "content", "target_audience")})
        if not preview.ok:
            _refused(preview)
        return _list_page(request.form, preview=preview, status=200 if preview.ok else preview.status)
    created = api("POST", "/api/v1/campaigns", json=body)
    if created.ok:
        flash_answer(created, f"Campaign “{body['name']}” saved as a draft; a director approves it.")
        return redirect(url_for("console.campaign", campaign_id=created.body["id"]))
    _refused(created)
    return _list_page(request.form, created=created, status=created.status)


def _refused(answer: Answer) -> None:
    """Field errors are shown next to the form; anything else (content, dates, budget rules) here."""
    if field_errors(answer):
        flash("Not saved: see the errors in the form below.", "error")
    else:
        flash_answer(answer, "")


def _funnel_context(campaign_id: Any) -> dict[str, Any]:
    figures = api("GET", f"/api/v1/campaigns/{campaign_id}/metrics")
    numbers = figures.body if figures.ok else {}
    labels, values = funnel(numbers)
    return {"campaign_id": campaign_id, "figures": figures, "numbers": numbers,
            "chart": bar_chart(labels, values), "live": numbers.get("status") in SENDING}


@bp.get("/campaigns/<uuid:campaign_id>")
@page("campaigns")
def campaign(campaign_id: Any) -> Any:
    answer = api("GET", f"/api/v1/campaigns/{campaign_id}")
    if answer.status == 404:
        abort(404)
    current = answer.body
    audience = api("GET", f"/api/v1/campaigns/{campaign_id}/audience")
    return render_template("console/campaigns_detail.html", campaign=current, audience=audience,
                           actions=ACTIONS.get(current["status"], ()), **_funnel_context(campaign_id))


@bp.get("/campaigns/<uuid:campaign_id>/funnel")
@page("campaigns")
def campaign_funnel(campaign_id: Any) -> Any:
    return render_template("console/campaigns_funnel.html", **_funnel_context(campaign_id))


@bp.post("/campaigns/<uuid:campaign_id>/<any(approve, send, pause, resume, cancel):step>")
@page("campaigns")
def campaign_step(campaign_id: Any, step: str) -> Any:
    flash_answer(api("POST", f"/api/v1/campaigns/{campaign_id}/{step}"), DONE[step])
    return redirect(url_for("console.campaign", campaign_id=campaign_id))
