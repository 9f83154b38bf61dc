"""An EPP client: RFC 5734 transport (TLS, 4-byte length framing) and an RFC 5730 session
(greeting, login, hello, logout), kept alive and reused across calls.

One session per client, used by one thread at a time (a lock). Each command gets its own
client transaction id and its answer is matched to it. When the registry dropped an idle
session, the client notices before writing the next command (the socket is readable: end of
stream or an unasked-for frame), logs in again and sends it then: nothing was sent, so
nothing can have happened. A connection that fails after a command was written cannot be
trusted any more: it is closed and the command reported as uncertain.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from clientarea.core.outside import OutsideRefused, OutsideUnavailable, OutsideUncertain, time_left

from . import xml
from .errors import login_refused, redact

logger = logging.getLogger(__name__)

HEADER = struct.Struct(">I")  # RFC 5734 section 4: total length, header included
MAX_FRAME_BYTES = 4 * 1024 * 1024
WANTED_OBJECTS = (xml.DOMAIN_NS, xml.HOST_NS)


class FrameError(Exception):
    """The byte stream broke: closed, timed out or not EPP framing."""


@dataclass(frozen=True)
class EppConfig:
    host: str
    port: int
    client_id: str
    password: str
    cert_file: str
    key_file: str
    ca_file: str
    verify_tls: bool
    timeout: float
    # Send <hello> before a command when the session was idle this long, to find out that
    # the registry dropped it before anything else is written.
    hello_after: float = 60.0
    # After the registry refused our login, do not try again with the same credentials for
    # this long (registries lock an account after repeated failures).
    login_cooldown: float = 60.0

    def __repr__(self) -> str:  # never the password, whatever prints a config
        return f"EppConfig(host={self.host!r}, port={self.port}, client_id={self.client_id!r})"


def tls_context(config: EppConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if config.cert_file:
        context.load_cert_chain(config.cert_file, config.key_file or None)
    return context


def write_frame(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload) + HEADER.size) + payload)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    chunks: list[bytes] = []
    while count:
        try:
            chunk = sock.recv(min(count, 65536))
        except TimeoutError:
            raise FrameError("no answer in time") from None
        except OSError as exc:
            raise FrameError(f"connection failed: {exc.__class__.__name__}") from None
        if not chunk:
            raise FrameError("connection closed")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket) -> bytes:
    (total,) = HEADER.unpack(_read_exactly(sock, HEADER.size))
    if total <= HEADER.size or total > MAX_FRAME_BYTES:
        raise FrameError(f"bad frame length {total}")
    return _read_exactly(sock, total - HEADER.size)


def _wait(config: EppConfig) -> float:
    """How long one socket operation may wait: the request timeout, cut to what is left
    of the outside call's budget, so a conversation of several frames (info, host checks,
    update) never outlives it and the worker never settles a change still being sent."""
    return min(config.timeout, time_left())


NO_TIME_LEFT = "The registry did not answer in time; nothing was changed."
# Not worth sending a command with less time than this left to hear its answer.
MIN_FRAME_SECONDS = 0.05


class Connection:
    """One TLS connection with a logged-in session."""

    def __init__(self, sock: ssl.SSLSocket, greeting: xml.Greeting) -> None:
        self.sock = sock
        self.greeting = greeting
        self.last_used = time.monotonic()

    def stale(self) -> bool:
        """Whether the registry closed the session or sent something unasked (checked
        without waiting): either way the connection must not carry a command."""
        if self.sock.pending():
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        if not readable:
            return False
        # Readable may only mean TLS housekeeping (a session ticket): peek without waiting.
        timeout = self.sock.gettimeout()
        try:
            self.sock.setblocking(False)
            self.sock.recv(1)
        except ssl.SSLWantReadError:
            return False
        except OSError:
            return True
        finally:
            with contextlib.suppress(OSError):
                self.sock.settimeout(timeout)
        return True  # closed (b""), or the start of a frame nobody asked for

    def exchange(self, frame: bytes) -> bytes:
        write_frame(self.sock, frame)
        answer = read_frame(self.sock)
        self.last_used = time.monotonic()
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):  # closing a broken socket
            self.sock.close()


class EppClient:
    """A kept-alive EPP session, reconnecting when needed. `config` is read when a
    connection is opened, so a settings change reaches the next connection."""

    def __init__(self, config: Callable[[], EppConfig]) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._login_refused: tuple[tuple[str, str], float, int] | None = None

    def offers(self, uri: str) -> bool:
        """Whether the registry's greeting (of the session open now) offered `uri`."""
        conn = self._conn
        return conn is not None and uri in conn.greeting.obj_uris

    # --- connecting ----------------------------------------------------------------------

    def _connect(self, config: EppConfig) -> Connection:
        if not config.host:
            raise OutsideUnavailable("The registry connection is not configured.")
        refused = self._login_refused
        if (
            refused
            and refused[0] == (config.client_id, config.password)
            and time.monotonic() < refused[1]
        ):
            raise login_refused(refused[2])  # not tried again so soon: see login_cooldown
        try:
            context = tls_context(config)
        except (OSError, ssl.SSLError) as exc:
            logger.error("EPP: cannot load the TLS certificate or CA files: %s", exc)
            raise OutsideUnavailable(
                "The registry could not be reached (its certificate settings are wrong); "
                "nothing was changed."
            ) from None
        try:
            raw = socket.create_connection((config.host, config.port), timeout=_wait(config))
        except OSError as exc:
            logger.warning("EPP: cannot connect to the registry: %s", exc.__class__.__name__)
            raise OutsideUnavailable(
                "The registry could not be reached; nothing was changed."
            ) from None
        try:
            sock = context.wrap_socket(raw, server_hostname=config.host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            logger.error("EPP: the registry's certificate was not trusted: %s", exc.verify_message)
            raise OutsideUnavailable(
                "The registry's certificate could not be verified, so it was not contacted; "
                "nothing was changed."
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raw.close()
            logger.error("EPP: TLS handshake with the registry failed: %s", exc)
            raise OutsideUnavailable(
                "A secure connection to the registry failed; nothing was changed."
            ) from None
        sock.settimeout(max(0.01, _wait(config)))
        try:
            greeting = xml.parse_greeting(read_frame(sock))
            conn = Connection(sock, greeting)
            self._login(conn, config)
        except (FrameError, xml.MalformedFrame, OSError) as exc:
            sock.close()
            logger.warning("EPP: no usable greeting or login answer: %s", exc)
            raise OutsideUnavailable(
                "The registry did not answer as expected; nothing was changed."
            ) from None
        except BaseException:
            sock.close()
            raise
        return conn

    def _login(self, conn: Connection, config: EppConfig) -> None:
        credentials = (config.client_id, config.password)
        offered = conn.greeting.obj_uris
        if "1.0" not in conn.greeting.versions or xml.DOMAIN_NS not in offered:
            logger.error("EPP: the registry offers no EPP 1.0 domain service: %s", offered)
            raise OutsideUnavailable("The registry does not offer domain management over EPP.")
        cltrid = xml.new_cltrid()
        frame = xml.login(
            client_id=config.client_id,
            password=config.password,
            obj_uris=[uri for uri in WANTED_OBJECTS if uri in offered],
            ext_uris=[],
            cltrid=cltrid,
        )
        response = xml.parse_response(conn.exchange(frame))
        if not response.ok:
            logger.error(
                "EPP: login as %s refused with %s: %s",
                config.client_id,
                response.code,
                redact(response.message, config.password),
            )
            self._login_refused = (
                credentials,
                time.monotonic() + config.login_cooldown,
                response.code,
            )
            raise login_refused(response.code)
        self._login_refused = None
        logger.info("EPP: logged in to %s as %s", conn.greeting.server_id, config.client_id)

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _usable(self, config: EppConfig) -> Connection:
        """A logged-in connection on which nothing is pending."""
        conn = self._conn
        if conn is not None and conn.stale():
            logger.info("EPP: the registry closed the idle session; logging in again")
            self._drop()
            conn = None
        if conn is not None and time.monotonic() - conn.last_used >= config.hello_after:
            try:
                conn.sock.settimeout(max(0.01, _wait(config)))
                xml.parse_greeting(conn.exchange(xml.hello()))
            except (FrameError, xml.MalformedFrame, OSError):
                logger.info("EPP: the idle session did not answer <hello>; logging in again")
                self._drop()
                conn = None
        if conn is None:
            conn = self._conn = self._connect(config)
        return conn

    # --- commands ------------------------------------------------------------------------

    def command(self, build: Callable[[str], bytes]) -> xml.Response:
        """Send the command `build(cltrid)` makes and return its answer, whatever its code
        (the caller maps error codes). Raises OutsideUnavailable when nothing could be
        sent and OutsideUncertain when the command went out but no usable answer came."""
        config = self._config()
        with self._session(config):
            for attempt in (1, 2):
                conn = self._usable(config)
                cltrid = xml.new_cltrid()
                try:
                    frame = build(cltrid)
                except ValueError:  # lxml: text that XML cannot carry (control characters)
                    raise OutsideRefused(
                        "A value contains characters the registry cannot accept; nothing was "
                        "changed."
                    ) from None
                wait = _wait(config)
                if wait < MIN_FRAME_SECONDS:
                    raise OutsideUnavailable(NO_TIME_LEFT)  # nothing written
                try:
                    conn.sock.settimeout(wait)
                    write_frame(conn.sock, frame)
                except OSError:
                    # Written partly at most, onto a connection the registry has closed.
                    self._drop()
                    if attempt == 1:
                        continue
                    raise OutsideUnavailable(
                        "The registry closed the connection; nothing was changed."
                    ) from None
                try:
                    answer = read_frame(conn.sock)
                    response = xml.parse_response(answer)
                except (FrameError, xml.MalformedFrame) as exc:
                    self._drop()
                    logger.warning("EPP: command %s sent, but no usable answer: %s", cltrid, exc)
                    raise OutsideUncertain(
                        "The registry did not answer in time; the change may or may not have "
                        "been made. It will be checked with the registry."
                    ) from None
                conn.last_used = time.monotonic()
                # Our clTRID comes back with every answer (RFC 5730 2.5); a success without
                # it cannot be trusted to be this command's.
                if response.cltrid != cltrid and (response.cltrid or response.code < 2000):
                    self._drop()
                    logger.error("EPP: answer for %s arrived for %s", response.cltrid, cltrid)
                    raise OutsideUncertain(
                        "The registry's answer did not match the request; the change will be "
                        "checked with the registry."
                    )
                if response.code in xml.SESSION_ENDED_CODES:
                    # The command failed and the registry ends the session: log in again
                    # and send it once more (nothing was done the first time).
                    logger.warning(
                        "EPP: %s answered %s (session ended): %s",
                        cltrid,
                        response.code,
                        redact(response.message, config.password),
                    )
                    self._drop()
                    if attempt == 1:
                        continue
                    raise OutsideUnavailable(
                        "The registry ended the session; nothing was changed. Try again later."
                    )
                logger.info("EPP: %s -> %s", cltrid, response.code)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _session(self, config: EppConfig) -> Iterator[None]:
        """The session, for one caller at a time; waiting for it is bounded too."""
        if not self._lock.acquire(timeout=max(0.0, min(config.timeout * 3, time_left()))):
            raise OutsideUnavailable(
                "The registry connection is busy with other requests; nothing was changed. "
                "Try again in a moment."
            )
        try:
            yield
        finally:
            self._lock.release()

    def hello(self) -> xml.Greeting:
        """Keep the session alive (a worker may call this between commands)."""
        config = self._config()
        with self._session(config):
            conn = self._usable(config)
            try:
                return xml.parse_greeting(conn.exchange(xml.hello()))
            except (FrameError, xml.MalformedFrame, OSError):
                self._drop()
                raise OutsideUnavailable(
                    "The registry did not answer; nothing was changed."
                ) from None

    def close(self) -> None:
        """Log out and close; an error on the way out only means the session is gone."""
        with self._lock:
            conn = self._conn
            self._conn = None
            if conn is None:
                return
            try:
                if not conn.stale():
                    response = xml.parse_response(
                        conn.exchange(xml.logout(cltrid=xml.new_cltrid()))
                    )
                    logger.info("EPP: logged out (%s)", response.code)
            except (FrameError, xml.MalformedFrame, OSError) as exc:
                logger.info("EPP: logout not confirmed: %s", exc)
            finally:
                conn.close()
