"""Demo services: shared hosting, a VPS and a suspended plan for Acme, some for Globex."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from clientarea.core.demo import DemoContext

from .models import PanelServer, Service


def _servers() -> dict[str, PanelServer]:
    """The provider's WHM servers (no API token: the demo runs the local stand-in panel;
    the back office shows where a real server's token goes)."""
    servers = {}
    for name in ("cp03", "cp07", "cp12"):
        hostname = f"{name}.jiinubi-hosting.example"
        servers[hostname] = PanelServer.objects.create(name=name, hostname=hostname)
    return servers


def _service(*, password: str, **fields: object) -> Service:
    service = Service(**fields)
    if password:
        service.store_password(password)
    service.save()
    return service


def load(ctx: DemoContext) -> None:
    today = timezone.localdate()
    cycle = Service.BillingCycle
    status = Service.Status

    def due(days: int) -> date:
        return today + timedelta(days=days)

    servers = _servers()
    for fields in (
        dict(
            account=ctx.main,
            product_name="cPanel Hosting · Business",
            domain="acme-web.ie",
            status=status.ACTIVE,
            billing_cycle=cycle.ANNUALLY,
            amount=Decimal("119.00"),
            next_due_date=due(143),
            server_hostname="cp12.jiinubi-hosting.example",
            username="acmeweb",
            password="Harbour-Lights-2024!",
        ),
        dict(
            account=ctx.main,
            product_name="VPS · 4 GB",
            domain="vps1.acme-web.ie",
            status=status.ACTIVE,
            billing_cycle=cycle.MONTHLY,
            amount=Decimal("24.00"),
            next_due_date=due(9),
            server_hostname="vps1.acme-web.ie",
            username="root",
            password="Granite-Kettle-Orbit-71",
        ),
        dict(
            account=ctx.main,
            product_name="cPanel Hosting · Starter",
            domain="café-example.ie",
            status=status.SUSPENDED,
            billing_cycle=cycle.MONTHLY,
            amount=Decimal("6.50"),
            next_due_date=due(-18),
            server_hostname="cp07.jiinubi-hosting.example",
            username="cafeexam",
            password="Velvet-Lantern-Quay-38",
        ),
        dict(
            account=ctx.main,
            product_name="WordPress Hosting · Pro",
            domain="shop.acme-web.ie",
            status=status.PENDING,
            billing_cycle=cycle.QUARTERLY,
            amount=Decimal("45.00"),
            next_due_date=due(2),
            server_hostname="",
            username="",
            password="",
        ),
        dict(
            account=ctx.other,
            product_name="cPanel Hosting · Business",
            domain="globex.de",
            status=status.ACTIVE,
            billing_cycle=cycle.ANNUALLY,
            amount=Decimal("119.00"),
            next_due_date=due(61),
            server_hostname="cp03.jiinubi-hosting.example",
            username="globex",
            password="Meridian-Falcon-Sextant-5",
        ),
        dict(
            account=ctx.other,
            product_name="Managed Backup · 100 GB",
            domain="",
            status=status.CANCELLED,
            billing_cycle=cycle.MONTHLY,
            amount=Decimal("5.00"),
            next_due_date=None,
            server_hostname="backup2.jiinubi-hosting.example",
            username="globexbk",
            password="Quartz-Meadow-Pylon-92",
        ),
    ):
        fields["server"] = servers.get(str(fields["server_hostname"]))
        _service(**fields)  # type: ignore[arg-type]
