"""The EPP driver against the local EPP registry (tests/epp_server.py): TLS with client
certificates, RFC 5734 framing, the session, each operation, each error code, timeouts,
drops and reconnection. The registry checks every frame it receives, and every answer it
writes, against the EPP schema (epp/schema/); a test fails if the driver sent an invalid
one (see the `registry` fixture)."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from lxml import etree

from clientarea.accounts.tests.factories import access_of
from clientarea.core.outside import (
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    outside_call,
)
from clientarea.domains.epp import EppRegistrarDriver, xml
from clientarea.domains.epp.client import (
    MAX_FRAME_BYTES,
    FrameError,
    read_frame,
    write_frame,
)
from clientarea.domains.epp.errors import REFUSALS

from .epp_server import EppCerts, EppTestServer, RegistryDomain, frame_errors, make_certs

if TYPE_CHECKING:
    from clientarea.domains.models import Domain

PASSWORD = "s3cret-pass"
EXAMPLE: Any = SimpleNamespace(name="example.com")  # stands for a Domain: only .name is used
N = xml.NSMAP


@pytest.fixture(scope="session")
def epp_certs(tmp_path_factory: pytest.TempPathFactory) -> EppCerts:
    return make_certs(tmp_path_factory.mktemp("epp-certs"))


@pytest.fixture
def registry(epp_certs: EppCerts) -> Iterator[EppTestServer]:
    server = EppTestServer(epp_certs, password=PASSWORD).start()
    server.domains["example.com"] = RegistryDomain(
        "example.com",
        expiry=date(2027, 4, 3),
        statuses={"clientTransferProhibited"},
        nameservers=["ns1.host.net", "ns2.host.net"],
    )
    server.domains["other.org"] = RegistryDomain(
        "other.org", expiry=date(2027, 1, 1), sponsor="another-registrar"
    )
    server.hosts |= {"ns1.host.net", "ns2.host.net", "ns3.host.net"}
    yield server
    server.stop()
    # Every command the driver sent, and every answer the registry wrote, is valid EPP.
    assert not server.invalid_frames, server.invalid_frames
    assert not server.invalid_answers, server.invalid_answers


@pytest.fixture
def epp_settings(settings: Any, registry: EppTestServer, epp_certs: EppCerts) -> Any:
    settings.EPP_HOST = "127.0.0.1"
    settings.EPP_PORT = registry.port
    settings.EPP_CLIENT_ID = "registrar1"
    settings.EPP_PASSWORD = PASSWORD
    settings.EPP_CERT_FILE = str(epp_certs.client_cert)
    settings.EPP_KEY_FILE = str(epp_certs.client_key)
    settings.EPP_CA_FILE = str(epp_certs.ca)
    settings.EPP_VERIFY_TLS = True
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = 1.0
    settings.OUTSIDE_CALL_BUDGET_SECONDS = 2.5
    settings.OUTSIDE_CALL_BACKOFF_SECONDS = 0.01
    return settings


@pytest.fixture
def driver(epp_settings: Any) -> Iterator[EppRegistrarDriver]:
    epp = EppRegistrarDriver()
    yield epp
    epp.close()


def sent(registry: EppTestServer, command: str) -> list[etree._Element]:
    """The frames the registry received for `command` (e.g. "domain:update"), parsed."""
    frames = []
    for frame in registry.received:
        root = xml.parse(frame)
        verb = root.find("epp:command/*", N)
        if verb is None:
            continue
        name = etree.QName(verb).localname
        if name not in ("login", "logout") and len(verb):
            prefix = {xml.DOMAIN_NS: "domain", xml.HOST_NS: "host"}[etree.QName(verb[0]).namespace]
            name = f"{prefix}:{name}"
        if name == command:
            frames.append(root)
    return frames


# --- framing (RFC 5734) ---------------------------------------------------------------------


def test_frame_header_is_the_total_length_including_itself() -> None:
    a, b = socket.socketpair()
    with a, b:
        write_frame(a, b"<epp/>")
        raw = b.recv(100)
        assert raw[:4] == struct.pack(">I", 4 + 6)
        assert raw[4:] == b"<epp/>"
        a.sendall(struct.pack(">I", 4 + 5) + b"hello")
        assert read_frame(b) == b"hello"


@pytest.mark.parametrize("length", [0, 4, MAX_FRAME_BYTES + 1])
def test_a_bad_frame_length_is_refused(length: int) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(struct.pack(">I", length))
        with pytest.raises(FrameError):
            read_frame(b)


def test_a_frame_cut_short_is_an_error() -> None:
    a, b = socket.socketpair()
    with b:
        a.sendall(struct.pack(">I", 100) + b"<epp")
        a.close()
        with pytest.raises(FrameError, match="closed"):
            read_frame(b)


# --- what the driver sends is valid EPP --------------------------------------------------------


def test_every_command_the_builders_make_is_valid() -> None:
    frames = [
        xml.hello(),
        xml.login(
            client_id="registrar1",
            password=PASSWORD,
            obj_uris=[xml.DOMAIN_NS, xml.HOST_NS],
            ext_uris=["urn:ietf:params:xml:ns:secDNS-1.1"],
            cltrid="CA-1",
        ),
        xml.logout(cltrid="CA-2"),
        xml.domain_info("example.com", cltrid="CA-3"),
        xml.domain_update(
            "example.com", add_ns=["a.example.net"], rem_ns=["b.example.net"], cltrid="CA-4"
        ),
        xml.domain_update("example.com", add_status=["clientTransferProhibited"], cltrid="CA-5"),
        xml.domain_update(
            "example.com",
            add_ns=["a.example.net"],
            rem_status=["clientTransferProhibited"],
            cltrid="CA-6",
        ),
        xml.domain_update("example.com", rem_ns=["b.example.net"], host_attr=True, cltrid="CA-10"),
        xml.domain_renew("example.com", current_expiry=date(2027, 4, 3), years=2, cltrid="CA-7"),
        xml.host_check(["a.example.net", "b.example.net"], cltrid="CA-8"),
        xml.host_create("a.example.net", cltrid="CA-9"),
    ]
    for frame in frames:
        assert xml.schema_errors(frame) == [], frame
        assert frame_errors(frame) == [], frame  # by the official schemas, if given


def own_errors(frame: bytes) -> list[str]:
    """By our schema (epp/schema/), whatever EPP_SCHEMA_DIR says."""
    return xml.schema_errors(frame, xml.schema())


RENEW = xml.domain_renew("example.com", current_expiry=date(2027, 4, 3), years=1, cltrid="CA-1")
UPDATE = xml.domain_update(
    "example.com",
    add_ns=["a.example.net"],
    rem_ns=["b.example.net"],
    add_status=["clientHold"],
    cltrid="CA-1",
)


def _moved_rem_before_add(frame: bytes) -> bytes:
    root = xml.parse(frame)
    update = root.find("epp:command/epp:update/domain:update", N)
    assert update is not None
    rem = update.find("domain:rem", N)
    assert rem is not None
    update.insert(1, rem)  # <rem> right after <name>, before <add>
    return xml.serialize(root)


def _status_before_ns(frame: bytes) -> bytes:
    root = xml.parse(frame)
    add = root.find("epp:command/epp:update/domain:update/domain:add", N)
    assert add is not None
    add.append(add[0])  # <ns> after <status>
    return xml.serialize(root)


def _without_cltrid(frame: bytes) -> bytes:
    root = xml.parse(frame)
    cltrid = root.find("epp:command/epp:clTRID", N)
    assert cltrid is not None
    cltrid.getparent().remove(cltrid)
    return xml.serialize(root)


def _with_unknown_child(frame: bytes) -> bytes:
    root = xml.parse(frame)
    renew = root.find("epp:command/epp:renew/domain:renew", N)
    assert renew is not None
    etree.SubElement(renew, f"{{{xml.DOMAIN_NS}}}authInfo")
    return xml.serialize(root)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(RENEW.replace(b"curExpDate", b"curExpiry"), id="misspelt-element"),
        pytest.param(_moved_rem_before_add(UPDATE), id="rem-before-add"),
        pytest.param(_status_before_ns(UPDATE), id="status-before-ns"),
        pytest.param(RENEW.replace(b'unit="y"', b'unit="d"'), id="period-unit-d"),
        pytest.param(RENEW.replace(b'unit="y"', b""), id="period-without-unit"),
        pytest.param(RENEW.replace(b">1</domain:period>", b">0</domain:period>"), id="period-0"),
        pytest.param(
            RENEW.replace(b">1</domain:period>", b">100</domain:period>"), id="period-100"
        ),
        pytest.param(RENEW.replace(b">2027-04-03<", b">3 April 2027<"), id="curExpDate-not-a-date"),
        pytest.param(_without_cltrid(RENEW), id="no-clTRID"),
        pytest.param(_without_cltrid(xml.logout(cltrid="CA-1")), id="logout-without-clTRID"),
        pytest.param(xml.domain_info("example.com", cltrid="X"), id="clTRID-too-short"),
        pytest.param(
            xml.domain_update("example.com", add_status=["clientLocked"], cltrid="CA-1"),
            id="unknown-status",
        ),
        pytest.param(xml.domain_update("example.com", cltrid="CA-1"), id="update-changing-nothing"),
        pytest.param(_with_unknown_child(RENEW), id="unknown-element"),
        pytest.param(
            RENEW.replace(xml.DOMAIN_NS.encode(), b"urn:ietf:params:xml:ns:domain-2.0"),
            id="wrong-namespace",
        ),
        pytest.param(
            RENEW.replace(b"<domain:curExpDate>2027-04-03</domain:curExpDate>", b""),
            id="renew-without-curExpDate",
        ),
        pytest.param(
            xml.host_check(["a.example.net"], cltrid="CA-1")
            .replace(b"<check", b"<info", 1)
            .replace(b"</check>", b"</info>", 1),
            id="host-object-in-epp-info",
        ),
        pytest.param(
            xml.login(
                client_id="registrar1",
                password="short",
                obj_uris=[xml.DOMAIN_NS],
                ext_uris=[],
                cltrid="CA-1",
            ),
            id="login-password-too-short",
        ),
        pytest.param(
            xml.login(
                client_id="registrar1", password=PASSWORD, obj_uris=[], ext_uris=[], cltrid="CA-1"
            ),
            id="login-without-objURI",
        ),
    ],
)
def test_the_schema_catches_a_malformed_command(bad: bytes) -> None:
    """The validation has teeth: each of these is a bug a driver could have."""
    assert own_errors(bad)


def _answer(body: str, code: int = 1000, trid: str = "<clTRID>CA-1</clTRID>") -> bytes:
    return (
        '<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"'
        ' xmlns:domain="urn:ietf:params:xml:ns:domain-1.0"'
        ' xmlns:host="urn:ietf:params:xml:ns:host-1.0"><response>'
        f'<result code="{code}"><msg>Done</msg></result>{body}'
        f"<trID>{trid}<svTRID>SV-1</svTRID></trID></response></epp>"
    ).encode()


INFO = (
    "<resData><domain:infData><domain:name>example.com</domain:name>"
    "<domain:roid>D1-TEST</domain:roid>{status}"
    "<domain:ns><domain:hostObj>ns1.host.net</domain:hostObj></domain:ns>"
    "<domain:clID>registrar1</domain:clID>"
    "<domain:exDate>2027-04-03T22:00:00.0Z</domain:exDate>"
    "</domain:infData></resData>"
)
GOOD_STATUS = '<domain:status s="clientTransferProhibited"/>'
CLID_FIRST = INFO.format(status=GOOD_STATUS).replace(
    "<domain:ns>", "<domain:clID>registrar1</domain:clID><domain:ns>", 1
)


def test_the_schema_accepts_the_answers_we_read() -> None:
    assert own_errors(_answer(INFO.format(status=GOOD_STATUS))) == []
    assert own_errors(_answer("", code=2303, trid="")) == []  # no clTRID: the server had none
    renewed = (
        "<resData><domain:renData><domain:name>example.com</domain:name>"
        "<domain:exDate>2029-04-03T22:00:00.0Z</domain:exDate></domain:renData></resData>"
    )
    assert own_errors(_answer(renewed)) == []


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(
            _answer(INFO.format(status='<domain:status s="locked"/>')), id="unknown-status"
        ),
        pytest.param(_answer("", code=2999), id="result-code-outside-range"),
        pytest.param(_answer("", code=2010), id="result-code-undefined"),
        pytest.param(_answer("", code=999), id="result-code-below-range"),
        pytest.param(
            _answer(INFO.format(status=GOOD_STATUS)).replace(b"<svTRID>SV-1</svTRID>", b""),
            id="no-svTRID",
        ),
        pytest.param(
            _answer(INFO.format(status=GOOD_STATUS).replace("roid", "repoId")),
            id="misspelt-element",
        ),
        pytest.param(
            _answer(INFO.format(status=GOOD_STATUS).replace("infData", "infoData")),
            id="unknown-answer",
        ),
        pytest.param(_answer(CLID_FIRST), id="clID-before-ns"),
        pytest.param(
            _answer(INFO.format(status=GOOD_STATUS)).replace(b"<msg>Done</msg>", b""),
            id="result-without-msg",
        ),
    ],
)
def test_the_schema_catches_a_malformed_answer(bad: bytes) -> None:
    assert own_errors(bad)


def test_official_schemas_are_looked_for_by_their_names(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"epp-1\.0\.xsd"):
        xml.schema(str(tmp_path))


def test_names_are_text_never_markup() -> None:
    frame = xml.domain_info('evil.com</domain:name><x a="', cltrid="CA-123")
    root = xml.parse(frame)
    assert root.findtext("epp:command/epp:info/domain:info/domain:name", "", N) == (
        'evil.com</domain:name><x a="'
    )


def test_the_registry_refuses_an_invalid_frame_with_2001(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    def bad(cltrid: str) -> bytes:
        return xml.domain_info("example.com", cltrid=cltrid).replace(
            b'hosts="all"', b'hosts="some"'
        )

    response = driver.client.command(bad)
    assert response.code == 2001
    assert len(registry.invalid_frames) == 1
    registry.invalid_frames.clear()  # expected here; the fixture fails on any other


# --- parsing answers safely ---------------------------------------------------------------------


def test_answers_with_a_doctype_or_entities_are_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello>&b;</hello></epp>'
    )
    with pytest.raises(xml.MalformedFrame):
        xml.parse(bomb)
    external = (
        b'<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello>&x;</hello></epp>'
    )
    with pytest.raises(xml.MalformedFrame):
        xml.parse(external)
    with pytest.raises(xml.MalformedFrame):
        xml.parse(b"not xml")


# --- session ---------------------------------------------------------------------------------


def test_greeting_login_and_a_reused_session(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    driver.domain_info(EXAMPLE)
    driver.domain_info(EXAMPLE)
    assert registry.connections == 1
    assert registry.logins == 1
    (login,) = sent(registry, "login")
    body = login.find("epp:command/epp:login", N)
    assert body is not None
    assert body.findtext("epp:clID", "", N) == "registrar1"
    assert body.findtext("epp:options/epp:version", "", N) == "1.0"
    assert body.findtext("epp:options/epp:lang", "", N) == "en"
    # Only the services we use, of those the greeting offered (it also offered contact).
    assert [e.text for e in body.findall("epp:svcs/epp:objURI", N)] == [xml.DOMAIN_NS, xml.HOST_NS]


def test_every_command_has_its_own_client_transaction_id(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    driver.set_nameservers(EXAMPLE, ["ns1.host.net", "ns9.elsewhere.org"])
    driver.set_registrar_lock(EXAMPLE, False)
    ids = [
        xml.parse(f).findtext("epp:command/epp:clTRID", "", N)
        for f in registry.received
        if b"<command" in f
    ]
    assert len(ids) >= 5
    assert len(set(ids)) == len(ids)


def test_threads_share_one_session_one_command_at_a_time(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    results: list[date | None] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(driver.domain_info(EXAMPLE).expiry_date)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors
    assert results == [date(2027, 4, 3)] * 20
    assert registry.connections == 1


def test_close_logs_out(driver: EppRegistrarDriver, registry: EppTestServer) -> None:
    driver.domain_info(EXAMPLE)
    driver.close()
    assert registry.logouts == 1
    driver.close()  # a second close does nothing
    assert registry.logouts == 1


def test_an_idle_session_the_registry_dropped_is_reopened_transparently(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.idle_timeout = 0.2
    driver.domain_info(EXAMPLE)
    time.sleep(0.5)  # the registry closes the session meanwhile
    driver.set_registrar_lock(EXAMPLE, False)
    assert registry.logins == 2
    assert "clientTransferProhibited" not in registry.domains["example.com"].statuses


def test_a_registry_restart_between_calls_is_survived(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    driver.domain_info(EXAMPLE)
    registry.drop_all_sessions()
    time.sleep(0.1)
    info = driver.domain_info(EXAMPLE)
    assert info.expiry_date == date(2027, 4, 3)
    assert registry.connections == 2


def test_hello_keeps_an_idle_session_alive(
    driver: EppRegistrarDriver, registry: EppTestServer, settings: Any
) -> None:
    settings.EPP_HELLO_AFTER_SECONDS = 0.0
    driver.domain_info(EXAMPLE)
    driver.domain_info(EXAMPLE)
    assert "hello" in registry.commands
    assert registry.connections == 1
    assert driver.client.hello().server_id == "Test Registry"


def test_a_session_ended_by_the_registry_is_reopened_and_the_command_sent_again(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:update", "end_session")  # 2500: failed, closing the connection
    driver.set_registrar_lock(EXAMPLE, False)
    assert registry.logins == 2
    assert len(sent(registry, "domain:update")) == 2
    assert "clientTransferProhibited" not in registry.domains["example.com"].statuses


# --- operations --------------------------------------------------------------------------------


def test_domain_info(driver: EppRegistrarDriver) -> None:
    info = driver.domain_info(EXAMPLE)
    assert info.name == "example.com"
    assert info.statuses == {"clientTransferProhibited"}
    assert info.registrar_lock
    assert info.nameservers == ("ns1.host.net", "ns2.host.net")
    assert info.expiry_date == date(2027, 4, 3)


def test_set_nameservers_sends_the_difference_and_creates_missing_hosts(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    driver.set_nameservers(EXAMPLE, ["NS1.host.net.", "ns9.elsewhere.org"])
    assert registry.domains["example.com"].nameservers == ["ns1.host.net", "ns9.elsewhere.org"]
    assert "ns9.elsewhere.org" in registry.hosts
    assert [c for c in registry.commands if c != "login"] == [
        "domain:info",
        "host:check",
        "host:create",
        "domain:update",
    ]
    (update,) = sent(registry, "domain:update")
    assert [e.text for e in update.findall(".//domain:add/domain:ns/domain:hostObj", N)] == [
        "ns9.elsewhere.org"
    ]
    assert [e.text for e in update.findall(".//domain:rem/domain:ns/domain:hostObj", N)] == [
        "ns2.host.net"
    ]


def test_set_nameservers_to_what_the_registry_holds_sends_no_update(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    driver.set_nameservers(EXAMPLE, ["ns2.host.net", "ns1.host.net"])
    assert "domain:update" not in registry.commands


def test_a_nameserver_inside_the_domain_needs_glue_and_is_refused(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    with pytest.raises(OutsideRefused, match="glue") as caught:
        driver.set_nameservers(EXAMPLE, ["ns1.example.com", "ns1.host.net"])
    assert "ns1.example.com is inside example.com" in str(caught.value)
    assert "domain:update" not in registry.commands
    assert "host:create" not in registry.commands
    # One the registry already has (with its glue) is fine.
    registry.hosts.add("ns1.example.com")
    driver.set_nameservers(EXAMPLE, ["ns1.example.com", "ns1.host.net"])
    assert registry.domains["example.com"].nameservers == ["ns1.host.net", "ns1.example.com"]


def test_a_value_xml_cannot_carry_is_refused_not_a_crash(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    with pytest.raises(OutsideRefused, match="characters"):
        driver.set_nameservers(EXAMPLE, ["ns1.bad\x01name.org"])
    assert "domain:update" not in registry.commands


def test_too_many_nameservers_is_the_registrys_policy(driver: EppRegistrarDriver) -> None:
    many = [f"ns{i}.elsewhere.org" for i in range(1, 7)]
    with pytest.raises(OutsideRefused) as caught:
        driver.set_nameservers(EXAMPLE, many)
    assert caught.value.code == "2306"
    assert "policy" in str(caught.value)
    assert "at most 4 nameservers" in str(caught.value)


def test_registrar_lock_off_and_on(driver: EppRegistrarDriver, registry: EppTestServer) -> None:
    driver.set_registrar_lock(EXAMPLE, False)
    assert registry.domains["example.com"].statuses == {"ok"}
    driver.set_registrar_lock(EXAMPLE, True)
    assert registry.domains["example.com"].statuses == {"clientTransferProhibited"}
    removed, added = sent(registry, "domain:update")
    assert [e.get("s") for e in removed.findall(".//domain:rem/domain:status", N)] == [
        "clientTransferProhibited"
    ]
    assert [e.get("s") for e in added.findall(".//domain:add/domain:status", N)] == [
        "clientTransferProhibited"
    ]
    driver.set_registrar_lock(EXAMPLE, True)  # already: no update
    assert len(sent(registry, "domain:update")) == 2


def test_a_domain_locked_by_the_registry_is_refused_with_its_status(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.domains["example.com"].statuses.add("serverUpdateProhibited")
    with pytest.raises(OutsideRefused) as caught:
        driver.set_registrar_lock(EXAMPLE, False)
    assert caught.value.code == "2304"
    assert "locked at the registry (serverUpdateProhibited)" in str(caught.value)
    with pytest.raises(OutsideRefused, match="serverUpdateProhibited"):
        driver.set_nameservers(EXAMPLE, ["ns3.host.net"])


def test_a_2304_from_the_registry_names_the_domains_statuses(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:update", "code", code=2304, message="Object status prohibits operation")
    with pytest.raises(OutsideRefused) as caught:
        driver.set_registrar_lock(EXAMPLE, False)
    assert caught.value.code == "2304"
    assert "(clientTransferProhibited) does not allow its registrar lock" in str(caught.value)


def test_renew(driver: EppRegistrarDriver, registry: EppTestServer) -> None:
    assert driver.renew(EXAMPLE, 2, date(2027, 4, 3)) == date(2029, 4, 3)
    assert registry.domains["example.com"].expiry == date(2029, 4, 3)
    (renew,) = sent(registry, "domain:renew")
    assert renew.findtext(".//domain:curExpDate", "", N) == "2027-04-03"
    period = renew.find(".//domain:period", N)
    assert period is not None and period.get("unit") == "y" and period.text == "2"


def test_renew_asked_again_never_renews_twice(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    assert driver.renew(EXAMPLE, 1, date(2027, 4, 3)) == date(2028, 4, 3)
    # The same renewal again (a retry, or the worker settling it): the registry refuses
    # the stale curExpDate (2306) and holds exactly that renewal, so it is reported made.
    assert driver.renew(EXAMPLE, 1, date(2027, 4, 3)) == date(2028, 4, 3)
    assert registry.domains["example.com"].expiry == date(2028, 4, 3)
    assert len(sent(registry, "domain:renew")) == 2


def test_renew_from_an_expiry_the_registry_does_not_hold_is_refused(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    with pytest.raises(OutsideRefused) as caught:
        driver.renew(EXAMPLE, 1, date(2025, 4, 3))
    assert caught.value.code == "2306"
    assert "holds another expiry date (2027-04-03)" in str(caught.value)
    assert registry.domains["example.com"].expiry == date(2027, 4, 3)


def test_an_unanswered_renewal_retried_renews_once(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:renew", "drop_after")  # renewed, but the answer is lost
    renewed = outside_call(lambda: driver.renew(EXAMPLE, 1, date(2027, 4, 3)), retry_uncertain=True)
    assert renewed == date(2028, 4, 3)
    assert registry.domains["example.com"].expiry == date(2028, 4, 3)


def test_renew_beyond_the_registrys_maximum_is_refused(driver: EppRegistrarDriver) -> None:
    with pytest.raises(OutsideRefused) as caught:
        driver.renew(EXAMPLE, 12, date(2027, 4, 3))
    assert caught.value.code == "2306"
    assert "at most 10 years" in str(caught.value)


def test_renewing_a_domain_the_registry_locked_names_the_status(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.domains["example.com"].statuses.add("serverRenewProhibited")
    with pytest.raises(OutsideRefused) as caught:
        driver.renew(EXAMPLE, 1, date(2027, 4, 3))
    assert caught.value.code == "2304"
    assert "locked at the registry (serverRenewProhibited)" in str(caught.value)


def test_unknown_and_foreign_domains(driver: EppRegistrarDriver) -> None:
    with pytest.raises(OutsideRefused) as caught:
        driver.domain_info(cast(Any, SimpleNamespace(name="nothere.com")))
    assert caught.value.code == "2303"
    assert "does not know" in str(caught.value)
    with pytest.raises(OutsideRefused) as caught:
        driver.domain_info(cast(Any, SimpleNamespace(name="other.org")))
    assert caught.value.code == "2201"
    assert "not sponsored by us" in str(caught.value)


def test_a_registry_without_host_objects_gets_host_attributes(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.host_objects = False  # no host-1.0 in its greeting
    assert driver.domain_info(EXAMPLE).nameservers == ("ns1.host.net", "ns2.host.net")
    driver.set_nameservers(EXAMPLE, ["ns1.host.net", "ns7.elsewhere.org"])
    assert registry.domains["example.com"].nameservers == ["ns1.host.net", "ns7.elsewhere.org"]
    assert "host:check" not in registry.commands  # no host objects to create
    (login,) = sent(registry, "login")
    assert [e.text for e in login.findall(".//epp:svcs/epp:objURI", N)] == [xml.DOMAIN_NS]
    (update,) = sent(registry, "domain:update")
    added = update.findall(".//domain:add/domain:ns/domain:hostAttr/domain:hostName", N)
    assert [e.text for e in added] == ["ns7.elsewhere.org"]
    with pytest.raises(OutsideRefused, match="glue"):
        driver.set_nameservers(EXAMPLE, ["ns1.example.com"])


# --- error codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", [2302, 2303, 2304, 2305, 2306, 2004, 2005, 2201, 2308])
def test_each_refusal_code_becomes_a_clear_message(
    driver: EppRegistrarDriver, registry: EppTestServer, code: int
) -> None:
    registry.fail("domain:update", "code", code=code, message=f"Registry says {code}")
    with pytest.raises(OutsideRefused) as caught:
        driver.set_nameservers(EXAMPLE, ["ns1.host.net"])
    assert caught.value.code == str(code)
    message = str(caught.value)
    assert "nothing was changed" in message
    if code != 2304:  # 2304 is reworded with the domain's statuses
        assert message.startswith(REFUSALS[code])
        assert f"(registry: Registry says {code})" in message
    assert registry.domains["example.com"].nameservers == ["ns1.host.net", "ns2.host.net"]


def test_2400_on_a_change_is_uncertain_and_on_a_read_unavailable(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:update", "code", code=2400, message="Command failed")
    with pytest.raises(OutsideUncertain):
        driver.set_registrar_lock(EXAMPLE, False)
    registry.fail("domain:info", "code", code=2400, message="Command failed")
    with pytest.raises(OutsideUnavailable):
        driver.domain_info(EXAMPLE)


def test_a_bug_of_ours_is_a_refusal_not_a_crash(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:update", "code", code=2102, message="Unimplemented option")
    with pytest.raises(OutsideRefused, match="could not process the request"):
        driver.set_registrar_lock(EXAMPLE, False)


# --- timeouts, drops, credentials, TLS -----------------------------------------------------------


def test_no_answer_is_uncertain_within_the_timeout(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    driver.domain_info(EXAMPLE)  # logged in already
    registry.fail("domain:update", "no_answer")
    started = time.monotonic()
    with pytest.raises(OutsideUncertain, match="did not answer"):
        outside_call(lambda: driver.set_registrar_lock(EXAMPLE, False))
    assert time.monotonic() - started < 2.5  # the 1 s timeout, not a hang
    assert len(sent(registry, "domain:update")) == 1  # an uncertain change is not sent again


def test_an_unanswered_read_is_retried_within_the_budget(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:info", "no_answer", times=100)
    started = time.monotonic()
    with pytest.raises(OutsideUncertain):
        outside_call(lambda: driver.domain_info(EXAMPLE), retry_uncertain=True)
    assert time.monotonic() - started < 5.0  # the 2.5 s budget plus the attempt under way


def test_dropped_after_applying_is_uncertain_and_the_registry_holds_the_change(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:update", "drop_after")
    with pytest.raises(OutsideUncertain):
        driver.set_registrar_lock(EXAMPLE, False)
    # The reconciler asks the registry, which did make the change.
    assert not driver.domain_info(EXAMPLE).registrar_lock


def test_dropped_before_applying_is_uncertain_and_nothing_changed(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("domain:update", "drop_before")
    with pytest.raises(OutsideUncertain):
        driver.set_registrar_lock(EXAMPLE, False)
    assert driver.domain_info(EXAMPLE).registrar_lock


def test_wrong_password_is_unavailable_and_not_hammered(
    driver: EppRegistrarDriver, registry: EppTestServer, epp_settings: Any
) -> None:
    epp_settings.EPP_PASSWORD = "wrong-password"
    with pytest.raises(OutsideUnavailable, match="refused our credentials"):
        outside_call(lambda: driver.domain_info(EXAMPLE))
    # outside_call retried, but the client did not log in again with the same password.
    assert registry.login_attempts == 1
    assert registry.logins == 0


@pytest.mark.parametrize("code", [2200, 2001, 2002, 2501])
def test_a_refused_login_is_unavailable(
    driver: EppRegistrarDriver, registry: EppTestServer, code: int
) -> None:
    registry.fail("login", "code", code=code, message="No")
    with pytest.raises(OutsideUnavailable, match="refused our credentials"):
        driver.domain_info(EXAMPLE)
    assert "domain:info" not in registry.commands


def test_too_many_sessions_at_login_is_unavailable(
    driver: EppRegistrarDriver, registry: EppTestServer
) -> None:
    registry.fail("login", "code", code=2502, message="Session limit exceeded")
    with pytest.raises(OutsideUnavailable, match="too many sessions"):
        driver.domain_info(EXAMPLE)


def test_a_login_refusal_is_tried_again_after_the_cooldown(
    driver: EppRegistrarDriver, registry: EppTestServer, settings: Any
) -> None:
    settings.EPP_LOGIN_RETRY_SECONDS = 0.0
    registry.fail("login", "code", code=2200)
    with pytest.raises(OutsideUnavailable):
        driver.domain_info(EXAMPLE)
    assert driver.domain_info(EXAMPLE).expiry_date == date(2027, 4, 3)
    assert registry.login_attempts == 2


def test_the_registry_down_is_unavailable(driver: EppRegistrarDriver, epp_settings: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        epp_settings.EPP_PORT = probe.getsockname()[1]  # nothing listens there
        with pytest.raises(OutsideUnavailable, match="could not be reached"):
            driver.domain_info(EXAMPLE)


def test_an_untrusted_server_certificate_is_refused(
    driver: EppRegistrarDriver, registry: EppTestServer, epp_settings: Any, epp_certs: EppCerts
) -> None:
    epp_settings.EPP_CA_FILE = str(epp_certs.other_ca)
    with pytest.raises(OutsideUnavailable, match="certificate could not be verified"):
        driver.domain_info(EXAMPLE)
    assert registry.login_attempts == 0  # the password never left


def test_the_system_cas_do_not_trust_a_private_registry_ca(
    driver: EppRegistrarDriver, registry: EppTestServer, epp_settings: Any
) -> None:
    epp_settings.EPP_CA_FILE = ""
    with pytest.raises(OutsideUnavailable, match="certificate could not be verified"):
        driver.domain_info(EXAMPLE)


def test_without_a_client_certificate_the_registry_refuses(
    driver: EppRegistrarDriver, registry: EppTestServer, epp_settings: Any
) -> None:
    epp_settings.EPP_CERT_FILE = ""
    epp_settings.EPP_KEY_FILE = ""
    with pytest.raises(OutsideUnavailable):
        driver.domain_info(EXAMPLE)
    assert registry.login_attempts == 0


def test_the_password_is_in_no_log_record_and_no_message(
    driver: EppRegistrarDriver,
    registry: EppTestServer,
    epp_settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    driver.domain_info(EXAMPLE)
    registry.fail("domain:update", "code", code=2306, message=f"policy error near {PASSWORD}")
    with pytest.raises(OutsideRefused) as refused:
        driver.set_registrar_lock(EXAMPLE, False)
    driver.close()
    wrong = "Wrong-pass-123"
    epp_settings.EPP_PASSWORD = wrong
    registry.echo_password_in_login_error = True  # a careless registry repeats it
    with pytest.raises(OutsideUnavailable) as unavailable:
        driver.domain_info(EXAMPLE)
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        assert PASSWORD not in text
        assert wrong not in text
    for exc in (refused.value, unavailable.value):
        assert PASSWORD not in str(exc) and wrong not in str(exc)
    assert "[redacted]" in str(refused.value)
    assert PASSWORD not in repr(driver._config())


# --- through the service layer: intent, registry call, result, reconciliation ----------------


@pytest.fixture
def epp_driver_setting(epp_settings: Any, registry: EppTestServer) -> Iterator[Any]:
    from clientarea.core.drivers import _instance

    epp_settings.DOMAINS_REGISTRAR_DRIVER = "clientarea.domains.epp.EppRegistrarDriver"
    _instance.cache_clear()
    yield epp_settings
    for driver in [_instance(epp_settings.DOMAINS_REGISTRAR_DRIVER)]:
        assert isinstance(driver, EppRegistrarDriver)
        driver.close()
    _instance.cache_clear()


def registered(registry: EppTestServer, account: Any, **kwargs: Any) -> Domain:

    from .factories import DomainFactory

    domain: Domain = DomainFactory(account=account, expiry_date=date(2027, 4, 3), **kwargs)
    registry.domains[domain.name] = RegistryDomain(
        domain.name,
        expiry=date(2027, 4, 3),
        statuses={"clientTransferProhibited"},
        nameservers=["ns1.host.net", "ns2.host.net"],
    )
    return domain


@pytest.mark.django_db
def test_a_nameserver_change_through_the_service_reaches_the_registry(
    epp_driver_setting: Any, registry: EppTestServer, account: Any
) -> None:
    from clientarea.domains import services
    from clientarea.domains.models import Domain

    domain = registered(registry, account, nameservers=["ns1.host.net", "ns2.host.net"])
    outcome = services.domain_set_nameservers(
        domain=domain,
        access=access_of(account.owner, account),
        nameservers=["ns3.host.net", "ns4.elsewhere.org"],
    )
    assert not outcome.pending
    assert registry.domains[domain.name].nameservers == ["ns3.host.net", "ns4.elsewhere.org"]
    assert Domain.objects.get(pk=domain.pk).nameservers == ["ns3.host.net", "ns4.elsewhere.org"]


@pytest.mark.django_db
def test_a_lock_change_whose_answer_was_lost_is_asked_again_and_found_made(
    epp_driver_setting: Any, registry: EppTestServer, account: Any
) -> None:
    from clientarea.domains import services
    from clientarea.domains.models import Domain

    domain = registered(registry, account)
    registry.fail("domain:update", "drop_after")  # made, but the answer is lost
    outcome = services.domain_set_registrar_lock(
        domain=domain, access=access_of(account.owner, account), locked=False
    )
    # Retried: domain:info shows the lock already off, so no second update is sent.
    assert not outcome.pending
    assert len(sent(registry, "domain:update")) == 1
    assert not Domain.objects.get(pk=domain.pk).registrar_lock


@pytest.mark.django_db
def test_a_lock_change_left_unknown_is_pending_then_reconciled(
    epp_driver_setting: Any, registry: EppTestServer, account: Any
) -> None:
    from django.utils import timezone

    from clientarea.core.outside import pending_changes_reconcile_due
    from clientarea.domains import services
    from clientarea.domains.models import Domain

    domain = registered(registry, account)
    registry.fail("domain:update", "drop_after")  # made, but the answer is lost ...
    registry.fail("domain:info", "no_answer", skip=1, times=100)  # ... and the registry hangs
    outcome = services.domain_set_registrar_lock(
        domain=domain, access=access_of(account.owner, account), locked=False
    )
    assert outcome.pending
    assert Domain.objects.get(pk=domain.pk).registrar_lock  # not claimed before it is known
    assert "clientTransferProhibited" not in registry.domains[domain.name].statuses
    registry.failures.clear()  # the registry answers again
    stats = pending_changes_reconcile_due(now=timezone.now() + timedelta(hours=1))
    assert stats["done"] == 1
    assert not Domain.objects.get(pk=domain.pk).registrar_lock


@pytest.mark.django_db
def test_a_registry_refusal_through_the_service_is_a_message_and_changes_nothing(
    epp_driver_setting: Any, registry: EppTestServer, account: Any
) -> None:
    from clientarea.domains import services
    from clientarea.domains.models import Domain

    domain = registered(registry, account)
    registry.domains[domain.name].statuses.add("serverUpdateProhibited")
    with pytest.raises(services.DomainActionError, match="serverUpdateProhibited"):
        services.domain_set_registrar_lock(
            domain=domain, access=access_of(account.owner, account), locked=False
        )
    assert Domain.objects.get(pk=domain.pk).registrar_lock
    assert "clientTransferProhibited" in registry.domains[domain.name].statuses
