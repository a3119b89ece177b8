"""A local HTTP server speaking the parts of Razorpay's API the engine uses (orders, payment
refunds, transfers), for the real SDK to talk to over loopback. Misbehaviour on demand:

  mode "normal"                 answers as Razorpay does
  mode "timeout_after_success"  does the work, then answers too late (the client times out)
  mode "drop_after_success"     does the work, then closes the connection without answering
  mode "pause_after_success"    does the work, sets `created`, then answers only once the test
                                sets `release` (a deterministic point to kill a worker at)
  mode "5xx"                    does nothing and answers 503 SERVER_ERROR
  mode "429"                    does nothing and answers 429 (Razorpay's code says BAD_REQUEST_ERROR)
  mode "reject"                 does nothing and answers 400 BAD_REQUEST_ERROR with a reason

`honour_idempotency` makes a transfer POST with a known X-Payout-Idempotency key return the first
transfer instead of making a second; off, only the engine's own look-up prevents a double payment.

GET /v1/transfers pages as Razorpay's does: newest first, `from`/`to` (unix seconds, inclusive),
`count` (default 10, at most 100) and `skip`. `other_transfers(n)` makes n transfers to other
accounts (other payouts made meanwhile).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

KEY_ID, KEY_SECRET = "rzp_test_local", "local-key-secret"


class FakeRazorpay:
    def __init__(self) -> None:
        self.mode = "normal"
        self.delay = 1.5
        self.honour_idempotency = True
        self.transfer_status = "processed"
        self.reject_reason = "The linked account is not activated"
        self.orders: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.transfers: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.queries: list[dict[str, str]] = []  # the query string of each request, in order
        self.request_headers: list[dict[str, str]] = []  # lower-cased, per request, in order
        self.created = threading.Event()  # pause_after_success: the transfer exists
        self.release = threading.Event()  # pause_after_success: answer now
        self._by_key: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeRazorpay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        self.mode, self.honour_idempotency, self.transfer_status = "normal", True, "processed"
        self.release.set()  # a paused answer from an earlier test goes out (to nobody, perhaps)
        self.created, self.release = threading.Event(), threading.Event()

    def other_transfers(self, count: int) -> None:
        """Transfers to other linked accounts, as other payouts made meanwhile would be."""
        with self._lock:
            for _ in range(count):
                self.transfers.append({
                    "id": f"trf_{secrets.token_hex(7)}", "entity": "transfer", "status": "processed",
                    "recipient": f"acc_Other{secrets.token_hex(5)}", "amount": 100 + secrets.randbelow(10**7),
                    "currency": "INR", "notes": {"idempotency_key": f"other_{secrets.token_hex(6)}"},
                    "created_at": int(time.time())})

    def transfers_with_key(self, key: str) -> list[dict[str, Any]]:
        return [t for t in self.transfers if t["notes"].get("idempotency_key") == key]

    # --- the API ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str],
               query: dict[str, str] | None = None) -> tuple[int, Any]:
        self.requests.append((method, path))
        self.queries.append(query or {})
        self.request_headers.append(headers)
        if method == "POST" and self.mode in ("5xx", "429", "reject"):
            if self.mode == "5xx":
                return 503, {"error": {"code": "SERVER_ERROR", "description": "The server is temporarily down"}}
            if self.mode == "429":
                return 429, {"error": {"code": "BAD_REQUEST_ERROR", "description": "Too many requests"}}
            return 400, {"error": {"code": "BAD_REQUEST_ERROR", "description": self.reject_reason}}
        with self._lock:
            if method == "POST" and path == "/v1/orders":
                order = {"id": f"order_{secrets.token_hex(7)}", "entity": "order", "amount": int(body["amount"]),
                         "currency": body.get("currency", "INR"), "receipt": body.get("receipt"),
                         "status": "created", "notes": body.get("notes", {}), "created_at": int(time.time())}
                self.orders[order["id"]] = order
                return 200, order
            if method == "POST" and (m := re.fullmatch(r"/v1/payments/([^/]+)/refund", path)):
                refund = {"id": f"rfnd_{secrets.token_hex(7)}", "entity": "refund", "amount": int(body["amount"]),
                          "payment_id": m.group(1), "receipt": body.get("receipt"), "notes": body.get("notes", {}),
                          "status": "processed", "created_at": int(time.time())}
                self.refunds.append(refund)
                return 200, refund
            if method == "GET" and (m := re.fullmatch(r"/v1/payments/([^/]+)/refunds", path)):
                items = [r for r in self.refunds if r["payment_id"] == m.group(1)]
                return 200, {"entity": "collection", "count": len(items), "items": items}
            if method == "POST" and path == "/v1/transfers":
                key = headers.get("x-payout-idempotency")
                if self.honour_idempotency and key and key in self._by_key:
                    return 200, self._by_key[key]
                transfer = {"id": f"trf_{secrets.token_hex(7)}", "entity": "transfer", "status": self.transfer_status,
                            "recipient": body["account"], "amount": int(body["amount"]),
                            "currency": body.get("currency", "INR"), "notes": body.get("notes", {}),
                            "created_at": int(time.time())}
                self.transfers.append(transfer)
                if key:
                    self._by_key[key] = transfer
                return 200, transfer
            if method == "GET" and path == "/v1/transfers":
                return self._page(self.transfers, query or {})
            if method == "GET" and (m := re.fullmatch(r"/v1/transfers/([^/]+)", path)):
                found = [t for t in self.transfers if t["id"] == m.group(1)]
                if not found:
                    return 400, {"error": {"code": "BAD_REQUEST_ERROR",
                                           "description": "The id provided does not exist"}}
                return 200, found[0]
        return 404, {"error": {"code": "BAD_REQUEST_ERROR", "description": f"no route {method} {path}"}}

    @staticmethod
    def _page(entities: list[dict[str, Any]], query: dict[str, str]) -> tuple[int, Any]:
        try:
            count, skip = int(query.get("count", 10)), int(query.get("skip", 0))
            start, end = int(query.get("from", 0)), int(query.get("to", 2**62))
        except ValueError:
            return 400, {"error": {"code": "BAD_REQUEST_ERROR", "description": "from, to, count and skip are integers"}}
        if not 1 <= count <= 100 or skip < 0:
            return 400, {"error": {"code": "BAD_REQUEST_ERROR",
                                   "description": "The count must be between 1 and 100; skip at least 0."}}
        # Newest first; entities made in one second keep their order (newest last made first).
        chosen = [e for e in reversed(entities) if start <= e["created_at"] <= end][skip:skip + count]
        return 200, {"entity": "collection", "count": len(chosen), "items": chosen}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                expected = "Basic " + base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    status, payload = 401, {"error": {"code": "BAD_REQUEST_ERROR",
                                                      "description": "Authentication failed"}}
                else:
                    body = json.loads(raw) if raw else {}
                    path, _, query = self.path.partition("?")
                    # The mode and events as this request found them: a late answer of an earlier
                    # test must not act on the next test's mode.
                    mode, created, release = fake.mode, fake.created, fake.release
                    status, payload = fake.handle(method, path, body, {k.lower(): v for k, v in self.headers.items()},
                                                  {k: v[-1] for k, v in parse_qs(query).items()})
                    done = method == "POST" and status == 200
                    if done and mode == "timeout_after_success":
                        time.sleep(fake.delay)  # the work is done; the answer comes after the client gave up
                    if done and mode == "drop_after_success":
                        self.connection.shutdown(socket.SHUT_RDWR)  # the work is done; no answer at all
                        self.close_connection = True
                        return
                    if done and mode == "pause_after_success":
                        created.set()
                        release.wait(300)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        return Handler
