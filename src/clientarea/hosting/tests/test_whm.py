"""The WHM driver against a local WHM API 1 server (real HTTPS on loopback), whose every
request and answer is checked against the vendored description of the functions.

No database: the panel server and the service are unsaved model instances."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from clientarea.core.outside import OutsideRefused, OutsideUnavailable, OutsideUncertain
from clientarea.hosting import whm as whm_module
from clientarea.hosting.drivers import PanelDriver
from clientarea.hosting.models import PanelServer, Service
from clientarea.hosting.whm import WhmPanelDriver, parse_size_mb

from .whm_server import (
    VENDOR_DOC,
    WEAK_PASSWORD,
    TlsFiles,
    WhmTestServer,
    description,
    iter_log_text,
    make_tls,
)

STRONG = "N3w#Strong!Pass"
TIMEOUT = 0.4


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("whm-tls"))


@pytest.fixture(scope="session")
def stranger_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """Another CA: a certificate from it is one our panel server does not trust."""
    return make_tls(tmp_path_factory.mktemp("whm-tls-stranger"), name="Stranger CA")


@pytest.fixture(autouse=True)
def quick_outside_calls(settings: Any) -> None:
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = TIMEOUT
    settings.OUTSIDE_CALL_BUDGET_SECONDS = 3.0
    settings.OUTSIDE_CALL_BACKOFF_SECONDS = 0.01
    settings.OUTSIDE_CALL_ATTEMPTS = 3


@pytest.fixture
def whm(tls: TlsFiles) -> Iterator[WhmTestServer]:
    server = WhmTestServer(tls, hang_seconds=3.0).start()
    server.add_account("bob")
    yield server
    server.stop()
    # Every request the driver sent, and every answer, matched the published description.
    assert server.errors == []


@pytest.fixture
def driver() -> Iterator[WhmPanelDriver]:
    panel = WhmPanelDriver()
    yield panel
    panel.close()


def panel_server(whm: WhmTestServer, tls: TlsFiles, **overrides: Any) -> PanelServer:
    fields: dict[str, Any] = {
        "name": "test",
        "hostname": "127.0.0.1",
        "port": whm.port,
        "api_user": "root",
        "verify_tls": True,
        "ca_file": tls.ca_file,
    }
    token = overrides.pop("token", whm.token)
    fields.update(overrides)
    server = PanelServer(**fields)
    server.set_api_token(token)
    return server


@pytest.fixture
def service(whm: WhmTestServer, tls: TlsFiles) -> Service:
    return Service(
        product_name="Starter", domain="bob.test", username="bob", server=panel_server(whm, tls)
    )


def test_the_driver_is_a_panel_driver(driver: WhmPanelDriver) -> None:
    assert isinstance(driver, PanelDriver)


# --- each call's success path ---------------------------------------------------------------


def test_change_password_sets_it_on_the_panel_through_a_post_body(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    driver.change_password(service, STRONG)

    assert whm.accounts["bob"].password == STRONG
    (call,) = whm.calls("passwd")
    assert call.method == "POST" and call.authorized
    assert call.query == {"api.version": "1"}  # nothing else in the URL, least of all it
    assert call.form == {"user": "bob", "password": STRONG, "db_pass_update": "1"}


def test_login_session_returns_the_panels_one_time_url(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    url = driver.create_login_session(service)

    assert url == whm.session_urls[-1]
    (call,) = whm.calls("create_user_session")
    assert call.query == {"api.version": "1", "user": "bob", "service": "cpaneld"}


def test_account_summary_reads_status_plan_disk_and_bandwidth(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.accounts["bob"].plan = "gold_10G"
    whm.accounts["bob"].bandwidth_limit_bytes = 100 * 1024 * 2**20

    summary = driver.account_summary(service)

    assert summary.status == "active" and not summary.suspended
    assert summary.suspended_reason == ""  # not WHM's "not suspended"
    assert summary.plan == "gold_10G" and summary.domain == "bob.test"
    assert summary.disk_used_mb == 250.0 and summary.disk_limit_mb == 10240.0
    assert summary.bandwidth_used_mb == 1536.0 and summary.bandwidth_limit_mb == 102400.0
    (bandwidth,) = whm.calls("showbw")
    assert bandwidth.query["searchtype"] == "user" and bandwidth.query["search"] == "^bob$"


def test_account_summary_unlimited_disk_and_bandwidth(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.accounts["bob"].disk_limit = "unlimited"

    summary = driver.account_summary(service)

    assert summary.disk_limit_mb is None and summary.bandwidth_limit_mb is None


def test_account_summary_without_bandwidth_when_showbw_fails(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.fail("http500", only={"showbw"})

    summary = driver.account_summary(service)

    assert summary.status == "active" and summary.disk_used_mb == 250.0
    assert summary.bandwidth_used_mb is None
    assert len(whm.calls("showbw")) == 1  # a bonus: asked once, not retried


def test_suspend_and_unsuspend(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    driver.suspend(service, "Nonpayment")

    assert whm.accounts["bob"].suspended and whm.accounts["bob"].suspend_reason == "Nonpayment"
    summary = driver.account_summary(service)
    assert summary.suspended and summary.suspended_reason == "Nonpayment"

    driver.unsuspend(service)

    assert not whm.accounts["bob"].suspended
    assert driver.account_summary(service).status == "active"
    assert whm.calls("suspendacct")[0].query == {
        "api.version": "1",
        "user": "bob",
        "reason": "Nonpayment",
    }


def test_one_pooled_client_per_server(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    driver.account_summary(service)
    driver.account_summary(service)

    assert len(driver._clients) == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("250M", 250.0),
        ("14M", 14.0),
        ("1.5G", 1536.0),
        ("512K", 0.5),
        ("2048", 2048.0),
        (300, 300.0),
        ("unlimited", None),
        ("none", None),
        ("", None),
        (None, None),
        ("lots", None),
    ],
)
def test_parse_size_mb(value: object, expected: float | None) -> None:
    assert parse_size_mb(value) == expected


def test_a_zero_limit_is_unlimited() -> None:
    assert parse_size_mb("0M", zero_is_unlimited=True) is None
    assert parse_size_mb("0M") == 0.0


# --- refusals: the panel's own words --------------------------------------------------------


def test_weak_password_is_refused_in_cpanels_words(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    with pytest.raises(OutsideRefused) as refused:
        driver.change_password(service, "abcdef")

    assert str(refused.value) == WEAK_PASSWORD.format(strength=65)
    assert str(refused.value).startswith("Sorry, the password you selected cannot be used")
    assert whm.accounts["bob"].password != "abcdef"
    assert len(whm.calls("passwd")) == 1  # a refusal is an answer: not asked again


def test_unknown_account_is_refused_with_the_panels_reason(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    service.username = "nobody"

    with pytest.raises(OutsideRefused, match="does not exist"):
        driver.suspend(service, "Nonpayment")


# --- validation against the published description -------------------------------------------


def test_the_vendored_description_is_well_formed() -> None:
    document = json.loads(Path(VENDOR_DOC).read_text())
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    ops = description().operations
    assert set(ops) == {
        "passwd",
        "create_user_session",
        "accountsummary",
        "showbw",
        "suspendacct",
        "unsuspendacct",
    }
    for op in ops.values():
        Draft202012Validator.check_schema(op.request_validator.schema)
        assert "api.version" in op.required
    assert ops["passwd"].required == {"api.version", "user", "password"}
    assert ops["create_user_session"].required == {"api.version", "user", "service"}
    assert ops["suspendacct"].required == {"api.version", "user"}
    assert ops["accountsummary"].one_of_required == ("user", "domain")


@pytest.mark.parametrize(
    ("function", "query", "form", "problem"),
    [
        ("passwd", {"user": "bob"}, {"password": STRONG, "pass": "x"}, "pass"),
        ("passwd", {"user": "bob"}, {}, "'password' is a required property"),
        ("passwd", {"user": "bob", "password": STRONG}, {}, "must not be sent in the URL"),
        ("passwd", {"user": "bob"}, {"password": STRONG, "db_pass_update": "yes"}, "integer"),
        ("passwd", {"user": "bob"}, {"password": STRONG, "db_pass_update": "2"}, "is not one of"),
        ("create_user_session", {"user": "bob", "service": "cpanel"}, None, "is not one of"),
        ("create_user_session", {"user": "bob"}, None, "'service' is a required property"),
        ("accountsummary", {"username": "bob"}, None, "username"),
        ("accountsummary", {}, None, "needs one of user, domain"),
        ("suspendacct", {"user": "bob", "disallow": "1"}, None, "disallow"),
        ("listaccts", {}, None, "not a function the client area may call"),
    ],
)
def test_a_request_off_the_description_fails(
    driver: WhmPanelDriver,
    whm: WhmTestServer,
    service: Service,
    function: str,
    query: dict[str, str],
    form: dict[str, str] | None,
    problem: str,
) -> None:
    """What a driver bug would send (a wrong, missing or mistyped parameter, the password
    in the URL, an unknown function) is caught by the server and fails the call."""
    with pytest.raises(OutsideUnavailable):
        driver._call(
            service.server,
            function,
            query=query,
            form=form,
            changes_state=False,
            retry_uncertain=False,
        )

    assert any(problem in error for error in whm.errors), whm.errors
    whm.errors.clear()  # seen: the fixture's final check is for the driver's own calls


def test_the_api_version_is_required(whm: WhmTestServer) -> None:
    problems = description().check_request("unsuspendacct", [("user", "bob")], [])

    assert problems and "api.version" in problems[0]


def test_answers_are_checked_too() -> None:
    ok = {"metadata": {"command": "accountsummary", "reason": "OK", "result": 1, "version": 1}}
    bad_account = {**ok, "data": {"acct": [{"user": "bob", "domain": "bob.test",
                                            "suspended": "no", "diskused": "1M",
                                            "disklimit": "unlimited"}]}}  # fmt: skip
    no_url = {
        "metadata": {**ok["metadata"], "command": "create_user_session"},
        "data": {"session": "s", "expires": 1, "service": "cpaneld", "cp_security_token": "/c"},
    }

    assert description().check_response("accountsummary", bad_account)
    assert description().check_response("accountsummary", ok)  # success without data
    assert description().check_response("create_user_session", no_url)
    assert not description().check_response(
        "passwd", {"metadata": {**ok["metadata"], "result": 0, "reason": "No."}}
    )


# --- credentials and TLS ------------------------------------------------------------------------


def test_a_wrong_token_is_unavailable_said_clearly_and_not_retried(
    driver: WhmPanelDriver,
    whm: WhmTestServer,
    tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = "WRONGTOKEN0123456789"
    service = Service(username="bob", server=panel_server(whm, tls, token=wrong))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(OutsideUnavailable) as unavailable:
        driver.change_password(service, STRONG)

    assert str(unavailable.value) == (
        "The control panel refused our credentials; nothing was changed. Support has been told."
    )
    assert len(whm.requests) == 1 and not whm.requests[0].authorized
    assert whm.accounts["bob"].password != STRONG
    staff = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert staff and "API token" in staff[0].getMessage()
    assert all(
        wrong not in text and whm.token not in text for text in iter_log_text(caplog.records)
    )


def test_a_token_without_the_privilege_is_for_staff_not_the_customer(
    driver: WhmPanelDriver,
    whm: WhmTestServer,
    service: Service,
    caplog: pytest.LogCaptureFixture,
) -> None:
    whm.not_permitted = {"suspendacct"}

    with pytest.raises(OutsideUnavailable, match="refused our credentials"):
        driver.suspend(service, "Nonpayment")

    assert len(whm.calls("suspendacct")) == 1
    assert any(
        r.levelno == logging.ERROR and "may not run it" in r.getMessage() for r in caplog.records
    )


def test_a_host_name_that_makes_no_url_is_unavailable(
    driver: WhmPanelDriver, whm: WhmTestServer, tls: TlsFiles
) -> None:
    service = Service(username="bob", server=panel_server(whm, tls, hostname="[::1"))

    with pytest.raises(OutsideUnavailable, match="did not answer; nothing was changed"):
        driver.change_password(service, STRONG)


def test_an_untrusted_certificate_is_refused(
    driver: WhmPanelDriver,
    whm: WhmTestServer,
    stranger_tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    service = Service(username="bob", server=panel_server(whm, stranger_tls))

    with pytest.raises(OutsideUnavailable, match="did not answer; nothing was changed"):
        driver.change_password(service, STRONG)

    assert whm.requests == []  # no request ever reached the panel
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)


def test_the_systems_cas_do_not_trust_a_private_ca(
    driver: WhmPanelDriver, whm: WhmTestServer, tls: TlsFiles
) -> None:
    service = Service(username="bob", server=panel_server(whm, tls, ca_file=""))

    with pytest.raises(OutsideUnavailable):
        driver.account_summary(service)

    assert whm.requests == []


def test_a_missing_ca_bundle_is_a_configuration_error(
    driver: WhmPanelDriver, whm: WhmTestServer, tls: TlsFiles, tmp_path: Path
) -> None:
    missing = str(tmp_path / "missing.pem")
    service = Service(username="bob", server=panel_server(whm, tls, ca_file=missing))

    with pytest.raises(OutsideUnavailable, match="not set up"):
        driver.account_summary(service)

    assert whm.requests == []


def test_verification_off_is_honoured_for_a_test_server(
    driver: WhmPanelDriver, whm: WhmTestServer, tls: TlsFiles
) -> None:
    service = Service(username="bob", server=panel_server(whm, tls, ca_file="", verify_tls=False))

    assert driver.account_summary(service).status == "active"


def test_nothing_is_sent_without_a_server_token_or_username(
    driver: WhmPanelDriver, whm: WhmTestServer, tls: TlsFiles
) -> None:
    with pytest.raises(OutsideUnavailable, match="not set up"):
        driver.change_password(Service(username="bob", server=None), STRONG)
    with pytest.raises(OutsideUnavailable, match="not set up"):
        driver.change_password(
            Service(username="bob", server=panel_server(whm, tls, token="")), STRONG
        )
    with pytest.raises(OutsideRefused, match="no control-panel username"):
        driver.change_password(Service(username="", server=panel_server(whm, tls)), STRONG)
    assert whm.requests == []


def test_connection_refused_is_unavailable(
    driver: WhmPanelDriver, whm: WhmTestServer, tls: TlsFiles
) -> None:
    # A port nobody listens on: bound but not listening, and held through the call, so no
    # other process (another test worker) can start listening there meanwhile.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
        service = Service(username="bob", server=panel_server(whm, tls, port=closed_port))

        with pytest.raises(OutsideUnavailable, match="did not answer; nothing was changed"):
            driver.suspend(service, "Nonpayment")


# --- no answer: timeouts, dropped connections, broken answers -----------------------------------


def test_a_hanging_panel_makes_a_password_change_uncertain_within_the_budget(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.fail("hang")
    started = time.monotonic()

    with pytest.raises(OutsideUncertain):
        driver.change_password(service, STRONG)

    assert len(whm.calls("passwd")) == 3  # idempotent: asked again, up to the attempts
    assert time.monotonic() - started < 3 * TIMEOUT + 0.8


def test_the_retry_budget_bounds_a_hanging_panel(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service, settings: Any
) -> None:
    """Attempts of 1 s within a budget of 1.2 s: the second attempt gets only what is left
    of the budget, so the call ends at 1.2 s, not at 2 s."""
    settings.OUTSIDE_CALL_ATTEMPTS = 50
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = 1.0
    settings.OUTSIDE_CALL_BUDGET_SECONDS = 1.2
    whm.fail("hang")
    started = time.monotonic()

    with pytest.raises(OutsideUncertain):
        driver.change_password(service, STRONG)

    elapsed = time.monotonic() - started
    assert 1.1 < elapsed < 1.2 + 0.45, elapsed
    assert len(whm.calls("passwd")) == 2


def test_a_hanging_panel_on_a_read_is_unavailable(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.fail("hang", only={"accountsummary"})

    with pytest.raises(OutsideUnavailable, match="nothing was changed"):
        driver.account_summary(service)


def test_a_login_session_is_never_asked_for_twice(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.fail("hang")

    with pytest.raises(OutsideUncertain):
        driver.create_login_session(service)

    assert len(whm.calls("create_user_session")) == 1


def test_connection_dropped_before_the_panel_acted(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.fail("drop_before")

    with pytest.raises(OutsideUncertain):
        driver.suspend(service, "Nonpayment")

    assert not whm.accounts["bob"].suspended
    assert len(whm.calls("suspendacct")) == 1  # not retried: the state is read back instead


def test_connection_dropped_after_the_panel_acted(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    """Why "uncertain" is the honest answer: the panel did it, and no answer said so. The
    pending change's reconciler reads the account back."""
    whm.fail("drop_after", times=1)

    with pytest.raises(OutsideUncertain):
        driver.suspend(service, "Nonpayment")

    assert whm.accounts["bob"].suspended
    assert driver.account_summary(service).suspended


