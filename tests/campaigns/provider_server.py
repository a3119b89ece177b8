"""A local HTTP server that speaks the parts of SendGrid's, Twilio's and FCM's APIs the engine
uses, so tests and the benchmark drive the real `sendgrid` and `twilio` SDKs (and the FCM
adapter) over real HTTP on 127.0.0.1, with the provider's failures on demand:

- SendGrid v3: POST /v3/mail/send (personalizations, custom_args, substitutions; 202 with
  X-Message-Id; 400 naming a bad personalization; at most 1,000 personalizations);
- Twilio: POST /2010-04-01/Accounts/<sid>/Messages.json (201 with an SM sid; 400 code 21211 for an
  invalid number), GET of the same URL to list messages by To and DateSent> (reconciliation);
- FCM HTTP v1: POST /token (OAuth), POST /v1/projects/<p>/messages:send;
- faults, per provider or for all: a status (429 with Retry-After, 500, 503) for the next N
  requests or for a time window from the first request it answers (a storm), slow answers,
  timeouts (with or without the provider having accepted the message), and `hold` (accept, then
  answer only when released: a worker can be killed between the provider's acceptance and its own
  bookkeeping).

In-process: `ProviderServer().start()` (a thread with its own event loop). As a process:
`python -m tests.campaigns.provider_server --port N`, controlled through /_admin/*.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PROVIDERS = ("sendgrid", "twilio", "fcm")


@dataclass
class Fault:
    provider: str  # sendgrid, twilio, fcm or *
    kind: str  # status, delay, timeout, hold
    count: int | None = 1  # requests it applies to (None: until `until`)
    until: float | None = None  # monotonic deadline of a time-window fault (a storm)
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    accept: bool = False  # timeout / hold: the provider accepted the message before stalling
    window: float | None = None  # seconds a storm lasts from the first request it answers (sets until)

    def live(self, now: float) -> bool:
        if self.until is not None and now > self.until:
            return False
        return self.count is None or self.count > 0


@dataclass
class Recorded:
    provider: str
    to: str
    body: str = ""
    subject: str | None = None
    sid: str = ""
    ref: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


class ProviderServer:
    def __init__(self, *, record: str = "full", invalid_suffix: str = "0000") -> None:
        self.record = record  # full: keep every message; keys: only recipients (benchmarks)
        self.invalid_suffix = invalid_suffix  # Twilio answers 21211 for numbers ending like this
        self.messages: list[Recorded] = []
        self.recipients: Counter[tuple[str, str]] = Counter()  # (provider, to) -> messages accepted
        self.requests: Counter[str] = Counter()
        self.responses: Counter[tuple[str, int]] = Counter()
        self.request_times: dict[str, list[tuple[float, int]]] = {p: [] for p in PROVIDERS}
        self.faults: list[Fault] = []
        self.holding = 0
        self.port = 0
        self._lock = threading.Lock()
        self._release: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # --- control ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_fault(self, provider: str, kind: str, *, count: int | None = 1, seconds: float = 0.0,
                  status: int = 503, retry_after: float | None = None, accept: bool = False,
                  window: float | None = None) -> Fault:
        fault = Fault(provider, kind, count, None, status, retry_after, seconds, accept, window)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.messages.clear()
            self.recipients.clear()
            self.requests.clear()
            self.responses.clear()
            for times in self.request_times.values():
                times.clear()
        self.release()

    def release(self) -> None:
        """Answer every request held so far (later ones are held again)."""
        if self._loop and self._release:
            self._loop.call_soon_threadsafe(self._release_now)

    def _release_now(self) -> None:
        assert self._release is not None
        self._release.set()
        self._release = asyncio.Event()

    def accepted(self, provider: str) -> list[Recorded]:
        with self._lock:
            return [m for m in self.messages if m.provider == provider]

    def duplicates(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return {k: n for k, n in self.recipients.items() if n > 1}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "accepted": sum(self.recipients.values()),
                    "recipients": len(self.recipients),
                    "duplicates": sum(n - 1 for n in self.recipients.values() if n > 1),
                    "responses": {f"{p}:{s}": n for (p, s), n in self.responses.items()}, "holding": self.holding}

    # --- running ------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/v3/mail/send", self.sendgrid_send)
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self.twilio_create)
        app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", self.twilio_list)
        app.router.add_post("/token", self.fcm_token)
        app.router.add_post("/v1/projects/{project}/messages:send", self.fcm_send)
        app.router.add_get("/_admin/stats", self.admin_stats)
        app.router.add_post("/_admin/faults", self.admin_faults)
        app.router.add_post("/_admin/reset", self.admin_reset)
        app.router.add_post("/_admin/release", self.admin_release)
        return app

    async def serve(self, port: int = 0) -> None:
        self._loop = asyncio.get_running_loop()
        self._release = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()

    def start(self, port: int = 0) -> ProviderServer:
        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve(port))
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="provider-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the provider server did not start")
        return self

    def stop(self) -> None:
        self.release()
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    # --- faults -------------------------------------------------------------------------------------

    def _take_fault(self, provider: str) -> Fault | None:
        now = time.monotonic()
        with self._lock:
            self.faults = [f for f in self.faults if f.live(now)]
            for fault in self.faults:
                if fault.provider in (provider, "*"):
                    if fault.window is not None and fault.until is None:  # however late the workers start
                        fault.until = now + fault.window
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    async def _before(self, provider: str) -> tuple[web.Response | None, Fault | None]:
        """A fault's answer instead of the real one, or None to go on (after any delay)."""
        with self._lock:
            self.requests[provider] += 1
        fault = self._take_fault(provider)
        if fault is None:
            return None, None
        if fault.kind == "status":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return self._error(provider, fault.status, headers), fault
        if fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            return None, None
        if fault.kind in ("timeout", "hold") and not fault.accept:
            await self._stall(fault)
            return self._error(provider, 504, {}), fault
        return None, fault  # timeout / hold after accepting: handled by the endpoint

    async def _stall(self, fault: Fault) -> None:
        if fault.kind == "timeout":
            await asyncio.sleep(fault.seconds)
            return
        self.holding += 1
        try:
            assert self._release is not None
            await asyncio.wait_for(self._release.wait(), timeout=fault.seconds or 120)
        except TimeoutError:
            pass
        finally:
            self.holding -= 1

    def _error(self, provider: str, status: int, headers: dict[str, str], body: Any = None) -> web.Response:
        self._count(provider, status)
        if body is None:
            body = {"errors": [{"message": f"simulated {status}"}]} if provider == "sendgrid" else \
                {"code": 20429 if status == 429 else 20500, "message": f"simulated {status}", "status": status}
        return web.json_response(body, status=status, headers=headers)

    def _count(self, provider: str, status: int) -> None:
        with self._lock:
            self.responses[(provider, status)] += 1
            self.request_times[provider].append((time.monotonic(), status))

    def _keep(self, message: Recorded) -> None:
        with self._lock:
            self.recipients[(message.provider, message.to)] += 1
            if self.record == "full":
                self.messages.append(message)

    # --- SendGrid -----------------------------------------------------------------------------------

    async def sendgrid_send(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return self._error("sendgrid", 401, {})
        early, fault = await self._before("sendgrid")
        if early is not None:
            return early
        body = await request.json()
        personalizations = body.get("personalizations") or []
        if not personalizations or len(personalizations) > 1000:
            return self._error("sendgrid", 400, {}, {"errors": [{"message": "between 1 and 1000 personalizations",
                                                                  "field": "personalizations"}]})
        bad = [{"message": "Does not contain a valid address.", "field": f"personalizations.{i}.to.0.email"}
               for i, p in enumerate(personalizations) if "@" not in str((p.get("to") or [{}])[0].get("email", ""))]
        if bad:
            return self._error("sendgrid", 400, {}, {"errors": bad})
        content = {c["type"]: c["value"] for c in body.get("content") or []}
        message_id = secrets.token_urlsafe(16)
        for p in personalizations:
            text = content.get("text/plain", "")
            for tag, value in (p.get("substitutions") or {}).items():
                text = text.replace(tag, value)
            self._keep(Recorded("sendgrid", p["to"][0]["email"], text, p.get("subject") or body.get("subject"),
                                message_id, (p.get("custom_args") or {}).get("delivery_id"), p.get("headers") or {},
                                {"html": content.get("text/html"), "substitutions": p.get("substitutions")}
                                if self.record == "full" else {}))
        if fault is not None:  # accepted, then the answer is late or never comes in time
            await self._stall(fault)
        self._count("sendgrid", 202)
        return web.Response(status=202, headers={"X-Message-Id": message_id})

    # --- Twilio -------------------------------------------------------------------------------------

    def _twilio_auth(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        return user == request.match_info["sid"]

    async def twilio_create(self, request: web.Request) -> web.Response:
        if not self._twilio_auth(request):
            return self._error("twilio", 401, {}, {"code": 20003, "message": "Authenticate", "status": 401})
        early, fault = await self._before("twilio")
        if early is not None:
            return early
        form = await request.post()
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        if to.removeprefix("whatsapp:").endswith(self.invalid_suffix):
            return self._error("twilio", 400, {}, {"code": 21211, "status": 400,
                                                   "message": f"The 'To' number {to} is not a valid phone number.",
                                                   "more_info": "https://www.twilio.com/docs/errors/21211"})
        sid = "SM" + secrets.token_hex(16)
        callback = str(form.get("StatusCallback", ""))
        ref = callback.split("ref=", 1)[1] if "ref=" in callback else None
        sender = str(form.get("From") or form.get("MessagingServiceSid") or "")
        self._keep(Recorded("twilio", to, body, None, sid, ref, {}, {"from": sender, "callback": callback}
                            if self.record == "full" else {}))
        if fault is not None:
            await self._stall(fault)
        self._count("twilio", 201)
        return web.json_response(self._resource(request.match_info["sid"], sid, to, sender, body, time.time()),
                                 status=201)

    @staticmethod
    def _resource(account: str, sid: str, to: str, sender: str, body: str, created: float) -> dict[str, Any]:
        stamp = email.utils.formatdate(created, usegmt=True)
        return {"sid": sid, "account_sid": account, "to": to, "from": sender, "body": body, "status": "queued",
                "date_created": stamp, "date_updated": stamp, "date_sent": None, "direction": "outbound-api",
                "num_segments": "1", "api_version": "2010-04-01", "error_code": None, "error_message": None,
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json"}

    async def twilio_list(self, request: web.Request) -> web.Response:
        if not self._twilio_auth(request):
            return self._error("twilio", 401, {}, {"code": 20003, "message": "Authenticate", "status": 401})
        to = request.query.get("To")
        after = request.query.get("DateSent>")
        since = 0.0
        if after:
            parsed = email.utils.parsedate_to_datetime(after) if "," in after else None
            since = parsed.timestamp() if parsed else _iso_seconds(after)
        found = [m for m in self.accepted("twilio") if (not to or m.to == to) and m.created >= since - 1]
        account = request.match_info["sid"]
        self._count("twilio", 200)
        return web.json_response({
            "messages": [self._resource(account, m.sid, m.to, m.extra.get("from", ""), m.body, m.created)
                         for m in found],
            "first_page_uri": request.path_qs, "next_page_uri": None, "previous_page_uri": None, "page": 0,
            "page_size": len(found), "uri": request.path_qs, "start": 0, "end": max(0, len(found) - 1)})

    # --- FCM ----------------------------------------------------------------------------------------

    async def fcm_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not form.get("assertion"):
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": "local-" + secrets.token_hex(8), "expires_in": 3600,
                                  "token_type": "Bearer"})

    async def fcm_send(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer local-"):
            return self._error("fcm", 401, {}, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        early, fault = await self._before("fcm")
        if early is not None:
            return early
        message = (await request.json())["message"]
        token = message.get("token", "")
        if token.startswith("dead-"):
            return self._error("fcm", 404, {}, {"error": {"code": 404, "status": "NOT_FOUND", "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})
        name = f"projects/{request.match_info['project']}/messages/{secrets.randbelow(10**15)}"
        notification = message.get("notification") or {}
        self._keep(Recorded("fcm", token, notification.get("body", ""), notification.get("title"), name,
                            (message.get("data") or {}).get("delivery_id")))
        if fault is not None:
            await self._stall(fault)
        self._count("fcm", 200)
        return web.json_response({"name": name})

    # --- admin (for a server in another process) ----------------------------------------------------

    async def admin_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def admin_faults(self, request: web.Request) -> web.Response:
        spec = await request.json()
        self.add_fault(**spec)
        return web.json_response({"ok": True})

    async def admin_reset(self, _request: web.Request) -> web.Response:
        self.clear()
        return web.json_response({"ok": True})

    async def admin_release(self, _request: web.Request) -> web.Response:
        self.release()
        return web.json_response({"ok": True})


def _iso_seconds(value: str) -> float:
    import datetime as dt

    text = value.replace("Z", "+00:00")
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return dt.datetime.fromisoformat(text[:10]).replace(tzinfo=dt.UTC).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description="local SendGrid / Twilio / FCM server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", choices=("full", "keys"), default="keys")
    parser.add_argument("--invalid-suffix", default="0000", help="Twilio refuses numbers ending like this")
    args = parser.parse_args()
    server = ProviderServer(record=args.record, invalid_suffix=args.invalid_suffix)

    async def run() -> None:
        await server.serve(args.port)
        print(f"listening on {server.port}", flush=True)
        await asyncio.Event().wait()

    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run())


if __name__ == "__main__":
    main()
