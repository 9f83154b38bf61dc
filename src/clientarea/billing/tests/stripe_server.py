"""A local Stripe-compatible API server for the tests of the Stripe driver.

It speaks the part of Stripe's REST API the driver uses, as Stripe publishes it: HTTP on
loopback, form-encoded request bodies with bracket notation (``metadata[account]=7``,
``expand[0]=latest_charge``), JSON answers, ``Authorization: Bearer sk_test_...``, the
``Idempotency-Key`` header (a POST repeated with the same key and parameters gets the
first answer again, marked ``Idempotent-Replayed: true``; with other parameters, an
``idempotency_error``), and error objects ``{"error": {"type", "code", "decline_code",
"message", "param"}}`` with Stripe's HTTP statuses (400 invalid request, 401 bad key,
402 card error, 404 missing object, 500 its own error).

Every request is first validated against the operations transcribed from Stripe's
OpenAPI description (``billing/vendor/stripe/operations.json``): an unknown parameter, a
missing required one, a wrong type or a value outside an enum is answered 400, as Stripe
does, and kept in ``invalid_requests`` so a test can assert the driver sent none.

Test payment methods (Stripe's own names for its test cards):

    ======================================  =====================================
    payment method                          on confirmation
    ======================================  =====================================
    pm_card_visa, pm_card_mastercard,       succeeds
    pm_card_amex, pm_card_discover,
    pm_card_diners, pm_card_jcb,
    pm_card_unionpay
    pm_card_chargeDeclined                  402 card_declined / generic_decline
    pm_card_chargeDeclinedInsufficientFunds 402 card_declined / insufficient_funds
    pm_card_chargeDeclinedProcessingError   402 processing_error
    pm_card_authenticationRequired          on session: requires_action (3-D Secure,
                                            ``complete_authentication`` ends it);
                                            off session: 402 authentication_required
    pm_card_authenticationRequiredOnSetup   as above, until set up (a SetupIntent, or
                                            a payment with setup_future_usage, with
                                            3-D Secure passed): then it pays off
                                            session without authentication
    ======================================  =====================================

As at Stripe, a test card named in a request is cloned into a new PaymentMethod (pm_...)
for that intent; a PaymentMethod attached to a customer is refused (400) with no
``customer`` or another one; a payment with ``setup_future_usage`` (or a SetupIntent) that
succeeds attaches its PaymentMethod to the intent's customer. SetupIntents created with
``payment_method`` and ``confirm=true`` answer as payments do (402 for a refused card,
requires_action with a redirect for 3-D Secure). ``POST .../cancel`` cancels an intent
still waiting (requires_payment_method, requires_confirmation, requires_action) and
refuses any other (400 payment_intent_unexpected_state). ``create_payment_method`` is
the browser's ``stripe.createPaymentMethod``: a new PaymentMethod of a test card, whose id
the page posts to us. ``hold_next_in_processing``
leaves the next confirmations "processing" until ``settle_processing``.

Refunds: ``POST /v1/refunds`` refunds a succeeded intent's charge (at most what is left of
it, keeping ``metadata``), ``GET /v1/refunds`` lists them (newest first, by
``payment_intent`` or ``charge``). ``refund_status`` makes the next refunds "pending"
until ``settle_refund``; ``refund_outside`` is a refund made in Stripe's dashboard;
``charge_of`` gives the charge as a ``charge.refunded`` event carries it.

Failures of the network, switched on by the tests (``fail_next``): ``"timeout"`` (the
request is carried out, the answer never comes), ``"drop"`` (carried out, then the
connection is closed without an answer), ``"drop_before"`` (closed before anything is
done), ``"500"`` (Stripe's own error, nothing done) and ``"429"`` (rate limited, nothing
done).
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import stripe

OPERATIONS_FILE = Path(__file__).resolve().parent.parent / "vendor" / "stripe" / "operations.json"
FAILURES = ("timeout", "drop", "drop_before", "500", "429")

# name: (brand, last4, outcome)
TEST_CARDS: dict[str, tuple[str, str, str]] = {
    "pm_card_visa": ("visa", "4242", "ok"),
    "pm_card_mastercard": ("mastercard", "4444", "ok"),
    "pm_card_amex": ("amex", "0005", "ok"),
    "pm_card_discover": ("discover", "1117", "ok"),
    "pm_card_diners": ("diners", "0004", "ok"),
    "pm_card_jcb": ("jcb", "0505", "ok"),
    "pm_card_unionpay": ("unionpay", "0005", "ok"),
    "pm_card_chargeDeclined": ("visa", "0002", "declined"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995", "insufficient_funds"),
    "pm_card_chargeDeclinedProcessingError": ("visa", "0119", "processing_error"),
    "pm_card_authenticationRequired": ("visa", "3184", "authentication_required"),
    "pm_card_authenticationRequiredOnSetup": ("visa", "3155", "authentication_required_on_setup"),
}

DECLINES: dict[str, tuple[str, str, str]] = {
    # outcome: (code, decline_code, message), as Stripe answers them
    "declined": ("card_declined", "generic_decline", "Your card was declined."),
    "insufficient_funds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "processing_error": (
        "processing_error",
        "",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "authentication_required": (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str = "",
        param: str = "",
        decline_code: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        body: dict[str, Any] = {"type": type, "message": message}
        if code:
            body["code"] = code
        if param:
            body["param"] = param
        if decline_code:
            body["decline_code"] = decline_code
        body.update(extra or {})
        self.body = {"error": body}


def _missing(kind: str, object_id: str, param: str) -> ApiError:
    return ApiError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


# --- parsing and validation ---------------------------------------------------------------


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket notation into nested dicts (arrays stay dicts of "0", "1"...)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        match = re.fullmatch(r"([^\[\]]+)((?:\[[^\[\]]*\])*)", key)
        if match is None:
            raise ApiError(400, f"Invalid parameter name: {key}", code="parameter_invalid")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # "expand[]": append
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ApiError(400, f"Invalid parameter: {key}", code="parameter_invalid")
                node = child
    return out


def _problems(value: Any, schema: dict[str, Any], name: str) -> list[str]:
    if "anyOf" in schema:
        options = [_problems(value, option, name) for option in schema["anyOf"]]
        if any(not found for found in options):
            return []
        return min(options, key=len)
    kind = schema.get("type", "any")
    if kind == "any":
        return []
    if kind == "object":
        if not isinstance(value, dict):
            return [f"Invalid object: {name}"]
        found: list[str] = []
        props = schema.get("properties", {})
        for key, sub in value.items():
            if key in props:
                found += _problems(sub, props[key], f"{name}[{key}]")
            elif "values" in schema:
                found += _problems(sub, schema["values"], f"{name}[{key}]")
            else:
                found.append(f"Received unknown parameter: {name}[{key}]")
        found += [
            f"Missing required param: {name}[{key}]."
            for key in schema.get("required", [])
            if key not in value
        ]
        return found
    if kind == "array":
        if not isinstance(value, dict) or sorted(value, key=int) != [
            str(i) for i in range(len(value))
        ]:
            return [f"Invalid array: {name}"]
        items = schema.get("items", {"type": "any"})
        return [
            p for i in range(len(value)) for p in _problems(value[str(i)], items, f"{name}[{i}]")
        ]
    if not isinstance(value, str):
        return [f"Invalid {kind}: {name}"]
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        return [f"Invalid integer: {value}"]
    if kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
        return [f"Invalid number: {value}"]
    if kind == "boolean" and value not in ("true", "false"):
        return [f"Invalid boolean: {value}"]
    if "enum" in schema and value not in [
        str(v).lower() if isinstance(v, bool) else v for v in schema["enum"]
    ]:
        return [f"Invalid {name}: must be one of {', '.join(map(str, schema['enum']))}"]
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return [f"Invalid {name}: must be at most {schema['maxLength']} characters"]
    return []


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]


def load_operations() -> list[Operation]:
    data = json.loads(OPERATIONS_FILE.read_text())
    operations = []
    for key, spec in data["operations"].items():
        method, template = key.split(" ", 1)
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        operations.append(Operation(method, template, re.compile(f"^{regex}$"), spec))
    # A fixed path ("/v1/payment_intents/search") before a template that also matches it.
    return sorted(operations, key=lambda op: op.template.count("{"))


def validate(operation: Operation, params: dict[str, Any]) -> None:
    schema = {
        "type": "object",
        "properties": operation.spec["params"],
        "required": operation.spec["required"],
    }
    problems = _problems(params, schema, "")
    if problems:
        # Stripe names a top-level parameter without brackets.
        message = re.sub(r"(?<![\w\]])\[(\w+)\]", r"\1", problems[0], count=1)
        raise ApiError(
            400, message, code="parameter_unknown" if "unknown" in message else "parameter_invalid"
        )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value[str(i)] for i in range(len(value))]
    return []


# --- the server ---------------------------------------------------------------------------


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class State:
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    setup_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # idempotency key: (fingerprint, status, body)
    idempotent: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)


class StripeServer:
    def __init__(self, secret_key: str = "sk_test_local0123456789abcdef") -> None:
        self.secret_key = secret_key
        self.operations = load_operations()
        self.state = State()
        self.lock = threading.RLock()
        # (failure, "METHOD /path" it is meant for, or "" for any request)
        self.failures: list[tuple[str, str]] = []
        # How many of the next successful confirmations stay "processing".
        self.processing_next = 0
        # The status of the next refunds made ("pending": settled by settle_refund).
        self.refund_status: list[str] = []
        self.requests: list[Recorded] = []
        self.invalid_requests: list[tuple[Recorded, str]] = []
        self.hang = threading.Event()
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        for name in TEST_CARDS:
            self.state.payment_methods[name] = self._card_object(name, name)

    # lifecycle

    def start(self) -> StripeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.hang.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    @property
    def base_url(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_next(self, *failures: str, on: str = "") -> None:
        """The next requests fail so, one failure each. With `on` ("POST
        /v1/payment_intents"), only requests of that method and path do; the others
        (reading the card first, say) are answered as usual."""
        unknown = set(failures) - set(FAILURES)
        if unknown:
            raise ValueError(f"unknown failure {sorted(unknown)}")
        with self.lock:
            self.failures.extend((failure, on) for failure in failures)

    def _next_failure(self, method: str, path: str) -> str:
        """The first failure waiting for this request ("" for none), taken."""
        with self.lock:
            for i, (failure, on) in enumerate(self.failures):
                if not on or on == f"{method} {path}":
                    del self.failures[i]
                    return failure
            return ""

    # the browser's side, which no server call of ours can do

    def complete_authentication(self, intent_id: str, *, succeed: bool) -> dict[str, Any]:
        """The customer passes (or fails) the 3-D Secure challenge of a requires_action
        intent (a PaymentIntent, or a SetupIntent: seti_...), as Stripe.js would report
        it."""
        if intent_id.startswith("seti_"):
            return self._complete_setup_authentication(intent_id, succeed=succeed)
        with self.lock:
            intent = self.state.payment_intents[intent_id]
            assert intent["status"] == "requires_action", intent["status"]
            intent["next_action"] = None
            if succeed:
                self._charge(intent)
            else:
                intent["status"] = "requires_payment_method"
                intent["last_payment_error"] = {
                    "type": "invalid_request_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication. You can "
                    "provide payment_method_data or a new PaymentMethod to attempt to "
                    "fulfill this PaymentIntent again.",
                    "payment_method": self._public(
                        self.state.payment_methods[intent["payment_method"]]
                    ),
                }
            return dict(intent)

    def _complete_setup_authentication(self, intent_id: str, *, succeed: bool) -> dict[str, Any]:
        with self.lock:
            intent = self.state.setup_intents[intent_id]
            assert intent["status"] == "requires_action", intent["status"]
            intent["next_action"] = None
            if succeed:
                self._setup_succeed(intent)
            else:
                intent["status"] = "requires_payment_method"
                intent["last_setup_error"] = {
                    "type": "invalid_request_error",
                    "code": "setup_intent_authentication_failure",
                    "message": "The latest attempt to set up the payment method has failed "
                    "because authentication failed.",
                    "payment_method": self._public(
                        self.state.payment_methods[intent["payment_method"]]
                    ),
                }
            return dict(intent)

    def create_payment_method(self, card: str = "pm_card_visa") -> str:
        """The browser's ``stripe.createPaymentMethod({elements})``: the card typed into
        the Payment Element (the test card `card`) becomes a new PaymentMethod, attached
        to no customer. Returns its id, which the page posts to us."""
        with self.lock:
            pm_id = _id("pm")
            self.state.payment_methods[pm_id] = self._card_object(pm_id, card)
            return pm_id

    def hold_next_in_processing(self, count: int = 1) -> None:
        """The next `count` confirmations that would succeed stay "processing" (as
        Stripe may leave a payment for a while); ``settle_processing`` ends each."""
        with self.lock:
            self.processing_next += count

    def confirm_setup_intent(self, setup_intent_id: str, card: str = "pm_card_visa") -> str:
        """The customer enters a card in the Payment Element of a SetupIntent: a new
        PaymentMethod attached to the intent's customer. Returns its id."""
        with self.lock:
            intent = self.state.setup_intents[setup_intent_id]
            pm_id = _id("pm")
            method = self._card_object(pm_id, card)
            method["customer"] = intent["customer"]
            self.state.payment_methods[pm_id] = method
            intent.update(status="succeeded", payment_method=pm_id)
            return pm_id

    def settle_processing(self, intent_id: str, *, succeed: bool) -> dict[str, Any]:
        """An intent left "processing" (as bank debits are) reaches its final state."""
        with self.lock:
            intent = self.state.payment_intents[intent_id]
            if succeed:
                self._charge(intent)
            else:
                intent["status"] = "requires_payment_method"
            return dict(intent)

    # webhooks

    def event(
        self, type: str, obj: dict[str, Any], *, event_id: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": event_id or _id("evt"),
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "type": type,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": _id("req"), "idempotency_key": None},
            "data": {"object": obj},
        }

    def intent(self, intent_id: str) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self.state.payment_intents[intent_id]))

    @staticmethod
    def sign(payload: str, secret: str, *, timestamp: int | None = None) -> str:
        """The Stripe-Signature header Stripe sends with `payload`."""
        return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp)

    def send_event(
        self, url: str, event: dict[str, Any], secret: str, *, timestamp: int | None = None
    ) -> httpx.Response:
        payload = json.dumps(event, indent=2)
        return httpx.post(
            url,
            content=payload.encode(),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": self.sign(payload, secret, timestamp=timestamp),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
        )

    # HTTP

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if url.path.startswith("/3ds/"):
            self._challenge(handler, method, url.path, parse_qsl(body))
            return
        failure = self._next_failure(method, url.path)
        if failure == "drop_before":
            self._drop(handler)
            return
        status, answer, replayed = self._answer(
            method, url.path, url.query, body, headers, refuse=failure
        )
        if failure == "timeout":
            self.hang.wait(30)
            self._drop(handler)
            return
        if failure == "drop":
            self._drop(handler)
            return
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.send_header("Request-Id", _id("req"))
        if replayed:
            handler.send_header("Idempotent-Replayed", "true")
        handler.end_headers()
        handler.wfile.write(payload)

    def _challenge(
        self, handler: BaseHTTPRequestHandler, method: str, path: str, form: list[tuple[str, str]]
    ) -> None:
        """The bank's 3-D Secure page that ``next_action.redirect_to_url.url`` points to
        (for browser tests): GET shows it, POST ``result=succeed|fail`` ends the challenge
        and sends the browser to the intent's return_url, with the query Stripe adds."""
        intent_id = path.removeprefix("/3ds/")
        setup = intent_id.startswith("seti_")
        with self.lock:
            objects = self.state.setup_intents if setup else self.state.payment_intents
            intent = objects.get(intent_id)
            action = (intent or {}).get("next_action") or {}
        if intent is None or action.get("type") != "redirect_to_url":
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if method == "GET":
            page = (
                "<!doctype html><title>3-D Secure test page</title>"
                f'<form method="post" action="/3ds/{intent_id}">'
                '<button name="result" value="succeed">Complete authentication</button>'
                '<button name="result" value="fail">Fail authentication</button></form>'
            ).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
            return
        return_url = action["redirect_to_url"]["return_url"]
        done = self.complete_authentication(
            intent_id, succeed=dict(form).get("result") == "succeed"
        )
        kind = "setup_intent" if setup else "payment_intent"
        query = urlencode(
            {
                kind: intent_id,
                f"{kind}_client_secret": done["client_secret"],
                "redirect_status": "succeeded" if done["status"] == "succeeded" else "failed",
            }
        )
        handler.send_response(303)
        handler.send_header("Location", f"{return_url}{'&' if '?' in return_url else '?'}{query}")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    @staticmethod
    def _drop(handler: BaseHTTPRequestHandler) -> None:
        handler.close_connection = True
        with suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    def _answer(
        self,
        method: str,
        path: str,
        query: str,
        body: str,
        headers: dict[str, str],
        *,
        refuse: str = "",
    ) -> tuple[int, dict[str, Any], bool]:
        """Validate and carry out one request: (status, answer, replayed). With `refuse`
        "500" or "429", Stripe answers that error after validation and does nothing."""
        source = body if method == "POST" else query
        try:
            params = parse_form(parse_qsl(source, keep_blank_values=True))
        except ApiError as exc:
            return exc.status, exc.body, False
        recorded = Recorded(method, path, params, headers)
        with self.lock:
            self.requests.append(recorded)
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return 401, ApiError(401, "You did not provide an API key.").body, False
        if auth.removeprefix("Bearer ") != self.secret_key:
            key = auth.removeprefix("Bearer ")
            shown = f"{key[:8]}{'*' * 12}{key[-4:]}" if len(key) > 12 else "****"
            return 401, ApiError(401, f"Invalid API Key provided: {shown}").body, False
        for operation in self.operations:
            match = operation.pattern.match(path)
            if match and operation.method == method:
                break
        else:
            return 404, ApiError(404, f"Unrecognized request URL ({method}: {path}).").body, False
        try:
            validate(operation, params)
        except ApiError as exc:
            with self.lock:
                self.invalid_requests.append((recorded, str(exc)))
            return exc.status, exc.body, False
        if refuse == "500":
            return 500, ApiError(500, "An unknown error occurred", type="api_error").body, False
        if refuse == "429":
            message = "Too many requests hit the API too quickly."
            return 429, ApiError(429, message, code="rate_limit").body, False
        key = headers.get("idempotency-key", "") if method == "POST" else ""
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        with self.lock:
            if key and key in self.state.idempotent:
                first, status, answer = self.state.idempotent[key]
                if first != fingerprint:
                    return (
                        400,
                        ApiError(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other "
                            "than '" + key + "' if you meant to execute a different request.",
                            type="idempotency_error",
                        ).body,
                        False,
                    )
                return status, answer, True
            try:
                status, answer = 200, self._dispatch(operation, match.groupdict(), params)
            except ApiError as exc:
                if exc.body["error"]["type"] == "invalid_request_error" and exc.status == 400:
                    return exc.status, exc.body, False  # not saved, as at Stripe
                status, answer = exc.status, exc.body
            if key:
                self.state.idempotent[key] = (fingerprint, status, answer)
            return status, answer, False

    def _dispatch(
        self, operation: Operation, args: dict[str, str], params: dict[str, Any]
    ) -> dict[str, Any]:
        handler: Callable[..., dict[str, Any]] = {
            "POST /v1/customers": self._customer_create,
            "GET /v1/customers/{customer}": self._customer_get,
            "POST /v1/payment_intents": self._intent_create,
            "GET /v1/payment_intents/{intent}": self._intent_get,
            "GET /v1/payment_intents/search": self._intent_search,
            "POST /v1/payment_intents/{intent}/confirm": self._intent_confirm,
            "POST /v1/payment_intents/{intent}/cancel": self._intent_cancel,
            "POST /v1/setup_intents": self._setup_create,
            "GET /v1/setup_intents/{intent}": self._setup_get,
            "GET /v1/payment_methods/{payment_method}": self._method_get,
            "POST /v1/payment_methods/{payment_method}/detach": self._method_detach,
            "POST /v1/refunds": self._refund_create,
            "GET /v1/refunds": self._refund_list,
            "GET /v1/refunds/{refund}": self._refund_get,
        }[f"{operation.method} {operation.template}"]
        result = handler(params, **args)
        return json.loads(json.dumps(result))

    # objects

    def _card_object(self, pm_id: str, card: str) -> dict[str, Any]:
        brand, last4, _ = TEST_CARDS[card]
        return {
            "id": pm_id,
            "object": "payment_method",
            "type": "card",
            "customer": None,
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "card": {
                "brand": brand,
                "last4": last4,
                "exp_month": 12,
                "exp_year": time.gmtime().tm_year + 3,
                "country": "US",
                "funding": "credit",
                "fingerprint": secrets.token_hex(8),
            },
            "_test_card": card,
        }

    def _customer_create(self, params: dict[str, Any]) -> dict[str, Any]:
        customer: dict[str, Any] = {
            "id": _id("cus"),
            "object": "customer",
            "created": int(time.time()),
            "email": params.get("email"),
            "name": params.get("name"),
            "description": params.get("description"),
            "metadata": params.get("metadata") or {},
            "livemode": False,
        }
        self.state.customers[customer["id"]] = customer
        return customer

    def _customer_get(self, params: dict[str, Any], customer: str) -> dict[str, Any]:
        if customer not in self.state.customers:
            raise _missing("customer", customer, "id")
        return self.state.customers[customer]

    def _payment_method(self, pm_id: str) -> dict[str, Any]:
        method = self.state.payment_methods.get(pm_id)
        if method is None:
            raise _missing("PaymentMethod", pm_id, "payment_method")
        return method

    def _public(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _intent_create(self, params: dict[str, Any]) -> dict[str, Any]:
        amount = int(params["amount"])
        if amount < 1:
            raise ApiError(400, "This value must be greater than or equal to 1.", param="amount")
        customer = params.get("customer")
        if customer and customer not in self.state.customers:
            raise _missing("customer", customer, "customer")
        intent_id = _id("pi")
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": params["currency"],
            "customer": customer,
            "description": params.get("description"),
            "metadata": params.get("metadata") or {},
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "payment_method": None,
            "payment_method_types": _as_list(params.get("payment_method_types")) or ["card"],
            "setup_future_usage": params.get("setup_future_usage"),
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "created": int(time.time()),
            "livemode": False,
            "next_action": None,
            "last_payment_error": None,
            "latest_charge": None,
            "cancellation_reason": None,
        }
        if params.get("payment_method"):
            intent["payment_method"] = self._use_method(
                params["payment_method"], customer, "PaymentIntent"
            )
            intent["status"] = "requires_confirmation"
        self.state.payment_intents[intent_id] = intent
        if params.get("confirm") == "true":
            return self._confirm(intent, params)
        return intent

    def _intent_get(self, params: dict[str, Any], intent: str) -> dict[str, Any]:
        if intent not in self.state.payment_intents:
            raise _missing("payment_intent", intent, "intent")
        return self.state.payment_intents[intent]

    def _intent_search(self, params: dict[str, Any]) -> dict[str, Any]:
        """Stripe's search query language, as far as the driver uses it: one
        ``metadata['key']:'value'`` clause."""
        match = re.fullmatch(r"metadata\['(\w+)'\]:'((?:[^'\\]|\\.)*)'", params["query"])
        if match is None:
            raise ApiError(400, f"Unsupported query: {params['query']}", param="query")
        key, value = match.group(1), re.sub(r"\\(.)", r"\1", match.group(2))
        found = [
            intent
            for intent in self.state.payment_intents.values()
            if intent["metadata"].get(key) == value
        ]
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": False,
            "next_page": None,
            "data": found[: int(params.get("limit", 10))],
        }

    def _intent_confirm(self, params: dict[str, Any], intent: str) -> dict[str, Any]:
        found = self._intent_get(params, intent)
        if params.get("payment_method"):
            found["payment_method"] = self._use_method(
                params["payment_method"], found["customer"], "PaymentIntent"
            )
        if params.get("setup_future_usage"):
            found["setup_future_usage"] = params["setup_future_usage"]
        return self._confirm(found, params)

    def _intent_cancel(self, params: dict[str, Any], intent: str) -> dict[str, Any]:
        found = self._intent_get(params, intent)
        if found["status"] not in (
            "requires_payment_method",
            "requires_capture",
            "requires_confirmation",
            "requires_action",
        ):
            raise ApiError(
                400,
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{found['status']}. Only a PaymentIntent with one of the following statuses "
                "may be canceled: requires_payment_method, requires_capture, "
                "requires_confirmation, requires_action.",
                code="payment_intent_unexpected_state",
            )
        found.update(
            status="canceled",
            cancellation_reason=params.get("cancellation_reason"),
            canceled_at=int(time.time()),
            next_action=None,
        )
        return found

    def _use_method(self, pm_id: str, customer: str | None, kind: str) -> str:
        """The PaymentMethod an intent is to use, as Stripe picks it: a test card named
        by its test name becomes a new PaymentMethod; one attached to a customer only
        with that customer."""
        method = self._payment_method(pm_id)
        if pm_id in TEST_CARDS:
            clone = _id("pm")
            self.state.payment_methods[clone] = self._card_object(clone, pm_id)
            return clone
        owner = method["customer"]
        if owner and not customer:
            raise ApiError(
                400,
                "The provided PaymentMethod belongs to a Customer, but you did not provide "
                f"the Customer. Please include the Customer in the `customer` parameter on "
                f"the {kind}.",
                param="payment_method",
            )
        if owner and owner != customer:
            raise ApiError(
                400,
                f"The customer does not have a payment method with the ID {pm_id}. The "
                "payment method must be attached to the customer.",
                param="payment_method",
            )
        return pm_id

    def _redirect_action(self, intent_id: str, return_url: str | None) -> dict[str, Any]:
        """next_action of an intent whose card holder must pass 3-D Secure."""
        if not return_url:
            return {"type": "use_stripe_sdk", "use_stripe_sdk": {}}
        return {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "url": f"{self.base_url}/3ds/{intent_id}",
                "return_url": return_url,
            },
        }

    def _confirm(self, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise ApiError(
                400,
                f"This PaymentIntent's status is {intent['status']}, so it cannot be confirmed.",
                code="payment_intent_unexpected_state",
            )
        if not intent["payment_method"]:
            raise ApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        method = self.state.payment_methods[intent["payment_method"]]
        outcome = TEST_CARDS[method["_test_card"]][2]
        off_session = params.get("off_session") in ("true", "one_off", "recurring")
        if off_session and intent["setup_future_usage"]:
            raise ApiError(
                400,
                "You cannot confirm with the `off_session` parameter when "
                "`setup_future_usage` is also set on the PaymentIntent because you cannot "
                "set up future usages when processing payments off-session.",
                param="off_session",
            )
        if outcome == "authentication_required_on_setup":
            set_up = off_session and method.get("_set_up")
            outcome = "ok" if set_up else "authentication_required"
        if outcome == "authentication_required" and not off_session:
            intent["status"] = "requires_action"
            intent["next_action"] = self._redirect_action(intent["id"], params.get("return_url"))
            return intent
        if outcome in DECLINES:
            code, decline_code, message = DECLINES[outcome]
            charge = self._new_charge(intent, "failed")
            error: dict[str, Any] = {
                "type": "card_error",
                "code": code,
                "message": message,
                "charge": charge["id"],
                "payment_method": self._public(method),
            }
            if decline_code:
                error["decline_code"] = decline_code
            intent.update(status="requires_payment_method", latest_charge=charge["id"])
            intent["last_payment_error"] = error
            raise ApiError(
                402,
                message,
                type="card_error",
                code=code,
                decline_code=decline_code,
                extra={"charge": charge["id"], "payment_intent": dict(intent)},
            )
        if self.processing_next:
            self.processing_next -= 1
            intent["status"] = "processing"
            return intent
        self._charge(intent)
        return intent

    def _new_charge(self, intent: dict[str, Any], status: str) -> dict[str, Any]:
        charge = {
            "id": _id("ch"),
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "status": status,
            "paid": status == "succeeded",
            "refunded": False,
            "created": int(time.time()),
            "livemode": False,
        }
        self.state.charges[charge["id"]] = charge
        return charge

    def _charge(self, intent: dict[str, Any]) -> None:
        charge = self._new_charge(intent, "succeeded")
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
        )
        if intent.get("setup_future_usage") and intent.get("customer"):
            # Saved for later payments: attached to the customer, as at Stripe.
            method = self.state.payment_methods[intent["payment_method"]]
            method.update(customer=intent["customer"], _set_up=True)

    def _setup_create(self, params: dict[str, Any]) -> dict[str, Any]:
        customer = params.get("customer")
        if customer and customer not in self.state.customers:
            raise _missing("customer", customer, "customer")
        intent_id = _id("seti")
        intent = {
            "id": intent_id,
            "object": "setup_intent",
            "customer": customer,
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "payment_method": None,
            "payment_method_types": _as_list(params.get("payment_method_types")) or ["card"],
            "usage": params.get("usage", "off_session"),
            "metadata": params.get("metadata") or {},
            "created": int(time.time()),
            "livemode": False,
            "next_action": None,
            "last_setup_error": None,
        }
        if params.get("payment_method"):
            intent["payment_method"] = self._use_method(
                params["payment_method"], customer, "SetupIntent"
            )
            intent["status"] = "requires_confirmation"
        self.state.setup_intents[intent_id] = intent
        if params.get("confirm") == "true":
            return self._setup_confirm(intent, params)
        return intent

    def _setup_confirm(self, intent: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        if not intent["payment_method"]:
            raise ApiError(
                400,
                "You cannot confirm this SetupIntent because it's missing a payment method.",
                code="setup_intent_unexpected_state",
            )
        method = self.state.payment_methods[intent["payment_method"]]
        outcome = TEST_CARDS[method["_test_card"]][2]
        if outcome in ("authentication_required", "authentication_required_on_setup"):
            intent["status"] = "requires_action"
            intent["next_action"] = self._redirect_action(intent["id"], params.get("return_url"))
            return intent
        if outcome in DECLINES:
            code, decline_code, message = DECLINES[outcome]
            error: dict[str, Any] = {
                "type": "card_error",
                "code": code,
                "message": message,
                "payment_method": self._public(method),
            }
            if decline_code:
                error["decline_code"] = decline_code
            intent.update(status="requires_payment_method", last_setup_error=error)
            raise ApiError(
                402,
                message,
                type="card_error",
                code=code,
                decline_code=decline_code,
                extra={"setup_intent": dict(intent)},
            )
        self._setup_succeed(intent)
        return intent

    def _setup_succeed(self, intent: dict[str, Any]) -> None:
        """A SetupIntent succeeds: its card is kept on the customer, set up for payments
        off session."""
        method = self.state.payment_methods[intent["payment_method"]]
        method["_set_up"] = True
        if intent["customer"]:
            method["customer"] = intent["customer"]
        intent.update(status="succeeded", next_action=None, last_setup_error=None)

    def _setup_get(self, params: dict[str, Any], intent: str) -> dict[str, Any]:
        if intent not in self.state.setup_intents:
            raise _missing("setup_intent", intent, "intent")
        return self.state.setup_intents[intent]

    def _method_get(self, params: dict[str, Any], payment_method: str) -> dict[str, Any]:
        return self._public(self._payment_method(payment_method))

    def _method_detach(self, params: dict[str, Any], payment_method: str) -> dict[str, Any]:
        method = self._payment_method(payment_method)
        if method["customer"] is None:
            raise ApiError(
                400,
                "The payment method you provided is not attached to a customer so "
                "detachment is impossible.",
            )
        method["customer"] = None
        return self._public(method)

    def _refund_create(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("payment_intent"):
            intent = self._intent_get({}, params["payment_intent"])
            if intent["status"] != "succeeded" or not intent["latest_charge"]:
                raise ApiError(
                    400,
                    f"This PaymentIntent ({intent['id']}) does not have a successful "
                    "charge to refund.",
                )
            charge = self.state.charges[intent["latest_charge"]]
        elif params.get("charge"):
            charge = self.state.charges.get(params["charge"]) or {}
            if not charge:
                raise _missing("charge", params["charge"], "charge")
        else:
            raise ApiError(400, "One of `charge` or `payment_intent` is required.")
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(params.get("amount", left))
        if amount < 1 or amount > left:
            raise ApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                param="amount",
            )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        status = self.refund_status.pop(0) if self.refund_status else "succeeded"
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "metadata": params.get("metadata") or {},
            "status": status,
            "failure_reason": None,
            "created": int(time.time()),
        }
        self.state.refunds[refund["id"]] = refund
        return refund

    def _refund_get(self, params: dict[str, Any], refund: str) -> dict[str, Any]:
        if refund not in self.state.refunds:
            raise _missing("refund", refund, "id")
        return self.state.refunds[refund]

    def _refund_list(self, params: dict[str, Any]) -> dict[str, Any]:
        found = [
            refund
            for refund in reversed(self.state.refunds.values())
            if all(
                refund[key] == params[key] for key in ("payment_intent", "charge") if key in params
            )
        ]
        return {
            "object": "list",
            "url": "/v1/refunds",
            "has_more": len(found) > int(params.get("limit", 10)),
            "data": found[: int(params.get("limit", 10))],
        }

    # refunds made, or settled, at Stripe itself (its dashboard, its bank network)

    def refund_outside(self, intent_id: str, amount: int | None = None) -> dict[str, Any]:
        """Staff refund a payment in Stripe's dashboard: no request of ours."""
        with self.lock:
            params: dict[str, Any] = {"payment_intent": intent_id}
            if amount is not None:
                params["amount"] = str(amount)
            saved, self.refund_status = self.refund_status, []
            try:
                return dict(self._refund_create(params))
            finally:
                self.refund_status = saved

    def settle_refund(self, refund_id: str, *, succeed: bool) -> dict[str, Any]:
        """A pending refund reaches its final state (a failed one gives the money back
        to the charge's refundable amount, as at Stripe)."""
        with self.lock:
            refund = self.state.refunds[refund_id]
            assert refund["status"] == "pending", refund["status"]
            if succeed:
                refund["status"] = "succeeded"
            else:
                refund.update(status="failed", failure_reason="expired_or_canceled_card")
                self.state.charges[refund["charge"]]["amount_refunded"] -= refund["amount"]
                self.state.charges[refund["charge"]]["refunded"] = False
            return dict(refund)

    def charge_of(self, intent_id: str) -> dict[str, Any]:
        """The intent's charge as Stripe puts it in a charge.* event."""
        with self.lock:
            charge_id = self.state.payment_intents[intent_id]["latest_charge"]
            return json.loads(json.dumps(self.state.charges[charge_id]))


@contextmanager
def running_server(**kwargs: Any) -> Iterator[StripeServer]:
    server = StripeServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()
