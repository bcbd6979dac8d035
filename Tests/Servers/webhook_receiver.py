#!/usr/bin/env python3
"""A webhook receiver for rollbackd's tests. Every request is verified with the `standardwebhooks` package (an
implementation independent of rollbackd's) and appended as one JSON line to --log:
  {"path", "id", "timestamp", "verified", "error", "type", "body", "t", "authorization"}

Prints "READY <port>" once listening on 127.0.0.1 (--port 0: any free port) and exits when its parent goes away.

Paths (the webhook URL chooses the behaviour):
  /ok                 204 when the signature verifies, 401 when it does not
  /status/NNN         always status NNN
  /retry-after/S      the first request of each webhook-id: 429 with "Retry-After: S"; later ones as /ok
  /fail/N             the first N requests (all ids): 503; later ones as /ok
  /slow/MS            as /ok after MS milliseconds
  /hold/N             the first N requests (all ids) as /ok; later ones wait until the file <--log>.release exists
                      (at most 10 minutes), then as /ok: delivery stops at a point the test chooses
  /hang               records the request, then never answers
  /pagerduty/KEY      checks the body against PagerDuty's Events API v2 documentation (developer.pagerduty.com,
                      "Send an Alert Event"), with KEY as the routing key; 202 {"status": "success", ...} or
                      400 {"status": "invalid event", "errors": [...]}, as PagerDuty answers
  /teams              checks the body against Microsoft's "Send Adaptive Cards using an Incoming Webhook" (a
                      message with Adaptive Card attachments); 200 "1" or 400
The provider paths add "shape": null (the body has the documented shape) or the first problem found.
"""
import argparse
import datetime
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

lock = threading.Lock()

PD_TOP = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
PD_PAYLOAD = {"summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"}


