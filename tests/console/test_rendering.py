"""What the console's pages spend their own time on (issue 16): the template functions that replace
macros write what the macros wrote, and the permission answers kept between pages follow the matrix."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from markupsafe import Markup
from sqlalchemy import Engine, text

from ombaro.access import permissions
from tests.factories.console import nav, signed_in
from web.console import session as console_session

# The macros `button` and `csrf` as web/console/templates/console/macros.html had them (no text between).
MACROS = """{% macro csrf() %}<input type="hidden" name="csrf" value="{{ csrf_token() }}">{% endmacro %}\
{% macro button(action, label, class='', confirm=None, fields={}) %}
<form class="inline" method="post" action="{{ action }}"{% if confirm %} data-confirm="{{ confirm }}"{% endif %}>
  <input type="hidden" name="csrf" value="{{ csrf_token() }}">
  {% for name, value in fields.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  <button type="submit" class="{{ class }}">{{ label }}</button>
</form>
{% endmacro %}"""

ACTIONS = ["/console/schedules/0b5c1e6a-8d7e-4f5e-9a55-2d1f0f0f0f0f/run", '/console/x?a=1&b="2"<>']
LABELS = ["Run now", Markup("<b>Approve</b>"), "Fire \"nightly\" <now> & then?", 7]
CLASSES = ["", "secondary", 'danger" onclick="x']
CONFIRMS = [None, "", "Fire backup&restore <now>?", Markup("Sure <i>now</i>?")]
FIELDS: list[dict[str, Any]] = [{}, {"back": "/console/payroll/runs/1?a=1&b=2"},
                                {"allow_failures": "1", "note": '"quoted" <tag>', "n": 3}]


@pytest.mark.parametrize("token", ["plain-token_1", 'odd"<token>&'])
def test_the_button_and_csrf_functions_write_what_the_macros_wrote(app: Any, token: str) -> None:
    with app.test_request_context("/console/schedules"):
        from flask import session

        session["csrf"] = token
        old = app.jinja_env.from_string(MACROS + "{{ button(*args) }}|{{ csrf() }}")
        new = app.jinja_env.from_string("{{ button(*args) }}|{{ csrf() }}")
        cases = 0
        for args in itertools.product(ACTIONS, LABELS, CLASSES, CONFIRMS, FIELDS):
            for arity in (2, 3, 4, 5):
                assert new.render(args=args[:arity]) == old.render(args=args[:arity]), args[:arity]
                cases += 1
        assert cases == 2 * 4 * 3 * 4 * 3 * 4


def test_a_second_page_asks_the_matrix_nothing_it_answered_before(
        app: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = signed_in(app, engine, "it_department")
    assert browser.get("/console/schedules").status_code == 200
    asked: list[tuple[Any, ...]] = []
    real = permissions.allowed_by

    def counting(*args: Any) -> bool:
        asked.append(args)
        return real(*args)

    # Every question the matrix is asked afresh: the console's and the API call's behind the page
    # (web.auth.may), which keep their answers in one place (permissions.allowed_in).
    monkeypatch.setattr(permissions, "allowed_by", counting)
    permissions.GRANTS_CACHE.ttl = 3600.0  # the same read of the matrix for both pages
    try:
        page = browser.get("/console/schedules")
    finally:
        permissions.GRANTS_CACHE.ttl = 5.0
    assert page.status_code == 200 and "Schedules" in nav(page)
    assert asked == []


@pytest.mark.parametrize("reload", ["edited in this process", "read again after its seconds"])
def test_a_matrix_edit_applies_to_the_next_page(app: Any, engine: Engine, reload: str) -> None:
    """Answers are kept only beside the read of the matrix they came from: an edit made here (the
    cache forgets the matrix) or elsewhere (read again after `ttl`) applies to the next page."""
    browser = signed_in(app, engine, "it_department")
    first = browser.get("/console/schedules")
    assert first.status_code == 200 and "Schedules" in nav(first)
    with engine.begin() as conn:
        conn.execute(text("UPDATE role_permissions SET permissions = ARRAY['update'] "
                          "WHERE role_id = 'it_department' AND module_id = 'schedules'"))
    if reload == "edited in this process":
        permissions.GRANTS_CACHE.invalidate()
    else:
        permissions.GRANTS_CACHE.ttl = 0.0
    try:
        refused = browser.get("/console/schedules")
        assert refused.status_code == 403
        jobs = browser.get("/console/jobs")
        assert jobs.status_code == 200 and "Schedules" not in nav(jobs)
    finally:
        permissions.GRANTS_CACHE.ttl = 5.0
        with engine.begin() as conn:
            conn.execute(text("UPDATE role_permissions SET permissions = ARRAY['read', 'update'] "
                              "WHERE role_id = 'it_department' AND module_id = 'schedules'"))
        permissions.GRANTS_CACHE.invalidate()
    again = browser.get("/console/schedules")
    assert again.status_code == 200 and "Schedules" in nav(again)


def test_the_blank_campaign_form_is_the_one_rendered_afresh_with_each_session_s_token(app: Any, engine: Engine) -> None:
    """The blank new-campaign form is kept per host and root with its CSRF token left out: each
    page gets its own session's token, and the form reads as one rendered afresh."""
    from werkzeug.datastructures import MultiDict

    from web.console import campaigns

    pages = []
    for _ in range(2):
        browser = signed_in(app, engine, "marketing_department")
        page = browser.get("/console/campaigns")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        form = html.split('<div class="card" id="new-campaign">')[1].split("</form>")[0]
        assert f'<input type="hidden" name="csrf" value="{browser.csrf}">' in form
        pages.append((browser.csrf, form))
    (token_a, form_a), (token_b, form_b) = pages
    assert token_a != token_b and form_a.replace(token_a, "T") == form_b.replace(token_b, "T")
    assert campaigns.CSRF_SLOT not in form_a
    with app.test_request_context("/console/campaigns"):
        from flask import session

        session["csrf"] = 'a"<token>&'
        kept = campaigns.new_campaign_form(campaigns.BLANK_FORM, {})
        kept_again = campaigns.new_campaign_form(campaigns.BLANK_FORM, {})
        afresh = campaigns.new_campaign_form(MultiDict({"type": "email"}), {})  # not the blank form: rendered
        assert kept == kept_again == afresh
        assert 'value="a&#34;&lt;token&gt;&amp;"' in str(kept)
        typed = campaigns.new_campaign_form(MultiDict({"type": "sms", "name": "Diwali <b>"}), {"name": "too long"})
        assert 'value="Diwali &lt;b&gt;"' in str(typed) and "too long" in str(typed)
        assert '<option value="sms" selected>' in str(typed)


def test_a_row_s_address_is_url_for_s_on_every_host_and_root(app: Any) -> None:
    import uuid

    from flask import url_for

    ids = [str(uuid.uuid4()) for _ in range(3)]
    for base in ("http://localhost/", "https://ops.example.in/", "http://10.0.0.5:8080/behind/a/proxy/"):
        for _ in range(2):  # built, then kept
            with app.test_request_context("/console/schedules", base_url=base):
                for schedule_id in ids:
                    for action in ("enable", "disable"):
                        assert console_session.href("console.toggle_schedule", schedule_id=schedule_id,
                                                    action=action) == url_for(
                            "console.toggle_schedule", schedule_id=schedule_id, action=action)
                    assert console_session.href("console.run_schedule", schedule_id=schedule_id) == url_for(
                        "console.run_schedule", schedule_id=schedule_id)
                assert console_session.href("console.static", "console.css") == url_for(
                    "console.static", filename="console.css")
                assert console_session.href("console.schedules") == url_for("console.schedules")


def test_a_render_reads_the_session_s_csrf_token_once(
        app: Any, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedules page draws three forms a row, each with the CSRF field: the token is read from
    the session once a render (`console_context`), not once a form."""
    browser = signed_in(app, engine, "it_department")
    reads: list[str] = []
    real = console_session.csrf_token

    def counting() -> str:
        reads.append(real())
        return reads[-1]

    monkeypatch.setattr(console_session, "csrf_token", counting)
    page = browser.get("/console/schedules").get_data(as_text=True)
    rows = page.count("<tr data-schedule=")
    assert rows >= 1 and page.count('name="csrf"') == 3 * rows + 1  # three a row and the sign-out form
    assert reads == [browser.csrf]


def test_a_render_s_functions_answer_as_the_template_globals(app: Any) -> None:
    """What `console_context` hands a template (the request's values read once) answers as the
    app-wide template globals, which read them on every call: addresses on three hosts and roots,
    the CSRF token (set on first use when the session has none), buttons, fields, permissions."""
    import uuid

    from flask import g, session

    from web.auth import CurrentUser

    ids = [str(uuid.uuid4()) for _ in range(2)]
    for base in ("http://localhost/", "https://ops.example.in/", "http://10.0.0.5:8080/behind/a/proxy/"):
        for role, token in (("it_department", 'odd"<token>&'), ("finance_department", None), ("customer", "t")):
            with app.test_request_context("/console/schedules", base_url=base):
                g.console_user, g.console_pending = CurrentUser(uuid.uuid4(), role), False
                if token is not None:
                    session["csrf"] = token
                context = console_session.console_context()
                assert context["csrf_token"]() == console_session.csrf_token() == session["csrf"]
                assert context["csrf"]() == console_session.csrf()
                for args in itertools.product(ACTIONS, LABELS, CLASSES, CONFIRMS, FIELDS):
                    assert context["button"](*args) == console_session.button(*args), args
                for schedule_id in ids:
                    assert context["console_href"]("console.run_schedule", schedule_id=schedule_id) == \
                        console_session.href("console.run_schedule", schedule_id=schedule_id)
                    assert context["console_href"]("console.toggle_schedule", schedule_id=schedule_id,
                                                   action="enable") == console_session.href(
                        "console.toggle_schedule", schedule_id=schedule_id, action="enable")
                assert context["console_href"]("console.static", "console.css") == console_session.href(
                    "console.static", "console.css")
                for module, action in itertools.product(permissions.MODULES, permissions.ACTIONS):
                    assert context["allowed"](module, action) == console_session.allowed(module, action)
                assert [address for _e, _l, address, _a in context["nav"]] == [
                    console_session.href(endpoint) for endpoint, _l, module, action in console_session.SECTIONS
                    if console_session.allowed(module, action)]
                assert [endpoint for endpoint, _l, _a, active in context["nav"] if active] == (
                    ["console.schedules"] if role == "it_department" else [])


def _security_headers_as_before(response: Any) -> Any:
    """web/console/session.py's `security_headers` before issue 16's session 6: one setdefault a name."""
    from flask import request

    if not (request.path == "/console" or request.path.startswith("/console/")):
        return response
    for name, value in console_session.SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "console.static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def test_the_security_headers_are_the_ones_setdefault_gave(app: Any) -> None:
    """The answer's header names are read once instead of a `setdefault` a name: the same headers, in
    the same order, whichever of them (in any case) the answer had already, on every kind of path."""
    import random

    from flask import Response

    names = [*console_session.SECURITY_HEADERS, "Cache-Control", "X-Request-ID", "Content-Type"]
    rng = random.Random(16)
    paths = ["/console", "/console/", "/console/schedules", "/console/static/console.css", "/console/nope",
             "/consoles", "/api/v1/jobs", "/"]
    cases = 0
    for path in paths:
        for _ in range(40):
            own = [(rng.choice([str.lower, str.upper, str])(name), f"own-{rng.randrange(9)}")
                   for name in rng.sample(names, rng.randrange(len(names)))]
            answers = []
            with app.test_request_context(path):
                for hook in (console_session.security_headers, _security_headers_as_before):
                    response = Response("x")
                    for name, value in own:
                        response.headers.add(name, value)
                    answers.append(list(hook(response).headers.items()))
            assert answers[0] == answers[1], (path, own)
            cases += 1
    assert cases == len(paths) * 40


def test_a_timestamp_is_shown_as_computed_afresh_and_worked_out_once(
        app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`when` keeps its answers (a list shows the same times page after page): each is what
    fromisoformat/astimezone/strftime give for that timestamp, flag and zone; another zone in the
    settings gives that zone's time, not a kept one."""
    import dataclasses
    import datetime as dt
    import random
    from zoneinfo import ZoneInfo

    rng = random.Random(16)
    stamps = [(dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(10**8),
                                                                     microseconds=rng.randrange(10**6)))
              for _ in range(60)]
    texts = [s.isoformat() for s in stamps] + [s.astimezone(ZoneInfo("Asia/Tokyo")).isoformat() for s in stamps]
    with app.app_context():
        ombaro = app.extensions["ombaro"]
        for zone in ("Asia/Kolkata", "America/New_York", "UTC"):
            settings = dataclasses.replace(ombaro.settings, timezone=zone)
            monkeypatch.setitem(app.extensions, "ombaro", dataclasses.replace(ombaro, settings=settings))
            for text_ in texts:
                for seconds in (False, True):
                    fresh = dt.datetime.fromisoformat(text_).astimezone(ZoneInfo(zone)).strftime(
                        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
                    hits = console_session._local_time.cache_info().hits
                    assert console_session.when(text_, seconds) == fresh
                    assert console_session.when(text_, seconds) == fresh
                    assert console_session._local_time.cache_info().hits == hits + 1
        assert console_session.when(None) == console_session.when("") == "—"


def test_the_list_pages_addresses_are_url_for_s(app: Any) -> None:
    """The list pages' forms and rows link through `console_href` (kept per host, root and values)
    instead of `url_for` a row: the same addresses on three hosts and roots, built and then kept."""
    import uuid

    from flask import url_for

    one = str(uuid.uuid4())
    addresses: list[tuple[str, dict[str, Any]]] = [
        ("console.campaigns", {}), ("console.campaign", {"campaign_id": one}), ("console.dispatch", {}),
        ("console.batch_dispatch", {}), ("console.run_payroll", {}), ("console.payroll_run", {"run_id": one}),
        ("console.run_settlements", {}), ("console.settlement", {"settlement_id": one}),
        ("console.job", {"job_id": one}), ("console.retry", {"job_id": one}), ("console.refresh_dashboard", {})]
    for base in ("http://localhost/", "https://ops.example.in/", "http://10.0.0.5:8080/behind/a/proxy/"):
        for _ in range(2):  # built, then kept
            with app.test_request_context("/console/jobs", base_url=base):
                from flask import g

                g.console_user, g.console_pending = None, False
                kept = console_session.console_context()["console_href"]
                for endpoint, values in addresses:
                    assert kept(endpoint, **values) == console_session.href(endpoint, **values) == url_for(
                        endpoint, **values), (base, endpoint)


# The schedules' and campaigns' row loops as the templates had them before issue 16's session 7.
SCHEDULE_LOOP = """
  {% for s in schedules %}
  <tr data-schedule="{{ s.name }}">
    <td>{{ s.name }}</td><td>{{ s.kind }}</td>
    <td>{% if can_edit %}
      <form class="row" method="post" action="{{ console_href('console.edit_schedule', schedule_id=s.id) }}">{{ csrf() }}
        {% if s.cron %}<input name="cron" value="{{ s.cron }}" size="14" aria-label="cron for {{ s.name }}">
        {% else %}<input name="interval_seconds" value="{{ s.interval_seconds }}" size="6" aria-label="interval for {{ s.name }}"> s{% endif %}
        <button type="submit" class="secondary">Save</button></form>
      {% else %}{{ s.cron or ('every %s s' % s.interval_seconds) }}{% endif %}
      <span class="muted">{{ s.timezone }}</span></td>
    <td>{{ s.next_fire_time | when }}</td>
    <td>{{ s.last_fired_for | when }}</td>
    <td><span class="status {{ 'active' if s.enabled else 'paused' }}">{{ 'enabled' if s.enabled else 'disabled' }}</span></td>
    <td>{% if can_edit %}
      {{ button(console_href('console.toggle_schedule', schedule_id=s.id, action='disable' if s.enabled else 'enable'), 'Disable' if s.enabled else 'Enable', 'secondary') }}
      {{ button(console_href('console.run_schedule', schedule_id=s.id), 'Run now', '', 'Fire ' ~ s.name ~ ' now?') }}
    {% endif %}</td>
  </tr>
  {% endfor %}
"""  # noqa: E501  (the template's lines as they were)
CAMPAIGN_LOOP = """
  {% for c in campaigns %}{% set m = c.metrics or {} %}
  <tr>
    <td><a href="{{ console_href('console.campaign', campaign_id=c.id) }}">{{ c.name }}</a></td>
    <td>{{ c.type | replace('_', ' ') }}</td>
    <td>{{ status(c.status) }}</td>
    <td>{{ c.start_date | when }}</td>
    <td class="num">{{ money(c.budget) }}</td>
    <td class="num">{{ m.sent or 0 }}</td><td class="num">{{ m.delivered or 0 }}</td>
    <td class="num">{{ m.opened or 0 }}</td><td class="num">{{ (m.failed or 0) + (m.bounced or 0) }}</td>
  </tr>
  {% else %}<tr><td colspan="9" class="muted">No campaigns yet.</td></tr>{% endfor %}
"""
HOSTILE = ['<script>alert("x")</script>', "a & b 'quoted' \"double\"", "plain", "", "ünïcode ₹ — \u2028 line",
           "x\" onmouseover=\"alert(1)", "&amp; already", "{{ 7*7 }}", None]


def test_the_schedule_and_campaign_rows_are_what_the_template_loops_wrote(app: Any) -> None:
    """The rows are written by Python functions (web/console/schedules.py, campaigns.py) instead of
    the templates' loops: byte for byte the same, hostile strings escaped, on three hosts and roots,
    with and without the right to edit, every kind of trigger, state and missing figure."""
    import uuid

    from flask import g, session

    from web.auth import CurrentUser
    from web.console.campaigns import campaign_rows
    from web.console.schedules import schedule_rows

    ids = [str(uuid.uuid4()) for _ in range(3)]
    times = ["2026-03-31T18:29:30+00:00", None, "2026-12-07T13:35:00.123456+00:00", ""]
    schedules = [{"id": ids[n % 3], "name": name, "kind": HOSTILE[(n + 1) % len(HOSTILE)],
                  "cron": (None, "*/5 * * * *", name)[n % 3], "interval_seconds": (30, None, 3600)[n % 3],
                  "timezone": (HOSTILE[(n + 2) % len(HOSTILE)], "Asia/Kolkata")[n % 2],
                  "next_fire_time": times[n % 4], "last_fired_for": times[(n + 1) % 4],
                  "enabled": (True, False, None)[n % 3]}
                 for n, name in enumerate(HOSTILE)]
    campaigns = [{"id": ids[n % 3], "name": name, "type": ("email_and_sms", name, "push")[n % 3],
                  "status": HOSTILE[(n + 3) % len(HOSTILE)], "start_date": times[n % 4],
                  "budget": ("5000.00", None, "12.5", name)[n % 4],
                  "metrics": ({"sent": 3, "delivered": 2, "opened": 1, "failed": 1, "bounced": 2}, None, {},
                              {"sent": None, "failed": 4})[n % 4]} for n, name in enumerate(HOSTILE)]
    old_schedules = app.jinja_env.from_string(SCHEDULE_LOOP)
    old_campaigns = app.jinja_env.from_string(CAMPAIGN_LOOP)
    new_schedules = app.jinja_env.from_string(
        "\n  {{ schedule_rows(schedules, can_edit, console_href, csrf, button) }}\n")
    new_campaigns = app.jinja_env.from_string("\n  {{ campaign_rows(campaigns, console_href) }}\n")
    cases = 0
    for base in ("http://localhost/", "https://ops.example.in/", "http://10.0.0.5:8080/behind/a/proxy/"):
        with app.test_request_context("/console/schedules", base_url=base):
            g.console_user, g.console_pending = CurrentUser(uuid.uuid4(), "super_admin"), False
            session["csrf"] = 'odd"<token>&'
            context = console_session.console_context()
            for can_edit in (True, False):
                for rows in (schedules, schedules[:1], []):
                    values = {**context, "schedules": rows, "can_edit": can_edit, "schedule_rows": schedule_rows}
                    drawn = new_schedules.render(values)
                    assert drawn == old_schedules.render(values)
                    cases += 1
                    if rows:
                        assert "<script>" not in drawn and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in drawn
                        assert 'x" onmouseover' not in drawn
                        assert ('value="odd&#34;&lt;token&gt;&amp;"' in drawn) == can_edit
            for rows in (campaigns, campaigns[:2], []):
                values = {**context, "campaigns": rows, "campaign_rows": campaign_rows}
                drawn = new_campaigns.render(values)
                assert drawn == old_campaigns.render(values)
                cases += 1
                if rows:
                    assert "<script>" not in drawn and "&lt;script&gt;" in drawn and 'x" onmouseover' not in drawn
    assert cases == 3 * (6 + 3)
