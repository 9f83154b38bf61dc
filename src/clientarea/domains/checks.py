"""``manage.py check --deploy``: the EPP registry settings, when the EPP driver is in use."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Error, Tags, Warning
from django.utils.module_loading import import_string

EPP_DRIVER = "clientarea.domains.epp.EppRegistrarDriver"


def epp_driver_configured() -> bool:
    """Whether DOMAINS_REGISTRAR_DRIVER names the EPP driver or a subclass of it (a
    provider's own subclass gets the same checks)."""
    from .epp import EppRegistrarDriver

    try:
        driver = import_string(settings.DOMAINS_REGISTRAR_DRIVER)
    except ImportError:
        return False
    return isinstance(driver, type) and issubclass(driver, EppRegistrarDriver)


def _readable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.R_OK)


def epp_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not epp_driver_configured():
        return []
    errors: list[CheckMessage] = []
    for name, hint in (
        ("EPP_HOST", "The registry's EPP server name, e.g. epp.registry.example."),
        ("EPP_CLIENT_ID", "The registrar id the registry gave you (clID)."),
        ("EPP_PASSWORD", "The EPP password the registry gave you."),
    ):
        if not getattr(settings, name, ""):
            errors.append(Error(f"{name} is not set.", hint=hint, id="domains.E001"))
    for name in ("EPP_CERT_FILE", "EPP_KEY_FILE"):
        path = getattr(settings, name, "")
        if not path:
            errors.append(
                Error(
                    f"{name} is not set.",
                    hint="The client certificate and key (PEM) the registry knows you by.",
                    id="domains.E002",
                )
            )
        elif not _readable(path):
            errors.append(
                Error(
                    f"{name} cannot be read: {path}",
                    hint="Check the path and its permissions.",
                    id="domains.E003",
                )
            )
    ca_file = getattr(settings, "EPP_CA_FILE", "")
    if ca_file and not _readable(ca_file):
        errors.append(
            Error(
                f"EPP_CA_FILE cannot be read: {ca_file}",
                hint="Check the path and its permissions.",
                id="domains.E003",
            )
        )
    password = getattr(settings, "EPP_PASSWORD", "")
    if password and not 6 <= len(password) <= 16:
        errors.append(
            Warning(
                "EPP_PASSWORD is not 6 to 16 characters long, the length the EPP schema "
                "(RFC 5730) allows: a registry that checks its commands against the schema "
                "will refuse the login.",
                hint="Use the password exactly as the registry gave it; ask the registry if "
                "it accepts longer ones.",
                id="domains.W001",
            )
        )
    if not settings.EPP_VERIFY_TLS and not settings.DEMO_MODE:
        errors.append(
            Error(
                "EPP_VERIFY_TLS is off: the registry's certificate is not checked, so anyone "
                "on the path could read the EPP password and change domains.",
                hint="Set EPP_VERIFY_TLS=true (and EPP_CA_FILE if the registry's CA is not a "
                "system one).",
                id="domains.E004",
            )
        )
    return errors


def register() -> None:
    checks.register(epp_settings_check, Tags.security, deploy=True)
