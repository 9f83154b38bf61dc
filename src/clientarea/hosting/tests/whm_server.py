"""A local WHM API 1 server for the driver's tests: real HTTPS on loopback, speaking WHM
API 1 as cPanel documents it, and checking every request and answer against the vendored
description of the functions (``hosting/vendor/whm-api1.openapi.json``).

- **Transport**: ``http.server`` in a thread, TLS with a certificate made at test time by
  ``cryptography`` (a throwaway CA and a leaf for 127.0.0.1 and localhost); the driver
  trusts it through ``PanelServer.ca_file``, as a provider would trust a private CA.
- **Protocol**: ``/json-api/<function>?api.version=1&…``, GET or POST form data,
  ``Authorization: whm <user>:<token>``; the answer is
  ``{"metadata": {"version": 1, "result": 1|0, "reason": …, "command": …}, "data": …}``.
  A wrong token gets HTTP 403, as WHM answers it.
- **Accounts**: users with passwords, plans, disk and bandwidth use, suspension. A password
  weaker than the required strength is refused with cPanel's own sentence.
- **Validation**: every request must match the function's published parameters (required
  ones present, no unknown one, types and enumerated values; the password only in a POST
  body), and every answer the published response fields. A mismatch is answered with HTTP
  400 and kept in ``errors``; the ``whm`` fixture fails the test if any is left, so a
  driver that sends a wrong parameter fails.
- **Failure modes** (``fail(mode, times=…, only=…)``): ``hang`` (answer nothing for longer
  than the client waits), ``drop_before`` / ``drop_after`` (close the connection without an
  answer, before or after carrying the function out), ``http500``, ``malformed`` (a cut
  JSON body, after carrying the function out), ``html`` (a 200 page that is not JSON).

Only the weak-password sentence and the success reasons are cPanel's own words; the other
refusal texts (an unknown user…) are this server's.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import secrets
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT202012

VENDOR_DOC = Path(__file__).resolve().parent.parent / "vendor" / "whm-api1.openapi.json"
DOC_URI = "urn:clientarea:whm-api1"

# cPanel's answer to a weak password (its locale string, with the required strength).
WEAK_PASSWORD = (
    "Sorry, the password you selected cannot be used because it is too weak and would be "
    "too easy to guess. Please select a password with strength rating of {strength} or "
    "higher."
)

MODES = frozenset({"hang", "drop_before", "drop_after", "http500", "malformed", "html"})


# --- TLS material -------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str
    cert_file: str
    key_file: str


def make_tls(directory: Path, *, name: str = "Test WHM CA") -> TlsFiles:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = (directory / n for n in ("ca.pem", "cert.pem", "key.pem"))
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(str(ca_file), str(cert_file), str(key_file))


# --- the published description -----------------------------------------------------------


def _absolute_refs(node: Any) -> Any:
    """The document's local "#/…" references made absolute, so a schema taken out of it
    still resolves them through the registry."""
    if isinstance(node, dict):
        return {
            k: (DOC_URI + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else
                _absolute_refs(v))
            for k, v in node.items()
        }  # fmt: skip
    if isinstance(node, list):
        return [_absolute_refs(v) for v in node]
    return node


@dataclass(frozen=True)
class Operation:
    name: str
    params: dict[str, dict[str, Any]]  # name -> schema
    required: frozenset[str]
    body_only: frozenset[str]
    one_of_required: tuple[str, ...]
    request_validator: Draft202012Validator
    response_validator: Draft202012Validator


class WhmDescription:
    """The vendored WHM API 1 description: what each function takes and answers."""

    def __init__(self, path: Path = VENDOR_DOC) -> None:
        self.document = json.loads(path.read_text())
        doc = _absolute_refs(self.document)
        self.registry: Registry = Registry().with_resource(
            DOC_URI, DRAFT202012.create_resource(doc)
        )
        self.operations: dict[str, Operation] = {}
        for route, item in doc["paths"].items():
            op = item["get"]
            params: dict[str, dict[str, Any]] = {}
            required: set[str] = set()
            for param in op["parameters"]:
                if "$ref" in param:
                    param = self._lookup(param["$ref"])
                params[param["name"]] = param["schema"]
                if param.get("required"):
                    required.add(param["name"])
            request_schema = {
                "type": "object",
                "properties": params,
                "required": sorted(required),
                "additionalProperties": False,
            }
            pointer = "/paths/" + route.replace("~", "~0").replace("/", "~1")
            response_schema = {
                "$ref": f"{DOC_URI}#{pointer}/get/responses/200/content/application~1json/schema"
            }
            name = route.lstrip("/")
            self.operations[name] = Operation(
                name=name,
                params=params,
                required=frozenset(required),
                body_only=frozenset(op.get("x-body-only", ())),
                one_of_required=tuple(op.get("x-require-one-of", ())),
                request_validator=Draft202012Validator(request_schema, registry=self.registry),
                response_validator=Draft202012Validator(response_schema, registry=self.registry),
            )

    def _lookup(self, ref: str) -> Any:
        node: Any = _absolute_refs(self.document)
        for part in ref.removeprefix(DOC_URI + "#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _type_of(self, schema: dict[str, Any]) -> Any:
        while "$ref" in schema:
            schema = self._lookup(schema["$ref"])
        return schema.get("type")

    def check_request(
        self, function: str, query: list[tuple[str, str]], form: list[tuple[str, str]]
    ) -> list[str]:
        """What is wrong with a request, against the published parameters ([] if nothing).
        Values arrive as text; a parameter the description types as an integer must be
        one."""
        operation = self.operations.get(function)
        if operation is None:
            return [f"{function} is not a function the client area may call"]
        problems: list[str] = []
        names = [name for name, _ in query + form]
        for name in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{function}: parameter {name} given more than once")
        for name, _ in query:
            if name in operation.body_only:
                problems.append(f"{function}: {name} must not be sent in the URL")
        values: dict[str, Any] = {}
        for name, value in query + form:
            schema = operation.params.get(name)
            if schema is not None and self._type_of(schema) == "integer":
                values[name] = int(value) if re.fullmatch(r"-?\d+", value) else value
            else:
                values[name] = value
        for error in operation.request_validator.iter_errors(values):
            problems.append(f"{function}: {_error_text(error)}")
        if operation.one_of_required and not any(n in values for n in operation.one_of_required):
            problems.append(f"{function}: needs one of {', '.join(operation.one_of_required)}")
        return problems

    def check_response(self, function: str, body: Any) -> list[str]:
        operation = self.operations.get(function)
        if operation is None:
            return [f"{function}: no published answer"]
        return [
            f"{function} answer: {_error_text(e)}"
            for e in operation.response_validator.iter_errors(body)
        ]


def _error_text(error: ValidationError) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where or '(top)'}: {error.message}"


_DESCRIPTION: WhmDescription | None = None


def description() -> WhmDescription:
    global _DESCRIPTION
    if _DESCRIPTION is None:
        _DESCRIPTION = WhmDescription()
    return _DESCRIPTION


# --- accounts and the functions -----------------------------------------------------------


@dataclass
class Account:
    user: str
    password: str
    domain: str
    plan: str = "default"
    owner: str = "root"
    suspended: bool = False
    suspend_reason: str = ""
    disk_used: str = "250M"
    disk_limit: str = "10240M"
    bandwidth_bytes: int = 1536 * 2**20
    bandwidth_limit_bytes: int = 0  # 0: unlimited


@dataclass
class Recorded:
    function: str
    method: str
    query: dict[str, str]
    form: dict[str, str]
    authorized: bool


def password_strength(password: str) -> int:
    """A strength score from 0 to 100 in the spirit of cPanel's meter: length counts, and
    each kind of character beyond the first (capitals, digits, symbols) adds to it."""
    kinds = sum(
        any(test(c) for c in password)
        for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    )
    return max(0, min(100, 4 * len(password) + 12 * (kinds - 1)))


@dataclass
class _Failure:
    mode: str
    times: int | None
    only: frozenset[str] | None


class WhmTestServer:
    """One WHM server on 127.0.0.1 (a free port), with its accounts and failure switches."""

    def __init__(
        self,
        tls: TlsFiles,
        *,
        api_user: str = "root",
        token: str = "",
        required_strength: int = 65,
        hang_seconds: float = 5.0,
    ) -> None:
        self.api_user = api_user
        self.token = token or secrets.token_hex(16).upper()
        self.required_strength = required_strength
        self.hang_seconds = hang_seconds
        self.accounts: dict[str, Account] = {}
        self.requests: list[Recorded] = []
        self.errors: list[str] = []
        self.session_urls: list[str] = []
        # Functions the token may not run (an API token with too few privileges).
        self.not_permitted: set[str] = set()
        self._failure: _Failure | None = None
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._description = description()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls.cert_file, tls.key_file)
        self._httpd = _Server(("127.0.0.1", 0), _Handler, context=context, whm=self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # life
    def start(self) -> WhmTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WhmTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # set-up by tests
    def add_account(self, user: str, password: str = "Xk7#pL9!qWe2", **kw: Any) -> Account:
        account = Account(
            user=user, password=password, domain=kw.pop("domain", f"{user}.test"), **kw
        )
        self.accounts[user] = account
        return account

    def fail(self, mode: str, *, times: int | None = None, only: set[str] | None = None) -> None:
        """Answer the next `times` requests (all, if None) of the `only` functions (all, if
        None) in `mode` instead of normally."""
        if mode not in MODES:
            raise ValueError(mode)
        self._failure = _Failure(mode, times, frozenset(only) if only else None)

    def heal(self) -> None:
        self._failure = None

    def calls(self, function: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if function is None or r.function == function]

    # the protocol
    def _failure_for(self, function: str) -> str:
        with self._lock:
            failure = self._failure
            if failure is None or (failure.only is not None and function not in failure.only):
                return ""
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self._failure = None
            return failure.mode

    def _carry_out(self, function: str, params: dict[str, str]) -> dict[str, Any]:
        handler = getattr(self, f"_fn_{function}")
        with self._lock:
            result: dict[str, Any] = handler(params)
        return result

    def _answer(
        self, function: str, *, ok: bool, reason: str, data: Any = None, **meta: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "metadata": {"command": function, "reason": reason, "result": 1 if ok else 0,
                         "version": 1, **meta}
        }  # fmt: skip
        if data is not None:
            body["data"] = data
        return body

    def _no_such_user(self, function: str, user: str) -> dict[str, Any]:
        return self._answer(function, ok=False, reason=f"The user “{user}” does not exist.")

    def _fn_passwd(self, p: dict[str, str]) -> dict[str, Any]:
        account = self.accounts.get(p["user"])
        if account is None:
            return self._no_such_user("passwd", p["user"])
        if password_strength(p["password"]) < self.required_strength:
            reason = WEAK_PASSWORD.format(strength=self.required_strength)
            return self._answer("passwd", ok=False, reason=reason)
        account.password = p["password"]
        return self._answer(
            "passwd",
            ok=True,
            reason=f"Password changed for user “{account.user}”.",
            data={"app": ["system", "ftp", "mail", "MySQL"]},
        )

    def _fn_create_user_session(self, p: dict[str, str]) -> dict[str, Any]:
        account = self.accounts.get(p["user"])
        if account is None:
            return self._no_such_user("create_user_session", p["user"])
        token = f"/cpsess{secrets.randbelow(10**10):010d}"
        session = f"{account.user}:{secrets.token_urlsafe(24)}:CREATE_USER_SESSION"
        url = f"https://127.0.0.1:2083{token}/login/?session={session}"
        self.session_urls.append(url)
        data = {
            "url": url,
            "session": session,
            "expires": int(dt.datetime.now(dt.UTC).timestamp()) + 900,
            "service": p["service"],
            "cp_security_token": token,
            "locale": "en",
        }
        return self._answer("create_user_session", ok=True, reason="Created session", data=data)

    def _acct(self, a: Account) -> dict[str, Any]:
        return {
            "user": a.user,
            "domain": a.domain,
            "plan": a.plan,
            "owner": a.owner,
            "email": f"{a.user}@{a.domain}",
            "ip": "127.0.0.1",
            "partition": "home",
            "theme": "jupiter",
            "startdate": "25 Jan 01 12:00",
            "unix_startdate": 1735732800,
            "suspended": 1 if a.suspended else 0,
            "suspendreason": a.suspend_reason if a.suspended else "not suspended",
            "suspendtime": 1735732800 if a.suspended else None,
            "is_locked": 0,
            "diskused": a.disk_used,
            "disklimit": a.disk_limit,
            "inodesused": 1200,
            "inodeslimit": "unlimited",
            "backup": 0,
            "legacy_backup": 0,
            "temporary": 0,
            "outgoing_mail_hold": 0,
            "outgoing_mail_suspended": 0,
            "uid": 1001,
            "shell": "/bin/bash",
        }

    def _fn_accountsummary(self, p: dict[str, str]) -> dict[str, Any]:
        if "user" in p:
            account = self.accounts.get(p["user"])
        else:
            account = next((a for a in self.accounts.values() if a.domain == p["domain"]), None)
        if account is None:
            return self._no_such_user("accountsummary", p.get("user") or p.get("domain", ""))
        return self._answer(
            "accountsummary", ok=True, reason="OK", data={"acct": [self._acct(account)]}
        )

    def _fn_showbw(self, p: dict[str, str]) -> dict[str, Any]:
        field_of = {"user": "user", "domain": "domain", "owner": "owner", "package": "plan"}
        wanted = list(self.accounts.values())
        if p.get("searchtype") in field_of and p.get("search"):
            pattern = re.compile(p["search"])
            attr = field_of[p["searchtype"]]
            wanted = [a for a in wanted if pattern.search(getattr(a, attr))]
        today = dt.date.today()
        acct = [
            {
                "user": a.user,
                "maindomain": a.domain,
                "owner": a.owner,
                "totalbytes": a.bandwidth_bytes,
                "limit": a.bandwidth_limit_bytes,
                "deleted": 0,
                "reseller": 0,
                "bwusage": [{"domain": a.domain, "usage": a.bandwidth_bytes, "deleted": 0}],
            }
            for a in wanted
        ]
        data = {
            "acct": acct,
            "month": int(p.get("month", today.month)),
            "year": int(p.get("year", today.year)),
            "reseller": self.api_user,
            "totalused": sum(a.bandwidth_bytes for a in wanted),
        }
        return self._answer("showbw", ok=True, reason="OK", data=data)

    def _fn_suspendacct(self, p: dict[str, str]) -> dict[str, Any]:
        account = self.accounts.get(p["user"])
        if account is None:
            return self._no_such_user("suspendacct", p["user"])
        account.suspended, account.suspend_reason = True, p.get("reason", "Unknown")
        raw = f"Suspending {account.user}... Done"
        return self._answer("suspendacct", ok=True, reason="OK", output={"raw": raw})

    def _fn_unsuspendacct(self, p: dict[str, str]) -> dict[str, Any]:
        account = self.accounts.get(p["user"])
        if account is None:
            return self._no_such_user("unsuspendacct", p["user"])
        account.suspended, account.suspend_reason = False, ""
        return self._answer("unsuspendacct", ok=True, reason="OK")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: Any, handler: Any, *, context: ssl.SSLContext, whm: WhmTestServer):
        self.context = context
        self.whm = whm
        super().__init__(address, handler)

    def get_request(self) -> Any:
        sock, address = self.socket.accept()
        # The handshake happens in the request's thread, so a client that refuses our
        # certificate does not hold up the others.
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes and dropped connections are part of the tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop(self) -> None:
        self.close_connection = True

    def _serve(self, method: str) -> None:
        whm = self.server.whm
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        match = re.fullmatch(r"/json-api/([A-Za-z0-9_]+)", parts.path)
        if match is None:
            self._send(404, b"Not found", "text/plain")
            return
        function = match.group(1)
        query = parse_qsl(parts.query, keep_blank_values=True)
        form: list[tuple[str, str]] = []
        if raw_body:
            if (
                self.headers.get("Content-Type", "").split(";")[0]
                != "application/x-www-form-urlencoded"
            ):
                whm.errors.append(f"{function}: body is not form data")
            form = parse_qsl(raw_body.decode(), keep_blank_values=True)
        authorized = self.headers.get("Authorization") == f"whm {whm.api_user}:{whm.token}"
        whm.requests.append(Recorded(function, method, dict(query), dict(form), authorized))
        if not authorized:
            denied = {"reason": "Access denied", "result": "0"}
            body = {"cpanelresult": {"apiversion": "2", "error": "Access denied", "data": denied}}
            self._send(403, json.dumps(body).encode())
            return

        problems = whm._description.check_request(function, query, form)
        if problems:
            whm.errors.extend(problems)
            body = whm._answer(function, ok=False, reason="; ".join(problems))
            self._send(400, json.dumps(body).encode())
            return

        mode = whm._failure_for(function)
        params = dict(query + form)
        if mode == "hang":
            whm._release.wait(whm.hang_seconds)
            self._drop()
            return
        if mode == "drop_before":
            self._drop()
            return
        if mode == "http500":
            self._send(500, b"<html><body>Internal Server Error</body></html>", "text/html")
            return
        if mode == "html":
            self._send(200, b"<html><body>Login</body></html>", "text/html")
            return

        if function in whm.not_permitted:
            body = whm._answer(function, ok=False, reason="Permission denied")
        else:
            body = whm._carry_out(function, params)
        problems = whm._description.check_response(function, copy.deepcopy(body))
        if problems:
            whm.errors.extend(problems)
        if mode == "drop_after":
            self._drop()
            return
        encoded = json.dumps(body).encode()
        if mode == "malformed":
            encoded = encoded[: len(encoded) // 2]
        self._send(200, encoded)


def iter_log_text(records: list[Any]) -> Iterator[str]:
    """Every piece of text a log record can carry, for the no-secret checks."""
    formatter = logging.Formatter()
    for record in records:
        yield record.getMessage()
        yield str(record.msg)
        yield repr(record.args)
        if record.exc_info:
            yield formatter.formatException(record.exc_info)
        if record.exc_text:
            yield record.exc_text
        if record.stack_info:
            yield record.stack_info


__all__ = [
    "WEAK_PASSWORD",
    "Account",
    "TlsFiles",
    "WhmDescription",
    "WhmTestServer",
    "description",
    "iter_log_text",
    "make_tls",
    "password_strength",
]
