"""The route table, grouped for the model: each route of ``clientarea.access_table``
that needs an account falls in one group (its rule, and the kind of item its object is
about when a resource scope limits it). The model computes reach per group; the
conformance step expands a group back to its routes (``ROUTES_OF``).

``access_table`` is data with no Django import, so the groups are read from it, never
copied: a route added there joins its group here.
"""

from __future__ import annotations

from clientarea.access_table import ROUTES, Route

from .catalogue import DOMAIN_ITEM, SERVICE

# Routes whose object is about one service or domain (the scope limits them). Tickets
# and their attachments are about a service (acceptance.objects.SCOPED_ROUTES); the
# email detail is handled with Email History (by kind), not here.
SCOPED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("hosting:", SERVICE),
    ("domains:", DOMAIN_ITEM),
    ("support:ticket_", SERVICE),
    ("support:attachment_", SERVICE),
    ("api:service_", SERVICE),
    ("api:domain_", DOMAIN_ITEM),
    ("api:ticket_", SERVICE),
)
# acceptance.objects.ALSO_NEEDS: Renew is paying for the domain.
ALSO_NEEDS: dict[str, str] = {"domains:renew": "invoices"}

ACCOUNT_RULES = ("account", "owner")


def item_of(route: Route) -> str:
    """The kind of item the route's object is about ("" when none, or account-wide)."""
    if route.object_param is None:
        return ""
    for prefix, kind in SCOPED_PREFIXES:
        if route.name.startswith(prefix):
            return kind
    return ""


def rule_of(route: Route) -> str | None:
    """The route's group rule: "account", "owner", "permission:<code>[+<code>]", "token",
    "token:<code>", "token:owner"; None for routes no account governs (public, login)."""
    rule = route.rule
    if rule in ("public", "login"):
        return None
    also = ALSO_NEEDS.get(route.name)
    return f"{rule}+{also}" if also else rule


def _groups() -> dict[tuple[str, str], tuple[str, ...]]:
    out: dict[tuple[str, str], list[str]] = {}
    for route in ROUTES:
        rule = rule_of(route)
        if rule is not None:
            out.setdefault((rule, item_of(route)), []).append(route.name)
    return {g: tuple(names) for g, names in sorted(out.items())}


# (rule, item) -> the route names of that group.
ROUTES_OF: dict[tuple[str, str], tuple[str, ...]] = _groups()
PAGE_GROUPS: tuple[tuple[str, str], ...] = tuple(
    g for g in ROUTES_OF if not g[0].startswith("token")
)
TOKEN_GROUPS: tuple[tuple[str, str], ...] = tuple(g for g in ROUTES_OF if g[0].startswith("token"))


def needed(rule: str) -> tuple[str, ...]:
    """The permission codes a "permission:" or "token:" rule needs (none for others)."""
    _, _, codes = rule.partition(":")
    if not codes or codes == "owner":
        return ()
    return tuple(codes.split("+"))


def routes_of(groups: frozenset[tuple[str, str]]) -> frozenset[str]:
    """The route names a set of groups reaches (for the conformance step)."""
    return frozenset(name for g in groups for name in ROUTES_OF.get(g, ()))
