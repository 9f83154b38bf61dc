"""``manage.py check --deploy`` for the control panel: with the WHM driver configured,
every server must have an API token and verify TLS, and there must be a server at all.

These read the database (the servers are set up in the back office), so they are deploy
checks only: ``migrate`` and ``runserver`` never run them on a database without tables.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from django.utils.module_loading import import_string


def whm_driver_configured() -> bool:
    """Whether HOSTING_PANEL_DRIVER names the WHM driver (or a subclass of it)."""
    from .whm import WhmPanelDriver

    try:
        driver = import_string(settings.HOSTING_PANEL_DRIVER)
    except ImportError:
        return False
    return isinstance(driver, type) and issubclass(driver, WhmPanelDriver)


def panel_servers_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if not whm_driver_configured():
        return []
    from .models import PanelServer

    try:
        servers = list(PanelServer.objects.order_by("name"))
    except DatabaseError:
        return [
            checks.Warning(
                "The control-panel servers could not be read from the database.",
                hint="Run migrate, then add the WHM servers in the back office.",
                id="hosting.W102",
            )
        ]
    if not servers:
        return [
            checks.Warning(
                "HOSTING_PANEL_DRIVER is the WHM driver, but no control-panel server is set "
                "up: no password change, login or suspension can reach a panel.",
                hint="Add each WHM server in the back office (Products & Services » "
                "Control-panel servers) and link every service to its server.",
                id="hosting.W101",
            )
        ]
    messages: list[checks.CheckMessage] = []
    for server in servers:
        if not server.has_api_token:
            messages.append(
                checks.Error(
                    f"Control-panel server {server.name!r} has no WHM API token.",
                    hint="Create a token in WHM (Development » Manage API Tokens) and paste "
                    "it in the server's API token field in the back office.",
                    obj=server,
                    id="hosting.E101",
                )
            )
        if not server.verify_tls and not settings.DEMO_MODE:
            messages.append(
                checks.Error(
                    f"Control-panel server {server.name!r} does not verify its TLS "
                    "certificate: anyone on the path could read its API token.",
                    hint="Turn TLS verification on. For a self-signed or private "
                    "certificate, give the CA bundle that signed it instead.",
                    obj=server,
                    id="hosting.E102",
                )
            )
        if server.verify_tls and server.ca_file and not os.path.isfile(server.ca_file):
            messages.append(
                checks.Error(
                    f"The CA bundle of control-panel server {server.name!r} is not a "
                    "readable file on this machine.",
                    hint="Put the PEM file on every app server, or leave the field empty "
                    "to use the system's CAs.",
                    obj=server,
                    id="hosting.E103",
                )
            )
    return messages


def register() -> None:
    checks.register(panel_servers_check, checks.Tags.security, deploy=True)
