"""``EppRegistrarDriver``: the ``RegistrarDriver`` of a registry that speaks EPP.

Each method is one conversation on the kept-alive session: it reads the registry's view
(``domain:info``) first and sends only the difference, so asking again for what the
registry already holds sends nothing, which is how a pending change is settled.
"""

from __future__ import annotations

import atexit
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import date
from typing import TYPE_CHECKING

from django.conf import settings

from clientarea.core.outside import OutsideRefused, OutsideUncertain
from clientarea.domains.drivers import TRANSFER_PROHIBITED, RegistryDomainInfo, add_years

from . import xml
from .client import EppClient, EppConfig
from .errors import redact, refusal

if TYPE_CHECKING:
    from clientarea.domains.models import Domain

logger = logging.getLogger(__name__)

# Statuses with which the registry refuses an update (RFC 5731 section 2.3).
UPDATE_BLOCKING = ("serverUpdateProhibited", "clientUpdateProhibited", "pendingDelete")
RENEW_BLOCKING = ("serverRenewProhibited", "clientRenewProhibited", "pendingDelete")


def config_from_settings() -> EppConfig:
    return EppConfig(
        host=settings.EPP_HOST,
        port=settings.EPP_PORT,
        client_id=settings.EPP_CLIENT_ID,
        password=settings.EPP_PASSWORD,
        cert_file=settings.EPP_CERT_FILE,
        key_file=settings.EPP_KEY_FILE,
        ca_file=settings.EPP_CA_FILE,
        verify_tls=settings.EPP_VERIFY_TLS,
        timeout=settings.OUTSIDE_CALL_TIMEOUT_SECONDS,
        hello_after=settings.EPP_HELLO_AFTER_SECONDS,
        login_cooldown=settings.EPP_LOGIN_RETRY_SECONDS,
    )


def _host_create(host: str, cltrid: str) -> bytes:
    return xml.host_create(host, cltrid=cltrid)


