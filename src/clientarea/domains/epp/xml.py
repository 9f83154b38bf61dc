"""EPP frames: building commands with lxml (RFC 5730, 5731, 5732) and parsing answers
safely. Text from outside (domain and host names, the password) only ever becomes an
element's text or an attribute's value, never part of the markup."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from lxml import etree

EPP_NS = "urn:ietf:params:xml:ns:epp-1.0"
DOMAIN_NS = "urn:ietf:params:xml:ns:domain-1.0"
HOST_NS = "urn:ietf:params:xml:ns:host-1.0"

# Our own schema of the EPP subset we send and read (see schema/README.md).
SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
# The official schema files, by the names RFC 5730-5732 give them, in import order; a
# directory holding them can stand in for ours (schema(official_dir)).
OFFICIAL_SCHEMA_FILES = ("eppcom-1.0.xsd", "epp-1.0.xsd", "host-1.0.xsd", "domain-1.0.xsd")

# Result codes (RFC 5730 section 3).
SUCCESS_CODES = frozenset({1000, 1001, 1300, 1301, 1500})
SESSION_ENDED_CODES = frozenset({2500, 2501, 2502})


class MalformedFrame(ValueError):
    """What arrived is not an EPP frame we can read (not XML, a DOCTYPE, no result)."""


def _parser() -> etree.XMLParser:
    # No entity expansion, no DTD, no network, no huge trees: an answer is data, never a
    # way to make us read files, fetch URLs or spend memory.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_blank_text=True,
        remove_comments=True,
        remove_pis=True,
    )


def parse(frame: bytes) -> etree._Element:
    """Parse one frame. Refuses a DOCTYPE (an EPP frame never has one)."""
    try:
        root = etree.fromstring(frame, _parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedFrame(f"not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise MalformedFrame("a DOCTYPE is not allowed in EPP")
    if root.tag != f"{{{EPP_NS}}}epp":
        raise MalformedFrame("the root element is not <epp>")
    return root


def _schema_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@functools.lru_cache(maxsize=4)
def schema(official_dir: str | None = None) -> etree.XMLSchema:
    """Our schema (schema/envelope.xsd and the files it imports), read from the files
    beside us only. Given `official_dir`, a directory holding the official EPP schema
    files instead, those are loaded together and used. Never touches the network."""
    if not official_dir:
        return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "envelope.xsd"), _schema_parser()))
    directory = Path(official_dir).resolve()
    missing = [name for name in OFFICIAL_SCHEMA_FILES if not (directory / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}")
    # The official files import one another by namespace only: a small schema of our own
    # names where each one is, so the validator loads all four from that directory.
    imports = "".join(
        f'<xs:import namespace="urn:ietf:params:xml:ns:{name.removesuffix(".xsd")}"'
        f' schemaLocation="{(directory / name).as_uri()}"/>'
        for name in OFFICIAL_SCHEMA_FILES
    )
    loader = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"'
        f' targetNamespace="urn:x-clientarea:epp-official-loader">{imports}</xs:schema>'
    )
    return etree.XMLSchema(etree.fromstring(loader.encode(), _schema_parser()))


def schema_errors(frame: bytes, validator: etree.XMLSchema | None = None) -> list[str]:
    """Why `frame` is not valid EPP (empty if it is), by our schema unless `validator` is
    given. Used by the tests and the test server."""
    try:
        root = parse(frame)
    except MalformedFrame as exc:
        return [str(exc)]
    validator = validator if validator is not None else schema()
    if validator.validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in validator.error_log]


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=False)


def new_cltrid() -> str:
    """A client transaction id, unique per command (3 to 64 characters)."""
    return f"CA-{uuid.uuid4().hex}"


def _epp() -> etree._Element:
    return etree.Element(f"{{{EPP_NS}}}epp", nsmap={None: EPP_NS})


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attrs: str):
    element = etree.SubElement(parent, f"{{{ns}}}{tag}", attrib=attrs or None)
    if text is not None:
        element.text = text
    return element


def _command(cltrid: str) -> tuple[etree._Element, etree._Element]:
    root = _epp()
    command = _sub(root, EPP_NS, "command")
    return root, command


def _finish(root: etree._Element, command: etree._Element, cltrid: str) -> bytes:
    _sub(command, EPP_NS, "clTRID", cltrid)
    return serialize(root)


def hello() -> bytes:
    root = _epp()
    _sub(root, EPP_NS, "hello")
    return serialize(root)


def login(
    *, client_id: str, password: str, obj_uris: list[str], ext_uris: list[str], cltrid: str
) -> bytes:
    root, command = _command(cltrid)
    login_ = _sub(command, EPP_NS, "login")
    _sub(login_, EPP_NS, "clID", client_id)
    _sub(login_, EPP_NS, "pw", password)
    options = _sub(login_, EPP_NS, "options")
    _sub(options, EPP_NS, "version", "1.0")
    _sub(options, EPP_NS, "lang", "en")
    svcs = _sub(login_, EPP_NS, "svcs")
    for uri in obj_uris:
        _sub(svcs, EPP_NS, "objURI", uri)
    if ext_uris:
        ext = _sub(svcs, EPP_NS, "svcExtension")
        for uri in ext_uris:
            _sub(ext, EPP_NS, "extURI", uri)
    return _finish(root, command, cltrid)


def logout(*, cltrid: str) -> bytes:
    root, command = _command(cltrid)
    _sub(command, EPP_NS, "logout")
    return _finish(root, command, cltrid)


def _domain_command(
    verb: str, cltrid: str
) -> tuple[etree._Element, etree._Element, etree._Element]:
    root, command = _command(cltrid)
    outer = _sub(command, EPP_NS, verb)
    inner = etree.SubElement(outer, f"{{{DOMAIN_NS}}}{verb}", nsmap={"domain": DOMAIN_NS})
    return root, command, inner


def domain_info(name: str, *, cltrid: str) -> bytes:
    root, command, info = _domain_command("info", cltrid)
    _sub(info, DOMAIN_NS, "name", name, hosts="all")
    return _finish(root, command, cltrid)


def domain_update(
    name: str,
    *,
    add_ns: Sequence[str] = (),
    rem_ns: Sequence[str] = (),
    add_status: Sequence[str] = (),
    rem_status: Sequence[str] = (),
    host_attr: bool = False,
    cltrid: str,
) -> bytes:
    """Add and remove nameservers and statuses. Nameservers are host objects (hostObj), or
    host attributes (hostAttr, a name without addresses) for a registry without them."""
    root, command, update = _domain_command("update", cltrid)
    _sub(update, DOMAIN_NS, "name", name)
    for tag, hosts, statuses in (("add", add_ns, add_status), ("rem", rem_ns, rem_status)):
        if not hosts and not statuses:
            continue
        part = _sub(update, DOMAIN_NS, tag)
        if hosts:
            ns = _sub(part, DOMAIN_NS, "ns")
            for host in hosts:
                if host_attr:
                    _sub(_sub(ns, DOMAIN_NS, "hostAttr"), DOMAIN_NS, "hostName", host)
                else:
                    _sub(ns, DOMAIN_NS, "hostObj", host)
        for status in statuses:
            _sub(part, DOMAIN_NS, "status", s=status)
    return _finish(root, command, cltrid)


def domain_renew(name: str, *, current_expiry: date, years: int, cltrid: str) -> bytes:
    root, command, renew = _domain_command("renew", cltrid)
    _sub(renew, DOMAIN_NS, "name", name)
    _sub(renew, DOMAIN_NS, "curExpDate", current_expiry.isoformat())
    _sub(renew, DOMAIN_NS, "period", str(years), unit="y")
    return _finish(root, command, cltrid)


def _host_command(verb: str, cltrid: str) -> tuple[etree._Element, etree._Element, etree._Element]:
    root, command = _command(cltrid)
    outer = _sub(command, EPP_NS, verb)
    inner = etree.SubElement(outer, f"{{{HOST_NS}}}{verb}", nsmap={"host": HOST_NS})
    return root, command, inner


def host_check(names: Sequence[str], *, cltrid: str) -> bytes:
    root, command, check = _host_command("check", cltrid)
    for name in names:
        _sub(check, HOST_NS, "name", name)
    return _finish(root, command, cltrid)


def host_create(name: str, *, cltrid: str) -> bytes:
    """A host object with no addresses: only valid for a host outside the registry's
    zones (the registry refuses one that needs glue)."""
    root, command, create = _host_command("create", cltrid)
    _sub(create, HOST_NS, "name", name)
    return _finish(root, command, cltrid)


# --- answers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Greeting:
    server_id: str
    versions: tuple[str, ...]
    obj_uris: tuple[str, ...]
    ext_uris: tuple[str, ...]


@dataclass(frozen=True)
class Response:
    code: int
    message: str  # the server's <msg>, for staff and as detail; never the whole story
    cltrid: str
    svtrid: str
    root: etree._Element = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.code in SUCCESS_CODES

    def find(self, path: str) -> etree._Element | None:
        return self.root.find(path, NSMAP)

    def findall(self, path: str) -> list[etree._Element]:
        return list(self.root.findall(path, NSMAP))


NSMAP = {"epp": EPP_NS, "domain": DOMAIN_NS, "host": HOST_NS}


def _text(element: etree._Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def parse_greeting(frame: bytes) -> Greeting:
    root = parse(frame)
    greeting = root.find("epp:greeting", NSMAP)
    if greeting is None:
        raise MalformedFrame("expected a <greeting>")
    menu = greeting.find("epp:svcMenu", NSMAP)
    if menu is None:
        raise MalformedFrame("the greeting has no <svcMenu>")
    return Greeting(
        server_id=_text(greeting.find("epp:svID", NSMAP)),
        versions=tuple(_text(e) for e in menu.findall("epp:version", NSMAP)),
        obj_uris=tuple(_text(e) for e in menu.findall("epp:objURI", NSMAP)),
        ext_uris=tuple(_text(e) for e in menu.findall("epp:svcExtension/epp:extURI", NSMAP)),
    )


def parse_response(frame: bytes) -> Response:
    root = parse(frame)
    response = root.find("epp:response", NSMAP)
    if response is None:
        raise MalformedFrame("expected a <response>")
    result = response.find("epp:result", NSMAP)
    if result is None:
        raise MalformedFrame("the response has no <result>")
    try:
        code = int(result.get("code", ""))
    except ValueError:
        raise MalformedFrame("the result has no numeric code") from None
    return Response(
        code=code,
        message=_text(result.find("epp:msg", NSMAP)),
        cltrid=_text(response.find("epp:trID/epp:clTRID", NSMAP)),
        svtrid=_text(response.find("epp:trID/epp:svTRID", NSMAP)),
        root=root,
    )


def xml_date(text: str) -> date | None:
    """The date of an EPP dateTime ("2027-04-03T22:00:00.0Z" -> 2027-04-03), as the
    registry writes it: that is the date it expects back as curExpDate."""
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        return None