def test_a_dropped_password_change_is_asked_again_and_succeeds(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service
) -> None:
    whm.fail("drop_after", times=1)

    driver.change_password(service, STRONG)

    assert whm.accounts["bob"].password == STRONG
    assert len(whm.calls("passwd")) == 2


@pytest.mark.parametrize("mode", ["http500", "malformed", "html"])
def test_an_unreadable_answer_to_a_change_is_uncertain(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service, mode: str
) -> None:
    whm.fail(mode)

    with pytest.raises(OutsideUncertain, match="cannot tell whether"):
        driver.unsuspend(service)

    assert len(whm.calls("unsuspendacct")) == 1


@pytest.mark.parametrize("mode", ["http500", "malformed", "html"])
def test_an_unreadable_answer_to_a_read_is_unavailable(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service, mode: str
) -> None:
    whm.fail(mode, only={"accountsummary"})

    with pytest.raises(OutsideUnavailable, match="could not read; nothing was changed"):
        driver.account_summary(service)


def test_an_answer_without_result_is_unreadable(
    driver: WhmPanelDriver, whm: WhmTestServer, service: Service, monkeypatch: Any
) -> None:
    """A JSON answer that is not WHM API 1 (no metadata.result) is not taken as success."""
    original = whm._answer

    def without_result(function: str, **kw: Any) -> dict[str, Any]:
        body = original(function, **kw)
        del body["metadata"]["result"]
        return body

    monkeypatch.setattr(whm, "_answer", without_result)

    with pytest.raises(OutsideUncertain):
        driver.suspend(service, "Nonpayment")
    whm.errors.clear()  # the server's own answer was off the description, on purpose


