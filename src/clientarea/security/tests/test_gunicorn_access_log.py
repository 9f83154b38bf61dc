"""gunicorn's access log (``RedactingLogger``) line by line, with formats that name every
secret-bearing thing it can: each secret route's path and query string, the Referer, and
credential headers (Authorization, Cookie, Set-Cookie). The real server is started in
``test_server_logs.py``."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from gunicorn.config import Config
from gunicorn.glogging import SafeAtoms

from clientarea.security.gunicorn_logger import RedactingLogger

SECRET = "S3cretTok3nValue0123456789abcdefXYZ"
PAT = "ca_pat_" + "A1b2C3d4" * 5

# Every route whose URL carries a secret (the urls modules: accounts' invitation,
# password-reset, ownership-transfer and contact-confirmation links, security's
# email-change link; billing's sandbox tokenizer), with what the log must show instead.
SECRET_ROUTES = [
    (f"/invitation/{SECRET}/", "", "/invitation/[redacted]"),
    (f"/password-reset/MQ/{SECRET}/", "", "/password-reset/[redacted]"),
    (f"/ownership/{SECRET}/", "", "/ownership/[redacted]"),
    (f"/contacts/confirm/{SECRET}/", "", "/contacts/confirm/[redacted]"),
    (f"/security/email/confirm/{SECRET}/", "", "/security/email/confirm/[redacted]"),
    ("/billing/sandbox/tokens/", f"card=visa&exp_month=12&n={SECRET}",
     "/billing/sandbox/tokens/?[redacted]"),
    # A token path's query string, whatever its parameters are called.
    (f"/invitation/{SECRET}/", f"utm_source={SECRET}", "/invitation/[redacted]?[redacted]"),
    ("/invitation/accept/", f"x={SECRET}", "/invitation/accept/?[redacted]"),
    # Any URL's token parameter.
    ("/login/", f"token={SECRET}&page=2", "/login/?token=[redacted]&page=2"),
    ("/billing/invoices/3/pay/return/", f"payment_intent=pi_1&client_secret={SECRET}",
     "/billing/invoices/3/pay/return/?payment_intent=pi_1&client_secret=[redacted]"),
]  # fmt: skip

EVERYTHING = (
    '%(h)s %(u)s "%(r)s" %(s)s U=%(U)s q=%(q)s f="%(f)s" '
    'auth="%({authorization}i)s" cookie="%({cookie}i)s" setcookie="%({set-cookie}o)s" '
    'env_auth="%({http_authorization}e)s" raw="%({raw_uri}e)s" qs="%({query_string}e)s" '
    'sig="%({stripe-signature}i)s" ua="%(a)s"'
)


def _line(path: str, query: str, *, headers: list[tuple[str, str]]) -> str:
    cfg = Config()
    cfg.set("access_log_format", EVERYTHING)
    logger = RedactingLogger(cfg)
    raw_uri = f"{path}?{query}" if query else path
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": raw_uri,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        "HTTP_REFERER": f"https://clients.example.com{raw_uri}",
        "HTTP_USER_AGENT": "curl/8",
        **{"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers},
    }
    request = SimpleNamespace(headers=[(n.upper(), v) for n, v in headers])
    response = SimpleNamespace(
        status="302 Found",
        headers=[("Set-Cookie", f"__Host-sessionid={SECRET}; Path=/"), ("Location", "/")],
        sent=0,
    )
    atoms = logger.atoms(response, request, environ, datetime.timedelta(seconds=0))
    return EVERYTHING % SafeAtoms(atoms)


@pytest.mark.parametrize(("path", "query", "shown"), SECRET_ROUTES)
def test_each_secret_route_is_logged_with_its_secret_replaced(
    path: str, query: str, shown: str
) -> None:
    line = _line(path, query, headers=[("Cookie", f"sessionid={SECRET}")])
    assert SECRET not in line, line
    assert f'"GET {shown} HTTP/1.1"' in line, line
    assert f'raw="{shown}"' in line and f'f="https://clients.example.com{shown}"' in line
    # The query string on its own, as %(q)s and the environ's QUERY_STRING.
    query_shown = shown.partition("?")[2]
    assert f" q={query_shown} f=" in line and f'qs="{query_shown}"' in line, line


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {PAT}", f"Bearer {SECRET}", "Basic " + "YWxpY2U6czNjcmV0LXBhc3N3b3Jk", SECRET],
)
def test_an_authorization_header_is_never_logged(authorization: str) -> None:
    line = _line(
        "/api/v1/invoices",
        "status=unpaid",
        headers=[
            ("Authorization", authorization),
            ("Cookie", f"__Host-sessionid={SECRET}"),
            ("Stripe-Signature", f"t=1,v1={SECRET}"),
        ],
    )
    assert authorization.split()[-1] not in line, line
    assert SECRET not in line and "ca_pat_A1b2" not in line, line
    assert 'auth="[redacted]"' in line and 'env_auth="[redacted]"' in line
    assert 'cookie="[redacted]"' in line and 'setcookie="[redacted]"' in line
    assert 'sig="[redacted]"' in line
    # What is not a secret stays readable.
    assert '"GET /api/v1/invoices?status=unpaid HTTP/1.1" 302' in line and "q=status=unpaid" in line


def test_absent_headers_stay_a_dash() -> None:
    line = _line("/login/", "", headers=[])
    assert 'auth="-"' in line and 'cookie="-"' in line
