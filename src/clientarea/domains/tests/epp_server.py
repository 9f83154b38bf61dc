"""A local EPP registry for the tests: TLS on loopback with a client certificate required,
RFC 5734 framing, the RFC 5730 session (greeting, login, hello, logout) and the RFC 5731 and
5732 commands the driver uses (domain info, update, renew; host check, create), over an
in-memory registry.

Every frame it receives is checked against the EPP schema (``frame_errors``: ours in
epp/schema/, or the official files in the directory EPP_SCHEMA_DIR names): an invalid one
is answered 2001 and kept in ``invalid_frames`` (the tests fail on it). Every answer it
writes is checked too (``invalid_answers``). Tests make it misbehave on demand:
``fail(...)`` answers a command with an error code, never answers, drops the connection
before or after applying it, or ends the session; ``idle_timeout`` closes sessions left
idle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import itertools
import os
import select
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from clientarea.domains.drivers import add_years
from clientarea.domains.epp import xml
from clientarea.domains.epp.client import HEADER, read_frame, write_frame

E, D, H = xml.EPP_NS, xml.DOMAIN_NS, xml.HOST_NS
N = xml.NSMAP
CONTACT_NS = "urn:ietf:params:xml:ns:contact-1.0"


def frame_errors(frame: bytes) -> list[str]:
    """Why `frame` is not valid EPP: by our schema (epp/schema/), or, if the environment
    variable EPP_SCHEMA_DIR names a directory holding the official EPP schema files, by
    those."""
    return xml.schema_errors(frame, xml.schema(os.environ.get("EPP_SCHEMA_DIR") or None))


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class EppCerts:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting only it must fail


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    san: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def make_certs(directory: Path) -> EppCerts:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate it signed,
    and another CA that signed nothing."""
    ca_key, other_key = _key(), _key()
    ca = _cert("Test EPP CA", ca_key, None, ca_key, ca=True)
    other = _cert("Other CA", other_key, None, other_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _cert("127.0.0.1", server_key, ca, ca_key, san=True)
    client = _cert("registrar1", client_key, ca, ca_key)
    _write(directory / "ca.pem", ca, None)
    _write(directory / "other-ca.pem", other, None)
    _write(directory / "server.pem", server, server_key)
    _write(directory / "client.pem", client, client_key)
    return EppCerts(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        other_ca=directory / "other-ca.pem",
    )


# --- the registry --------------------------------------------------------------------------


@dataclass
class RegistryDomain:
    name: str
    expiry: dt.date
    statuses: set[str] = field(default_factory=lambda: {"ok"})
    nameservers: list[str] = field(default_factory=list)
    sponsor: str = "registrar1"
    roid: str = "D1-TEST"


@dataclass
class Failure:
    """How the server misbehaves for the next `times` commands named `command` (for
    example "domain:update", "login", "host:create", "hello", or "*" for any)."""

    command: str
    mode: str  # "code" | "no_answer" | "drop_before" | "drop_after" | "end_session"
    code: int = 2400
    message: str = ""
    times: int = 1
    skip: int = 0  # let this many such commands through first


class Drop(Exception):
    """Close this connection now (without answering)."""


class EppTestServer:
    @property
    def greeting_objects(self) -> tuple[str, ...]:
        return (D, H, CONTACT_NS) if self.host_objects else (D, CONTACT_NS)

    def __init__(
        self,
        certs: EppCerts,
        *,
        client_id: str = "registrar1",
        password: str = "s3cret-pass",
        idle_timeout: float | None = None,
    ) -> None:
        self.certs = certs
        self.client_id = client_id
        self.password = password
        self.idle_timeout = idle_timeout
        self.max_nameservers = 4
        self.max_renew_years = 10
        self.echo_password_in_login_error = False
        # False: a registry without host objects (no host-1.0): nameservers are host
        # attributes of the domain (RFC 5731 section 1.1).
        self.host_objects = True
        self.domains: dict[str, RegistryDomain] = {}
        self.hosts: set[str] = set()
        self.failures: list[Failure] = []
        self.received: list[bytes] = []
        self.commands: list[str] = []
        self.invalid_frames: list[tuple[bytes, list[str]]] = []
        self.invalid_answers: list[tuple[bytes, list[str]]] = []
        self.connections = 0
        self.logins = 0
        self.login_attempts = 0
        self.logouts = 0
        self._svtrid = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._release = threading.Event()  # lets a "no_answer" hold end early
        self._threads: list[threading.Thread] = []
        self._open: set[ssl.SSLSocket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certs.server_cert, certs.server_key)
        context.load_verify_locations(certs.ca)
        context.verify_mode = ssl.CERT_REQUIRED
        self._context = context

    # --- running -------------------------------------------------------------------------

    def start(self) -> EppTestServer:
        thread = threading.Thread(target=self._accept_loop, name="epp-test-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._release.set()
        self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def fail(
        self,
        command: str,
        mode: str,
        *,
        code: int = 2400,
        message: str = "",
        times: int = 1,
        skip: int = 0,
    ) -> None:
        self.failures.append(Failure(command, mode, code, message, times, skip))

    def drop_all_sessions(self) -> None:
        """Close every open connection now, as a registry restart would."""
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(5)
        try:
            sock = self._context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()  # e.g. the client did not trust our certificate, or sent none
            return
        with self._lock:
            self.connections += 1
            self._open.add(sock)
        session = {"logged_in": False}
        try:
            self._send(sock, self._greeting())
            idle = 0.0
            while not self._stop.is_set():
                if not sock.pending():
                    readable, _, _ = select.select([sock], [], [], 0.05)
                    if not readable:
                        idle += 0.05
                        if self.idle_timeout is not None and idle >= self.idle_timeout:
                            return  # the registry drops an idle session
                        continue
                idle = 0.0
                try:
                    frame = read_frame(sock)
                except Exception:
                    return
                answer = self._handle(frame, session)
                self._send(sock, answer)
                if session.get("closing"):
                    return
        except (Drop, OSError, ValueError):  # ValueError: closed under select()
            return
        finally:
            with self._lock:
                self._open.discard(sock)
            with contextlib.suppress(OSError):
                sock.close()

    def _send(self, sock: ssl.SSLSocket, root: etree._Element) -> None:
        frame = xml.serialize(root)
        errors = frame_errors(frame)
        if errors:
            self.invalid_answers.append((frame, errors))
        write_frame(sock, frame)

    # --- answering -----------------------------------------------------------------------

    def _greeting(self) -> etree._Element:
        root = etree.Element(f"{{{E}}}epp", nsmap={None: E})
        greeting = _sub(root, E, "greeting")
        _sub(greeting, E, "svID", "Test Registry")
        _sub(greeting, E, "svDate", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0Z"))
        menu = _sub(greeting, E, "svcMenu")
        _sub(menu, E, "version", "1.0")
        _sub(menu, E, "lang", "en")
        for uri in self.greeting_objects:
            _sub(menu, E, "objURI", uri)
        dcp = _sub(greeting, E, "dcp")
        _sub(_sub(dcp, E, "access"), E, "all")
        statement = _sub(dcp, E, "statement")
        purpose = _sub(statement, E, "purpose")
        _sub(purpose, E, "admin")
        _sub(purpose, E, "prov")
        recipient = _sub(statement, E, "recipient")
        _sub(recipient, E, "ours")
        _sub(recipient, E, "public")
        _sub(_sub(statement, E, "retention"), E, "stated")
        return root

    def _response(
        self, code: int, message: str, cltrid: str
    ) -> tuple[etree._Element, etree._Element]:
        root = etree.Element(f"{{{E}}}epp", nsmap={None: E})
        response = _sub(root, E, "response")
        result = _sub(response, E, "result", code=str(code))
        _sub(result, E, "msg", message)
        return root, response

    def _finish(
        self, root: etree._Element, response: etree._Element, cltrid: str
    ) -> etree._Element:
        tr = _sub(response, E, "trID")
        if cltrid:
            _sub(tr, E, "clTRID", cltrid)
        _sub(tr, E, "svTRID", f"SV-{next(self._svtrid)}")
        return root

    def _answer(self, code: int, message: str, cltrid: str) -> etree._Element:
        root, response = self._response(code, message, cltrid)
        return self._finish(root, response, cltrid)

    def _failure_for(self, name: str) -> Failure | None:
        for failure in self.failures:
            if failure.command in (name, "*") and failure.times > 0:
                if failure.skip > 0:
                    failure.skip -= 1
                    continue
                failure.times -= 1
                return failure
        return None

    def _handle(self, frame: bytes, session: dict[str, bool]) -> etree._Element:
        self.received.append(frame)
        errors = frame_errors(frame)
        try:
            root = xml.parse(frame)
        except xml.MalformedFrame:
            self.invalid_frames.append((frame, errors))
            return self._answer(2001, "Command syntax error", "")
        cltrid = (root.findtext("epp:command/epp:clTRID", "", N) or "").strip()
        if errors:
            self.invalid_frames.append((frame, errors))
            return self._answer(2001, "Command syntax error", cltrid)
        if root.find("epp:hello", N) is not None:
            self.commands.append("hello")
            failure = self._failure_for("hello")
            if failure and failure.mode.startswith("drop"):
                raise Drop
            return self._greeting()
        command = root.find("epp:command", N)
        assert command is not None
        verb = command[0]
        verb_name = etree.QName(verb).localname
        name = verb_name
        if verb_name not in ("login", "logout", "poll") and len(verb):
            obj = etree.QName(verb[0])
            prefix = {D: "domain", H: "host"}.get(obj.namespace or "", "?")
            name = f"{prefix}:{verb_name}"
        self.commands.append(name)
        if name == "login":
            self.login_attempts += 1
        failure = self._failure_for(name)
        if failure is not None:
            if failure.mode == "code":
                return self._answer(failure.code, failure.message or "Failed", cltrid)
            if failure.mode == "end_session":
                session["closing"] = True
                return self._answer(2500, "Command failed; server closing connection", cltrid)
            if failure.mode == "no_answer":
                self._release.wait(timeout=10)
                raise Drop
            if failure.mode == "drop_before":
                raise Drop
            if failure.mode == "drop_after":
                self._dispatch(name, verb, cltrid, session)
                raise Drop
        return self._dispatch(name, verb, cltrid, session)

    def _dispatch(
        self, name: str, verb: etree._Element, cltrid: str, session: dict[str, bool]
    ) -> etree._Element:
        if name == "login":
            return self._login(verb, cltrid, session)
        if not session["logged_in"]:
            return self._answer(2002, "Command use error: not logged in", cltrid)
        if name == "logout":
            session["closing"] = True
            self.logouts += 1
            return self._answer(1500, "Command completed successfully; ending session", cltrid)
        handler = {
            "domain:info": self._domain_info,
            "domain:update": self._domain_update,
            "domain:renew": self._domain_renew,
            "host:check": self._host_check,
            "host:create": self._host_create,
        }.get(name)
        if handler is None:
            return self._answer(2101, "Unimplemented command", cltrid)
        if name.startswith("host:") and not self.host_objects:
            return self._answer(2307, "Unimplemented object service", cltrid)
        with self._lock:
            return handler(verb[0], cltrid)

    def _login(
        self, login: etree._Element, cltrid: str, session: dict[str, bool]
    ) -> etree._Element:
        if session["logged_in"]:
            return self._answer(2002, "Command use error: already logged in", cltrid)
        client_id = login.findtext("epp:clID", "", N)
        password = login.findtext("epp:pw", "", N)
        if client_id != self.client_id or password != self.password:
            message = "Authentication error"
            if self.echo_password_in_login_error:
                message = f"Authentication error: password {password} is wrong"
            return self._answer(2200, message, cltrid)
        requested = [e.text for e in login.findall("epp:svcs/epp:objURI", N)]
        if any(uri not in self.greeting_objects for uri in requested):
            return self._answer(2307, "Unimplemented object service", cltrid)
        session["logged_in"] = True
        self.logins += 1
        return self._answer(1000, "Command completed successfully", cltrid)

    def _sponsored(self, name: str, cltrid: str) -> RegistryDomain | etree._Element:
        domain = self.domains.get(name.strip().lower())
        if domain is None:
            return self._answer(2303, "Object does not exist", cltrid)
        if domain.sponsor != self.client_id:
            return self._answer(2201, "Authorization error", cltrid)
        return domain

    def _domain_info(self, info: etree._Element, cltrid: str) -> etree._Element:
        domain = self._sponsored(info.findtext("domain:name", "", N), cltrid)
        if not isinstance(domain, RegistryDomain):
            return domain
        root, response = self._response(1000, "Command completed successfully", cltrid)
        data = _sub(_sub(response, E, "resData"), D, "infData", nsmap={"domain": D})
        _sub(data, D, "name", domain.name)
        _sub(data, D, "roid", domain.roid)
        for status in sorted(domain.statuses):
            _sub(data, D, "status", s=status)
        if domain.nameservers:
            ns = _sub(data, D, "ns")
            for host in domain.nameservers:
                if self.host_objects:
                    _sub(ns, D, "hostObj", host)
                else:
                    _sub(_sub(ns, D, "hostAttr"), D, "hostName", host)
        _sub(data, D, "clID", domain.sponsor)
        _sub(data, D, "exDate", f"{domain.expiry.isoformat()}T22:00:00.0Z")
        return self._finish(root, response, cltrid)

    def _domain_update(self, update: etree._Element, cltrid: str) -> etree._Element:
        domain = self._sponsored(update.findtext("domain:name", "", N), cltrid)
        if not isinstance(domain, RegistryDomain):
            return domain
        form = "hostObj" if self.host_objects else "hostAttr/domain:hostName"
        other = "hostAttr" if self.host_objects else "hostObj"
        if update.findall(f"domain:*/domain:ns/domain:{other}", N):
            return self._answer(2306, f"Parameter value policy error: {other} is not used", cltrid)
        add_ns = [e.text or "" for e in update.findall(f"domain:add/domain:ns/domain:{form}", N)]
        rem_ns = [e.text or "" for e in update.findall(f"domain:rem/domain:ns/domain:{form}", N)]
        add_st = [e.get("s", "") for e in update.findall("domain:add/domain:status", N)]
        rem_st = [e.get("s", "") for e in update.findall("domain:rem/domain:status", N)]
        blocked = {"serverUpdateProhibited", "pendingDelete"} & domain.statuses
        if "clientUpdateProhibited" in domain.statuses and "clientUpdateProhibited" not in rem_st:
            blocked.add("clientUpdateProhibited")
        if blocked:
            return self._answer(
                2304, f"Object status prohibits operation: {', '.join(sorted(blocked))}", cltrid
            )
        for host in add_ns:
            if self.host_objects and host not in self.hosts:
                return self._answer(2303, f"Host {host} does not exist", cltrid)
            if not self.host_objects and any(
                host == d or host.endswith("." + d) for d in self.domains
            ):
                return self._answer(2003, "Required parameter missing: domain:hostAddr", cltrid)
            if host in domain.nameservers:
                return self._answer(2302, f"Host {host} is already a nameserver", cltrid)
        for host in rem_ns:
            if host not in domain.nameservers:
                return self._answer(2303, f"Host {host} is not a nameserver of the domain", cltrid)
        if any(s.startswith("server") for s in add_st + rem_st):
            return self._answer(
                2201, "Authorization error: server statuses are the registry's", cltrid
            )
        for status in add_st:
            if status in domain.statuses:
                return self._answer(2306, f"Status {status} is already set", cltrid)
        for status in rem_st:
            if status not in domain.statuses:
                return self._answer(2306, f"Status {status} is not set", cltrid)
        nameservers = [h for h in domain.nameservers if h not in rem_ns] + add_ns
        if len(nameservers) > self.max_nameservers:
            return self._answer(
                2306,
                f"Parameter value policy error: at most {self.max_nameservers} nameservers",
                cltrid,
            )
        domain.nameservers = nameservers
        statuses = (domain.statuses - {"ok"} - set(rem_st)) | set(add_st)
        domain.statuses = statuses or {"ok"}
        return self._answer(1000, "Command completed successfully", cltrid)

    def _domain_renew(self, renew: etree._Element, cltrid: str) -> etree._Element:
        domain = self._sponsored(renew.findtext("domain:name", "", N), cltrid)
        if not isinstance(domain, RegistryDomain):
            return domain
        blocked = {
            "serverRenewProhibited",
            "clientRenewProhibited",
            "pendingDelete",
        } & domain.statuses
        if blocked:
            return self._answer(
                2304, f"Object status prohibits operation: {', '.join(sorted(blocked))}", cltrid
            )
        current = dt.date.fromisoformat(renew.findtext("domain:curExpDate", "", N))
        if current != domain.expiry:
            return self._answer(
                2306, "Parameter value policy error: curExpDate does not match", cltrid
            )
        period = renew.find("domain:period", N)
        years = int(period.text or "1") if period is not None else 1
        new_expiry = add_years(domain.expiry, years)
        if new_expiry > add_years(dt.date.today(), self.max_renew_years):
            return self._answer(
                2306,
                f"Parameter value policy error: at most {self.max_renew_years} years ahead",
                cltrid,
            )
        domain.expiry = new_expiry
        root, response = self._response(1000, "Command completed successfully", cltrid)
        data = _sub(_sub(response, E, "resData"), D, "renData", nsmap={"domain": D})
        _sub(data, D, "name", domain.name)
        _sub(data, D, "exDate", f"{new_expiry.isoformat()}T22:00:00.0Z")
        return self._finish(root, response, cltrid)

    def _host_check(self, check: etree._Element, cltrid: str) -> etree._Element:
        root, response = self._response(1000, "Command completed successfully", cltrid)
        data = _sub(_sub(response, E, "resData"), H, "chkData", nsmap={"host": H})
        for element in check.findall("host:name", N):
            name = (element.text or "").strip().lower()
            cd = _sub(data, H, "cd")
            _sub(cd, H, "name", name, avail="0" if name in self.hosts else "1")
        return self._finish(root, response, cltrid)

    def _host_create(self, create: etree._Element, cltrid: str) -> etree._Element:
        name = (create.findtext("host:name", "", N) or "").strip().lower()
        if name in self.hosts:
            return self._answer(2302, "Object exists", cltrid)
        superordinate = any(name == d or name.endswith("." + d) for d in self.domains)
        if superordinate and not create.findall("host:addr", N):
            return self._answer(2003, "Required parameter missing: host:addr", cltrid)
        self.hosts.add(name)
        root, response = self._response(1000, "Command completed successfully", cltrid)
        data = _sub(_sub(response, E, "resData"), H, "creData", nsmap={"host": H})
        _sub(data, H, "name", name)
        _sub(data, H, "crDate", dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.0Z"))
        return self._finish(root, response, cltrid)


def _sub(
    parent: etree._Element,
    ns: str,
    tag: str,
    text: str | None = None,
    *,
    nsmap: dict[str, str] | None = None,
    **attrs: str,
) -> etree._Element:
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", attrib=attrs or None, nsmap=nsmap)
    if text is not None:
        element.text = text
    return element


__all__ = ["HEADER", "EppCerts", "EppTestServer", "Failure", "RegistryDomain", "make_certs"]
