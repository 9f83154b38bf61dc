"""Shared helpers of the API's tests: make tokens, call the API with one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.api.models import ApiToken
from clientarea.api.services import token_create


def make_token(
    account: Account,
    user: User | None = None,
    codes: tuple[str, ...] | list[str] = ("invoices",),
    **kwargs: Any,
) -> tuple[ApiToken, str]:
    kwargs.setdefault("expires_at", timezone.now() + timedelta(days=30))
    return token_create(
        account=account,
        actor=user or account.owner,
        name=kwargs.pop("name", "Script"),
        permission_codes=list(codes),
        **kwargs,
    )


def api_get(secret: str | None, path: str, client: Client | None = None, **extra: Any) -> Any:
    client = client or Client()
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client.get(path, **extra)


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status (and `code`, when given)."""
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body.get("code") == code, body
    return body
