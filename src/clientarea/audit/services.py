from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import models
from django.http import HttpRequest

from .models import AuditEvent

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _proxy_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


# A TRUSTED_PROXIES entry for a proxy that reaches the app over a unix socket: the peer
# then has no address at all (REMOTE_ADDR is empty), and X-Forwarded-For is its word.
UNIX_SOCKET = "unix"


def trusted_proxy_networks(entries: Iterable[str] | None = None) -> tuple[Network, ...]:
    """TRUSTED_PROXIES (IPs or CIDRs) as networks; raises ValueError on a bad entry."""
    if entries is None:
        entries = getattr(settings, "TRUSTED_PROXIES", ())
    return _proxy_networks(
        tuple(str(e) for e in entries if str(e).strip() and str(e).strip() != UNIX_SOCKET)
    )


def unix_socket_trusted() -> bool:
    return UNIX_SOCKET in [str(e).strip() for e in getattr(settings, "TRUSTED_PROXIES", ())]


def _parse_address(value: str | None) -> Address | None:
    """An address from REMOTE_ADDR or one X-Forwarded-For hop; tolerates the forms
    proxies write ("1.2.3.4:5678", "[2001:db8::1]:443", "::ffff:1.2.3.4"); None for junk."""
    text = (value or "").strip().strip('"')
    if not text or len(text) > 64:
        return None
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address, used by the audit trail, the sessions list and every throttle.

    REMOTE_ADDR is the peer. Only when the peer is one of TRUSTED_PROXIES (a setting:
    IPs or CIDRs, empty by default) is X-Forwarded-For read, from the right, one hop per
    trusted proxy: the client is the first address from the right that is not a trusted
    proxy. Everything to its left was written by the client and is ignored, so a forged
    header from an untrusted peer changes nothing. A malformed hop ends the walk at the
    last proxy that vouched for it (never a 500, never "no address", which would escape
    the throttles)."""
    if request is None:
        return None
    peer = _parse_address(request.META.get("REMOTE_ADDR"))
    networks = trusted_proxy_networks()
    address: Address | None
    if peer is None:
        # No peer address: a unix socket. Only a proxy declared as "unix" is believed;
        # otherwise the address is unknown (and the per-address limits do not apply).
        if not unix_socket_trusted() or request.META.get("REMOTE_ADDR"):
            return None
        address = None
    elif not networks or not _trusted(peer, networks):
        return str(peer)
    else:
        address = peer
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    for hop in reversed(forwarded.split(",")):
        if not hop.strip():
            continue
        parsed = _parse_address(hop)
        if parsed is None:
            break
        address = parsed
        if not _trusted(address, networks):
            break
    return str(address) if address is not None else None


def audit_record(
    *,
    action: str,
    actor: Any = None,
    account: Any = None,
    target: models.Model | None = None,
    target_label: str = "",
    changes: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip_address: str | None = None,
    is_staff_action: bool = False,
) -> AuditEvent:
    """Append one audit event. Call it inside the transaction of the action it records."""
    actor_label = ""
    if actor is not None and getattr(actor, "is_authenticated", False):
        actor_label = f"{actor.get_full_name()} <{actor.email}>"
    else:
        actor = None
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor_label or ("staff" if is_staff_action else "system"),
        account=account,
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:300],
        changes=changes or {},
        ip_address=ip_address or client_ip(request),
        is_staff_action=is_staff_action,
    )
