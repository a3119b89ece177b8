"""A local HTTP server speaking the parts of Razorpay's API the engine uses (orders, payment
refunds, transfers), for the real SDK to talk to over loopback. Misbehaviour on demand:

  mode "normal"                 answers as Razorpay does
  mode "timeout_after_success"  does the work, then answers too late (the client times out)
  mode "5xx"                    does nothing and answers 503 SERVER_ERROR
  mode "429"                    does nothing and answers 429 (Razorpay's code says BAD_REQUEST_ERROR)
  mode "reject"                 does nothing and answers 400 BAD_REQUEST_ERROR with a reason

`honour_idempotency` makes a transfer POST with a known X-Payout-Idempotency key return the first
transfer instead of making a second; off, only the engine's own look-up prevents a double payment.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
        self.request_headers: list[dict[str, str]] = []  # lower-cased, per request, in order
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

    # --- the API ---------------------------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        self.requests.append((method, path))
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
                items = list(reversed(self.transfers))
                return 200, {"entity": "collection", "count": len(items), "items": items}
            if method == "GET" and (m := re.fullmatch(r"/v1/transfers/([^/]+)", path)):
                found = [t for t in self.transfers if t["id"] == m.group(1)]
                if not found:
                    return 400, {"error": {"code": "BAD_REQUEST_ERROR",
                                           "description": "The id provided does not exist"}}
                return 200, found[0]
        return 404, {"error": {"code": "BAD_REQUEST_ERROR", "description": f"no route {method} {path}"}}

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
                    path = self.path.split("?", 1)[0]
                    status, payload = fake.handle(method, path, body, {k.lower(): v for k, v in self.headers.items()})
                    if method == "POST" and fake.mode == "timeout_after_success" and status == 200:
                        time.sleep(fake.delay)  # the work is done; the answer comes after the client gave up
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