def pagerduty_problem(body, key):
    """The first way `body` departs from an Events API v2 alert event, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    extra = set(body) - PD_TOP
    if extra:
        return f"unknown top-level fields {sorted(extra)}"
    if body.get("routing_key") != key:
        return f"routing_key is {body.get('routing_key')!r}, not the integration key"
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        return f"event_action {action!r} is not trigger, acknowledge or resolve"
    dedup = body.get("dedup_key")
    if not isinstance(dedup, str) or not dedup or len(dedup) > 255:
        return "dedup_key must be a string of 1 to 255 characters (rollbackd keys every event)"
    if action != "trigger":
        if set(body) != {"routing_key", "event_action", "dedup_key"}:
            return f"{action} carries only routing_key, dedup_key and event_action, not {sorted(body)}"
        return None
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return "a trigger needs a payload object"
    extra = set(payload) - PD_PAYLOAD
    if extra:
        return f"unknown payload fields {sorted(extra)}"
    for field in ("summary", "source", "severity"):
        if not isinstance(payload.get(field), str) or not payload[field]:
            return f"payload.{field} is required (a non-empty string)"
    if len(payload["summary"]) > 1024:
        return "payload.summary is longer than 1024 characters"
    if payload["severity"] not in ("critical", "error", "warning", "info"):
        return f"payload.severity {payload['severity']!r} is not critical, error, warning or info"
    if "timestamp" in payload:
        try:
            datetime.datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
        except Exception:
            return f"payload.timestamp {payload['timestamp']!r} is not an ISO 8601 time"
    for field in ("component", "group", "class"):
        if field in payload and not isinstance(payload[field], str):
            return f"payload.{field} must be a string"
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        return "payload.custom_details must be an object"
    if "client" in body and not isinstance(body["client"], str):
        return "client must be a string"
    return None


def teams_problem(body):
    """The first way `body` departs from a Teams message with Adaptive Card attachments, or None."""
    if not isinstance(body, dict) or body.get("type") != "message":
        return 'the "type" field must be "message"'
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return '"attachments" must be a non-empty array of cards'
    for a in attachments:
        if not isinstance(a, dict) or a.get("contentType") != "application/vnd.microsoft.card.adaptive":
            return '"contentType" must be "application/vnd.microsoft.card.adaptive"'
        if "contentUrl" in a and a["contentUrl"] is not None:
            return '"contentUrl" must be null'
        card = a.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return '"content" must be an AdaptiveCard object'
        if card.get("$schema") != "http://adaptivecards.io/schemas/adaptive-card.json":
            return "the card's $schema is not the Adaptive Card schema"
        if not isinstance(card.get("version"), str):
            return "the card needs a version string"
        elements = card.get("body")
        if not isinstance(elements, list) or not elements:
            return "the card's body must be a non-empty array"
        for e in elements:
            kind = e.get("type") if isinstance(e, dict) else None
            if kind == "TextBlock":
                if not isinstance(e.get("text"), str) or not e["text"]:
                    return "a TextBlock needs a text"
            elif kind == "FactSet":
                facts = e.get("facts")
                if not isinstance(facts, list) or not all(
                        isinstance(f, dict) and set(f) == {"title", "value"}
                        and all(isinstance(v, str) for v in f.values()) for f in facts):
                    return "a FactSet's facts must be {title, value} strings"
            else:
                return f"unexpected card element {kind!r}"
        if any(k in card for k in ("actions",)) and any(
                x.get("type") == "Action.Submit" for x in card.get("actions", [])):
            return "Action.Submit is not supported by incoming webhooks"
    return None
seen_ids = set()
failures = [0]
answered = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def answer_json(self, status, value):
        self.answer_text(status, json.dumps(value), "application/json")

    def answer_text(self, status, text, content_type="text/plain"):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified, error = False, None
        try:
            self.server.webhook.verify(body, headers)
            verified = True
        except (WebhookVerificationError, Exception) as e:  # any failure is a failed verification
            error = f"{type(e).__name__}: {e}"
        try:
            parsed = json.loads(body)
        except Exception:
            parsed = body.decode("utf-8", "replace")
        record = {"path": self.path, "id": headers.get("webhook-id"), "timestamp": headers.get("webhook-timestamp"),
                  "verified": verified, "error": error, "type": parsed.get("type") if isinstance(parsed, dict) else None,
                  "body": parsed, "t": time.time(), "authorization": headers.get("authorization")}
        parts = self.path.strip("/").split("/")
        if parts[0] == "pagerduty":
            record["shape"] = pagerduty_problem(parsed, parts[1] if len(parts) > 1 else "")
        elif parts[0] == "teams":
            record["shape"] = teams_problem(parsed)
        msg_id = headers.get("webhook-id")
        with lock:
            first_time = msg_id not in seen_ids
            seen_ids.add(msg_id)
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()

        kind = parts[0]
        if kind == "pagerduty":
            problem = record["shape"]
            reply = {"status": "success", "message": "Event processed", "dedup_key": parsed.get("dedup_key")} \
                if problem is None else {"status": "invalid event", "message": "Event object is invalid",
                                         "errors": [problem]}
            self.answer_json(202 if problem is None else 400, reply)
            return
        if kind == "teams":
            problem = record["shape"]
            self.answer_text(200 if problem is None else 400, "1" if problem is None else problem)
            return
        if kind == "hang":
            time.sleep(3600)
            return
        if kind == "status":
            self.answer(int(parts[1]))
            return
        if kind == "retry-after" and first_time:
            self.answer(429, {"Retry-After": parts[1]})
            return
        if kind == "fail":
            with lock:
                failures[0] += 1
                failing = failures[0] <= int(parts[1])
            if failing:
                self.answer(503)
                return
        if kind == "slow":
            time.sleep(int(parts[1]) / 1000)
        if kind == "hold":
            with lock:
                answered[0] += 1
                held = answered[0] > int(parts[1])
            deadline = time.time() + 600
            while held and not os.path.exists(self.server.log_path + ".release") and time.time() < deadline:
                time.sleep(0.05)
        self.answer(204 if verified else 401)


def watch_parent():
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main():
    # A child of a Swift test process inherits a signal mask that blocks SIGTERM (the dispatch threads block
    # signals); unblock it so being stopped is immediate.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.webhook = Webhook(args.secret)
    server.log_path = args.log
    threading.Thread(target=watch_parent, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
