"""The access table matches the code: every route listed, nothing extra, same rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from clientarea.access_table import BY_NAME, ROUTES
from clientarea.accounts.policy import rule_of


def _walk(patterns: Any, ns: str = "") -> Iterator[tuple[str, URLPattern]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, p.namespace or ns)
        elif isinstance(p, URLPattern):
            yield (f"{ns}:{p.name}" if ns else str(p.name)), p


def client_area_routes() -> dict[str, URLPattern]:
    return {
        name: p for name, p in _walk(get_resolver().url_patterns) if not name.startswith("admin:")
    }


def test_every_route_is_in_the_table_and_every_row_is_a_route() -> None:
    code = set(client_area_routes())
    table = set(BY_NAME)
    assert code - table == set(), "routes missing from clientarea/access_table.py"
    assert table - code == set(), "access table rows naming routes that do not exist"
    assert len(ROUTES) == len(BY_NAME), "duplicate rows in the access table"


def test_each_views_declared_rule_matches_its_row() -> None:
    mismatches = []
    for name, pattern in client_area_routes().items():
        rule = rule_of(pattern.callback)
        assert rule is not None, name
        if rule.describe() != BY_NAME[name].rule:
            mismatches.append((name, rule.describe(), BY_NAME[name].rule))
    assert mismatches == []


def test_object_params_match_the_url_patterns() -> None:
    for name, pattern in client_area_routes().items():
        params = set(pattern.pattern.converters)
        row = BY_NAME[name]
        if row.object_param:
            assert row.object_param in params, name


def test_api_rules_are_a_token_a_permission_or_the_owners_users_power() -> None:
    """``token:owner`` is a token its creator made as the account's owner, carrying the
    Users power; any other ``token:<x>`` names a permission of the catalogue."""
    from clientarea.accounts import permissions
    from clientarea.api.access import ApiRule

    for name, pattern in client_area_routes().items():
        row = BY_NAME[name]
        if not row.rule.startswith("token"):
            continue
        rule = rule_of(pattern.callback)
        assert isinstance(rule, ApiRule), name
        _, _, code = row.rule.partition(":")
        if code == "owner":
            assert rule.owner_power is permissions.OwnerPower.MANAGE_USERS, name
            assert rule.permission is None, name
        elif code:
            assert code in permissions.BY_CODE and rule.owner_power is None, name


def test_docs_page_is_current() -> None:
    from django.core.management import call_command

    call_command("access_table", "--check")