def in_bailiwick(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _refuse_glue(host: str, domain: Domain) -> None:
    if in_bailiwick(host, domain.name):
        raise OutsideRefused(
            f"{host} is inside {domain.name} itself, so the registry needs its IP "
            "addresses (glue records) before it can be used, and those cannot be set "
            "here. Use nameservers outside the domain, or ask support to register "
            "the host first. Nothing was changed."
        )


class EppRegistrarDriver:
    name = "epp"

    def __init__(self, config: Callable[[], EppConfig] = config_from_settings) -> None:
        self._config = config
        self.client = EppClient(config)
        atexit.register(self.close)

    def close(self) -> None:
        """Log out (at process exit, or when a test is done with the driver)."""
        self.client.close()

    def _run(self, build: Callable[[str], bytes], *, transform: bool) -> xml.Response:
        response = self.client.command(build)
        if not response.ok:
            password = self._config().password
            logger.warning(
                "EPP: command refused with %s: %s",
                response.code,
                redact(response.message, password),
            )
            raise refusal(response.code, response.message, transform=transform, secrets=(password,))
        return response

    # --- reading -------------------------------------------------------------------------

    def domain_info(self, domain: Domain) -> RegistryDomainInfo:
        return self._info(domain)[0]

    def _info(self, domain: Domain) -> tuple[RegistryDomainInfo, bool]:
        """The registry's view, and whether it lists nameservers as host attributes."""
        response = self._run(
            lambda cltrid: xml.domain_info(domain.name, cltrid=cltrid), transform=False
        )
        data = response.find("epp:response/epp:resData/domain:infData")
        if data is None:
            raise OutsideUncertain(
                "The registry's answer had no domain data; it will be asked again."
            )
        objects = [e.text or "" for e in data.findall("domain:ns/domain:hostObj", xml.NSMAP)]
        attributes = [
            e.text or ""
            for e in data.findall("domain:ns/domain:hostAttr/domain:hostName", xml.NSMAP)
        ]
        expiry = data.find("domain:exDate", xml.NSMAP)
        info = RegistryDomainInfo(
            name=(data.findtext("domain:name", "", xml.NSMAP) or domain.name).strip().lower(),
            statuses=frozenset(e.get("s", "") for e in data.findall("domain:status", xml.NSMAP)),
            nameservers=tuple(
                h.strip().lower().rstrip(".") for h in objects + attributes if h.strip()
            ),
            expiry_date=xml.xml_date(expiry.text or "") if expiry is not None else None,
        )
        return info, bool(attributes)

    # --- changing ------------------------------------------------------------------------

    def _refuse_blocked(
        self, held: RegistryDomainInfo, blocking: tuple[str, ...], what: str
    ) -> None:
        found = [s for s in blocking if s in held.statuses]
        if found:
            raise OutsideRefused(
                f"The domain is locked at the registry ({', '.join(found)}), so its {what} "
                "cannot be changed now; nothing was changed.",
                code="2304",
            )

    def _update(
        self,
        domain: Domain,
        held: RegistryDomainInfo,
        what: str,
        *,
        add_ns: Sequence[str] = (),
        rem_ns: Sequence[str] = (),
        add_status: Sequence[str] = (),
        rem_status: Sequence[str] = (),
        host_attr: bool = False,
    ) -> None:
        def build(cltrid: str) -> bytes:
            return xml.domain_update(
                domain.name,
                add_ns=add_ns,
                rem_ns=rem_ns,
                add_status=add_status,
                rem_status=rem_status,
                host_attr=host_attr,
                cltrid=cltrid,
            )

        try:
            self._run(build, transform=True)
        except OutsideRefused as exc:
            if exc.code == "2304":
                statuses = ", ".join(sorted(held.statuses - {"ok"})) or "its current status"
                raise OutsideRefused(
                    f"The domain's status at the registry ({statuses}) does not allow its "
                    f"{what} to be changed now; nothing was changed.",
                    code="2304",
                ) from None
            raise

    def set_nameservers(self, domain: Domain, nameservers: list[str]) -> None:
        wanted = list(
            dict.fromkeys(n.strip().lower().rstrip(".") for n in nameservers if n.strip())
        )
        held, attributes = self._info(domain)
        add = [n for n in wanted if n not in held.nameservers]
        rem = [n for n in held.nameservers if n not in wanted]
        if not add and not rem:
            return
        self._refuse_blocked(held, UPDATE_BLOCKING, "nameservers")
        # A registry without host objects (no host-1.0 in its greeting, or host attributes
        # in its answer) takes nameservers as names in the domain itself (RFC 5731 1.1).
        host_attr = attributes or not self.client.offers(xml.HOST_NS)
        if host_attr:
            for host in add:
                _refuse_glue(host, domain)
        elif add:
            self._ensure_hosts(domain, add)
        self._update(domain, held, "nameservers", add_ns=add, rem_ns=rem, host_attr=host_attr)

    def _ensure_hosts(self, domain: Domain, hosts: list[str]) -> None:
        """Create the host objects the registry does not have yet (RFC 5732). A host inside
        the domain itself would need its IP addresses (glue), which we do not ask for."""
        response = self._run(lambda cltrid: xml.host_check(hosts, cltrid=cltrid), transform=False)
        missing = [
            (e.text or "").strip().lower()
            for e in response.findall("epp:response/epp:resData/host:chkData/host:cd/host:name")
            if e.get("avail") in ("1", "true")
        ]
        for host in missing:
            _refuse_glue(host, domain)
        for host in missing:
            self._run(functools.partial(_host_create, host), transform=True)

    def set_registrar_lock(self, domain: Domain, locked: bool) -> None:
        held = self.domain_info(domain)
        if held.registrar_lock == locked:
            return
        self._refuse_blocked(held, UPDATE_BLOCKING, "registrar lock")
        if locked:
            self._update(domain, held, "registrar lock", add_status=[TRANSFER_PROHIBITED])
        else:
            self._update(domain, held, "registrar lock", rem_status=[TRANSFER_PROHIBITED])

    def renew(self, domain: Domain, years: int, current_expiry: date) -> date:
        """Renew from `current_expiry`. Asking again after an unanswered renewal is safe:
        the registry refuses the now stale expiry date (2306), and if it already holds
        `current_expiry` + `years` that renewal was made, so its date is returned."""
        target = add_years(current_expiry, years)
        try:
            response = self._run(
                lambda cltrid: xml.domain_renew(
                    domain.name, current_expiry=current_expiry, years=years, cltrid=cltrid
                ),
                transform=True,
            )
        except OutsideRefused as exc:
            if exc.code == "2304":
                found = [s for s in RENEW_BLOCKING if s in self.domain_info(domain).statuses]
                if found:
                    raise OutsideRefused(
                        f"The domain is locked at the registry ({', '.join(found)}), so it "
                        "cannot be renewed now; nothing was changed.",
                        code="2304",
                    ) from None
            if exc.code != "2306":
                raise
            held = self.domain_info(domain)
            if held.expiry_date == target:
                logger.info("EPP: %s already renewed to %s", domain.name, target)
                return target
            if held.expiry_date is not None and held.expiry_date != current_expiry:
                raise OutsideRefused(
                    f"The registry holds another expiry date ({held.expiry_date.isoformat()}) "
                    "than ours, so the domain was not renewed; sync it from the registry "
                    "first.",
                    code="2306",
                ) from None
            raise
        expiry = response.find("epp:response/epp:resData/domain:renData/domain:exDate")
        new_expiry = xml.xml_date(expiry.text or "") if expiry is not None else None
        if new_expiry is None:
            # Renewed (the code said so) but the date is missing: ask the registry.
            info = self.domain_info(domain)
            if info.expiry_date is None:
                raise OutsideUncertain(
                    "The registry did not say the new expiry date; it will be checked."
                )
            new_expiry = info.expiry_date
        return new_expiry