# --- secrets ------------------------------------------------------------------------------


def test_no_token_password_or_session_url_in_any_log_record(
    driver: WhmPanelDriver,
    whm: WhmTestServer,
    service: Service,
    tls: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "clientarea", "tenacity"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    weak = "abcdef"
    errors: list[BaseException] = []

    driver.change_password(service, STRONG)
    url = driver.create_login_session(service)
    driver.account_summary(service)
    driver.suspend(service, "Nonpayment")
    driver.unsuspend(service)
    for attempt in (
        lambda: driver.change_password(service, weak),
        lambda: driver.change_password(
            Service(username="bob", server=panel_server(whm, tls, token="WRONG")), STRONG
        ),
    ):
        try:
            attempt()
        except Exception as exc:
            errors.append(exc)
    whm.fail("malformed", only={"create_user_session"})
    try:
        driver.create_login_session(service)
    except OutsideUncertain as exc:
        errors.append(exc)
    whm.fail("drop_after", only={"passwd"}, times=1)
    driver.change_password(service, STRONG)

    texts = list(iter_log_text(caplog.records))
    assert any("HTTP Request" in t for t in texts)  # httpx did log, at INFO
    assert any(r.name.startswith("httpcore") for r in caplog.records)  # and httpcore, at DEBUG
    session = url.split("session=")[1]
    for secret in (whm.token, STRONG, weak, url, session, *whm.session_urls):
        assert all(secret not in text for text in texts), secret
        for error in errors:
            assert secret not in str(error) and error.__cause__ is None
    assert len(errors) == 3
    for name in ("httpx", "httpcore", "clientarea", "tenacity"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_the_driver_loads_from_settings(settings: Any) -> None:
    from clientarea.core.drivers import load_driver

    settings.HOSTING_PANEL_DRIVER = "clientarea.hosting.whm.WhmPanelDriver"
    loaded = load_driver(settings.HOSTING_PANEL_DRIVER, PanelDriver)

    assert isinstance(loaded, whm_module.WhmPanelDriver)
