"""The cPanel & WHM driver: WHM API 1 over HTTPS, authenticated with a WHM API token.

Each method is one WHM API 1 function on the service's server
(``https://<host>:<port>/json-api/<function>?api.version=1&…`` with the header
``Authorization: whm <api user>:<token>``), and every failure becomes one of the three
outside-call errors, so a caller always tells the customer the truth:

- the panel answered ``metadata.result: 0`` → ``OutsideRefused`` with WHM's own reason,
  word for word (its password-strength answer is a form error as it stands);
- the panel could not be reached, refused the TLS handshake or our credentials (HTTP
  401/403, or "access/permission denied" for a token without the privilege), or said the
  function does not exist → ``OutsideUnavailable``: nothing was changed; the credential,
  certificate and configuration cases are logged as errors for staff and not retried;
- the request went out and no readable answer came back (read timeout, dropped
  connection, HTTP 5xx, a body that is not WHM API 1 JSON) → ``OutsideUncertain`` for a
  call that changes something; for a read, nothing changed, so ``OutsideUnavailable``.

Secrets: the API token travels only in the Authorization header (httpx never logs
headers); the new password travels in a POST body, never in a URL, because httpx logs
request URLs at INFO; the single sign-on URL is returned to the caller and appears in no
log line, exception message or stored field.

Time: each request has the OUTSIDE_CALL_TIMEOUT_SECONDS timeout, cut to what is left of
OUTSIDE_CALL_BUDGET_SECONDS, so a hanging panel never holds a page longer than the budget,
retries included.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings

from clientarea.core.outside import (
    OutsideError,
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    outside_call,
)

from .drivers import AccountSummary

if TYPE_CHECKING:
    from .models import PanelServer, Service

logger = logging.getLogger(__name__)

NOT_ANSWERED = "The control panel did not answer; nothing was changed."
CREDENTIALS_REFUSED = (
    "The control panel refused our credentials; nothing was changed. Support has been told."
)
NOT_CONFIGURED = (
    "The control panel for this service is not set up yet; nothing was changed. "
    "Support has been told."
)
UNCERTAIN = (
    "The control panel did not answer in time, so we cannot tell whether the change was "
    "made. It is shown as pending until we have checked."
)
UNREADABLE_READ = "The control panel gave an answer we could not read; nothing was changed."
REFUSED_WITHOUT_REASON = "The control panel refused the request without giving a reason."

# One client (connection pool) per server and TLS configuration; a handful of servers is
# usual, the bound only keeps a misconfigured loop from growing it without end.
_MAX_CLIENTS = 32
_MIN_ATTEMPT_SECONDS = 0.05


class WhmPanelDriver:
    """``PanelDriver`` for cPanel & WHM (WHM API 1). Thread-safe: one instance per process
    (``panel_driver()``), one pooled ``httpx.Client`` per server."""

    name = "whm"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: OrderedDict[tuple[str, int, bool, str], httpx.Client] = OrderedDict()

    # --- PanelDriver ----------------------------------------------------------------------

    def change_password(self, service: Service, new_password: str) -> None:
        """``passwd``. Setting the same password again is harmless, so a request that got
        no answer is retried (and a pending change settled by setting it once more). The
        password goes in the POST body, never in the URL."""
        server, user = self._target(service)
        self._call(
            server,
            "passwd",
            form={"user": user, "password": new_password, "db_pass_update": "1"},
            changes_state=True,
            retry_uncertain=True,
        )
        logger.info("WHM: password of %s changed on server %s", user, server.pk)

    def create_login_session(self, service: Service) -> str:
        """``create_user_session`` for cPanel. The URL logs the user in once: it is never
        retried after an unanswered request, and never logged, stored or put in an error."""
        server, user = self._target(service)
        data = self._call(
            server,
            "create_user_session",
            query={"user": user, "service": "cpaneld"},
            changes_state=True,
            retry_uncertain=False,
        )
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith("https://"):
            logger.error(
                "WHM create_user_session on server %s answered without an https URL", server.pk
            )
            raise OutsideUncertain(UNCERTAIN)
        logger.info("WHM: cPanel session created for %s on server %s", user, server.pk)
        return url

    def account_summary(self, service: Service) -> AccountSummary:
        """``accountsummary`` (status, plan, disk), then ``showbw`` for this month's
        bandwidth. Bandwidth is a bonus: if that second call fails, the summary is shown
        without it."""
        server, user = self._target(service)
        data = self._call(
            server,
            "accountsummary",
            query={"user": user},
            changes_state=False,
            retry_uncertain=True,
        )
        acct = _first_account(data, user)
        if acct is None:
            logger.error(
                "WHM accountsummary on server %s: no account %s in the answer", server.pk, user
            )
            raise OutsideUnavailable(UNREADABLE_READ)
        bandwidth_used, bandwidth_limit = self._bandwidth(server, user)
        suspended = _flag(acct.get("suspended"))
        reason = acct.get("suspendreason", acct.get("suspendedreason", ""))
        return AccountSummary(
            status="suspended" if suspended else "active",
            suspended_reason=str(reason or "") if suspended else "",
            plan=str(acct.get("plan") or ""),
            domain=str(acct.get("domain") or ""),
            disk_used_mb=parse_size_mb(acct.get("diskused")),
            disk_limit_mb=parse_size_mb(acct.get("disklimit"), zero_is_unlimited=True),
            bandwidth_used_mb=bandwidth_used,
            bandwidth_limit_mb=bandwidth_limit,
        )

    def suspend(self, service: Service, reason: str) -> None:
        """``suspendacct``. Not retried after an unanswered request: whether the account
        is suspended is then read back (``account_summary``) by the pending change's
        reconciler, rather than guessed from a second answer."""
        server, user = self._target(service)
        query = {"user": user}
        if reason:
            query["reason"] = reason
        self._call(server, "suspendacct", query=query, changes_state=True, retry_uncertain=False)
        logger.info("WHM: account %s suspended on server %s", user, server.pk)

    def unsuspend(self, service: Service) -> None:
        """``unsuspendacct``; like ``suspend``, settled by reading the status back."""
        server, user = self._target(service)
        self._call(
            server, "unsuspendacct", query={"user": user}, changes_state=True, retry_uncertain=False
        )
        logger.info("WHM: account %s unsuspended on server %s", user, server.pk)

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection (tests; a process exit does it anyway)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            client.close()

    def _target(self, service: Service) -> tuple[PanelServer, str]:
        if not service.username:
            raise OutsideRefused("This service has no control-panel username yet.")
        server = service.server
        if server is None:
            logger.error("Service %s has no control-panel server", service.pk)
            raise OutsideUnavailable(NOT_CONFIGURED)
        if not server.has_api_token:
            logger.error("Control-panel server %s (%s) has no API token", server.pk, server.name)
            raise OutsideUnavailable(NOT_CONFIGURED)
        return server, service.username

    def _bandwidth(self, server: PanelServer, user: str) -> tuple[float | None, float | None]:
        try:
            data = self._call(
                server,
                "showbw",
                query={"searchtype": "user", "search": f"^{re.escape(user)}$"},
                changes_state=False,
                retry_uncertain=False,
                attempts=1,
            )
        except OutsideError as exc:
            logger.warning("WHM showbw on server %s failed (%s)", server.pk, type(exc).__name__)
            return None, None
        acct = _first_account(data, user)
        if acct is None:
            return None, None
        used = acct.get("totalbytes")
        limit = acct.get("limit")
        used_mb = used / 2**20 if isinstance(used, int | float) and used >= 0 else None
        limit_mb = limit / 2**20 if isinstance(limit, int | float) and limit > 0 else None
        return used_mb, limit_mb

    def _client(self, server: PanelServer) -> httpx.Client:
        key = (server.hostname, server.port, server.verify_tls, server.ca_file)
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
            verify: ssl.SSLContext | bool
            if server.verify_tls:
                verify = ssl.create_default_context(cafile=server.ca_file or None)
            else:
                verify = False
            client = httpx.Client(
                verify=verify,
                timeout=settings.OUTSIDE_CALL_TIMEOUT_SECONDS,
                limits=httpx.Limits(
                    max_connections=10, max_keepalive_connections=4, keepalive_expiry=30.0
                ),
                follow_redirects=False,
                # No proxy or CA bundle from the environment: the server's own settings say
                # how it is reached and trusted.
                trust_env=False,
                headers={"Accept": "application/json", "User-Agent": "clientarea-whm/1"},
            )
            self._clients[key] = client
            while len(self._clients) > _MAX_CLIENTS:
                _, old = self._clients.popitem(last=False)
                old.close()
            return client

    def _call(
        self,
        server: PanelServer,
        function: str,
        *,
        query: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
        changes_state: bool,
        retry_uncertain: bool,
        attempts: int | None = None,
    ) -> Any:
        """One WHM API 1 function, retried as `outside_call` allows within the budget.
        Returns the answer's ``data`` (or None). `form` makes it a POST with those fields
        in the body; `query` fields go in the URL (never a secret there)."""
        deadline = time.monotonic() + settings.OUTSIDE_CALL_BUDGET_SECONDS
        last_error: list[OutsideError] = []

        def attempt() -> Any:
            left = deadline - time.monotonic()
            if left < _MIN_ATTEMPT_SECONDS and last_error:
                raise last_error[-1]
            timeout = max(_MIN_ATTEMPT_SECONDS, min(settings.OUTSIDE_CALL_TIMEOUT_SECONDS, left))
            try:
                return self._request(
                    server, function, query=query, form=form, timeout=timeout,
                    changes_state=changes_state,
                )  # fmt: skip
            except _Final as final:
                return final  # returned, not raised: asking again cannot help
            except OutsideError as exc:
                last_error.append(exc)
                raise

        answer = outside_call(attempt, retry_uncertain=retry_uncertain, attempts=attempts)
        if isinstance(answer, _Final):
            # As outside_call does for a refusal: after an unanswered attempt, a final
            # "no" does not mean nothing changed.
            unanswered = [e for e in last_error if isinstance(e, OutsideUncertain)]
            raise (unanswered[-1] if unanswered else answer.error)
        return answer

    def _request(
        self,
        server: PanelServer,
        function: str,
        *,
        query: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        timeout: float,
        changes_state: bool,
    ) -> Any:
        url = f"https://{server.hostname}:{server.port}/json-api/{function}"
        params = {"api.version": "1", **(query or {})}
        headers = {"Authorization": f"whm {server.api_user}:{server.api_token()}"}
        where = f"server {server.pk} ({server.hostname}:{server.port})"
        try:
            client = self._client(server)
        except (OSError, ssl.SSLError):
            logger.error("WHM %s on %s: the CA bundle cannot be read", function, where)
            raise _Final(OutsideUnavailable(NOT_CONFIGURED)) from None
        try:
            if form is not None:
                response = client.post(
                    url, params=params, data=dict(form), headers=headers, timeout=timeout
                )
            else:
                response = client.get(url, params=params, headers=headers, timeout=timeout)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
            httpx.LocalProtocolError,
            httpx.ProxyError,
        ) as exc:
            # Nothing reached WHM: refused, unreachable, or the TLS handshake failed.
            if _is_tls_failure(exc):
                logger.error(
                    "WHM %s on %s: the TLS handshake failed; check the server's certificate "
                    "and the CA bundle (%s)",
                    function, where, _describe(exc),
                )  # fmt: skip
                raise _Final(OutsideUnavailable(NOT_ANSWERED)) from None
            logger.warning("WHM %s on %s: not reached (%s)", function, where, _describe(exc))
            raise OutsideUnavailable(NOT_ANSWERED) from None
        except (httpx.InvalidURL, UnicodeError, ValueError):
            # A host name or port that makes no URL (a scheme or path typed into it, a
            # label IDNA refuses).
            logger.error("WHM %s on %s: the host name or port is not valid", function, where)
            raise _Final(OutsideUnavailable(NOT_ANSWERED)) from None
        except httpx.RequestError as exc:
            # Sent, then no answer: read timeout, dropped connection, a broken reply.
            logger.warning("WHM %s on %s: no answer (%s)", function, where, _describe(exc))
            if changes_state:
                raise OutsideUncertain(UNCERTAIN) from None
            raise OutsideUnavailable(NOT_ANSWERED) from None

        status = response.status_code
        if status in (401, 403):
            logger.error(
                "WHM %s on %s: HTTP %s, the API token of user %s was refused (wrong, revoked "
                "or missing the needed privileges)",
                function, where, status, server.api_user,
            )  # fmt: skip
            raise _Final(OutsideUnavailable(CREDENTIALS_REFUSED))
        if status in (400, 404, 405, 413, 414, 431, 501):
            # Refused as a request (wrong port or function, too large): nothing was done.
            logger.error("WHM %s on %s: HTTP %s (not accepted)", function, where, status)
            raise _Final(OutsideUnavailable(NOT_ANSWERED))
        if status == 429:  # too many requests: nothing was done, asking later may work
            logger.warning("WHM %s on %s: HTTP 429, rate limited", function, where)
            raise OutsideUnavailable(NOT_ANSWERED)
        if status != 200:
            logger.warning("WHM %s on %s: HTTP %s", function, where, status)
            return self._unreadable(changes_state)

        try:
            body = json.loads(response.content)
        except (ValueError, RecursionError):  # not JSON, or nested beyond reason
            logger.warning("WHM %s on %s: the answer is not JSON", function, where)
            return self._unreadable(changes_state)
        metadata = body.get("metadata") if isinstance(body, dict) else None
        result = metadata.get("result") if isinstance(metadata, dict) else None
        if not isinstance(metadata, dict) or result not in (0, 1, "0", "1"):
            logger.warning("WHM %s on %s: the answer is not WHM API 1 JSON", function, where)
            return self._unreadable(changes_state)
        if str(result) == "0":
            reason = metadata.get("reason")
            message = reason.strip() if isinstance(reason, str) and reason.strip() else ""
            if _DENIED.search(message):
                # The token works but may not run this function: staff's to fix, and
                # "Permission denied" would mean nothing to the customer.
                logger.error(
                    "WHM %s on %s: the API token of user %s may not run it (%s)",
                    function, where, server.api_user, message[:200],
                )  # fmt: skip
                raise _Final(OutsideUnavailable(CREDENTIALS_REFUSED))
            logger.info("WHM %s on %s refused", function, where)
            raise OutsideRefused(message or REFUSED_WITHOUT_REASON)
        return body.get("data")

    @staticmethod
    def _unreadable(changes_state: bool) -> Any:
        if changes_state:
            raise OutsideUncertain(UNCERTAIN)
        raise OutsideUnavailable(UNREADABLE_READ)


class _Final(Exception):
    """An answer that asking again cannot change (credentials refused, a certificate that
    does not verify, a function the server does not have): raised at once, not retried."""

    def __init__(self, error: OutsideError) -> None:
        super().__init__(str(error))
        self.error = error


def _first_account(data: Any, user: str) -> dict[str, Any] | None:
    accounts = data.get("acct") if isinstance(data, dict) else None
    if not isinstance(accounts, list):
        return None
    for acct in accounts:
        if isinstance(acct, dict) and acct.get("user") == user:
            return acct
    return None


def _flag(value: object) -> bool:
    return str(value).strip() in {"1", "true", "True"}


_DENIED = re.compile(r"\b(?:access|permission) denied\b", re.IGNORECASE)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNIT_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}


def parse_size_mb(value: object, *, zero_is_unlimited: bool = False) -> float | None:
    """A WHM size ("250M", "1.5G", "512K", 250, "unlimited", "none") in MiB; None when
    unlimited or unreadable. A bare number is MiB, as WHM reports disk use. For a limit,
    0 means unlimited, as in WHM's packages."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        match = _SIZE.match(str(value))
        if not match:
            return None
        number, unit = float(match.group(1)), match.group(2).lower()
    if zero_is_unlimited and number == 0:
        return None
    return number * _UNIT_MB[unit]


def _is_tls_failure(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "SSL" in str(exc) or "certificate" in str(exc)


def _describe(exc: BaseException) -> str:
    """The kind of failure, for staff: the exception's class and its own short text (httpx
    transport errors name the socket problem, never the URL or a header)."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = ["WhmPanelDriver", "parse_size_mb"]
