"""The OpenAPI schema is served and valid; the docs page is served from our own static
files under the site's unchanged Content-Security-Policy."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from drf_spectacular.validation import validate_schema

from clientarea.access_table import ROUTES
from clientarea.security.headers import DEFAULT_CSP

pytestmark = pytest.mark.django_db


def _schema() -> dict[str, Any]:
    response = Client().get("/api/v1/schema")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    body: dict[str, Any] = response.json()
    return body


def test_schema_is_valid_openapi_3_and_covers_every_endpoint() -> None:
    schema = _schema()
    validate_schema(schema)  # drf-spectacular's copy of the OpenAPI 3.0 JSON Schema
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/v1/account",
        "/api/v1/invoices",
        "/api/v1/invoices/{id}",
        "/api/v1/services",
        "/api/v1/services/{id}",
        "/api/v1/services/{id}/password/reveal",
        "/api/v1/services/{id}/password",
        "/api/v1/domains",
        "/api/v1/domains/{id}",
        "/api/v1/domains/{id}/nameservers",
        "/api/v1/domains/{id}/lock",
        "/api/v1/domains/{id}/auto-renew",
        "/api/v1/invoices/{id}/pdf",
        "/api/v1/invoices/{id}/pay",
        "/api/v1/tickets",
        "/api/v1/tickets/{id}",
        "/api/v1/tickets/{id}/replies",
        "/api/v1/tickets/{id}/close",
        "/api/v1/tickets/attachments/{id}",
        "/api/v1/contacts",
        "/api/v1/contacts/{id}",
        "/api/v1/contacts/{id}/confirmation",
        "/api/v1/emails",
        "/api/v1/emails/{id}",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/invitations",
        "/api/v1/invitations/{id}",
        "/api/v1/invitations/{id}/resend",
    }
    api_rows = [r for r in ROUTES if r.rule.startswith("token")]
    # One operation per method of each row (a row may list several methods of a path).
    assert sum(len(r.methods) for r in api_rows) == sum(
        len(ops) for ops in schema["paths"].values()
    )
    scheme = schema["components"]["securitySchemes"]["personalAccessToken"]
    assert scheme == {
        "type": "http",
        "scheme": "bearer",
        "description": scheme["description"],
    }
    listing = schema["paths"]["/api/v1/invoices"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert {"status", "cursor", "page_size"} <= names
    assert {"200", "400", "401", "403", "429"} <= set(listing["responses"])
    # Every error answer is documented as what it is: application/problem+json.
    problem = listing["responses"]["401"]["content"]["application/problem+json"]["schema"]
    assert problem["required"] == ["type", "title", "status", "detail"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status[0] in "45":
                    assert set(answer.get("content", {})) == {"application/problem+json"}, (
                        path,
                        method,
                        status,
                    )
    # The writes say what they take and every refusal they can answer.
    change = schema["paths"]["/api/v1/domains/{id}/nameservers"]["put"]
    assert "requestBody" in change
    assert {"200", "202", "400", "401", "403", "404", "409", "429", "503"} <= set(
        change["responses"]
    )
    reveal = schema["paths"]["/api/v1/services/{id}/password/reveal"]["post"]
    assert "requestBody" not in reveal and {"200", "403", "404"} <= set(reveal["responses"])


def test_docs_page_loads_only_local_scripts_and_no_inline_code() -> None:
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == DEFAULT_CSP
    html = response.content.decode()
    assert "<style" not in html and " style=" not in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" and "src=" in attrs for attrs, body in scripts)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources)
    for source in sources:
        if source.startswith("/static/"):
            assert finders.find(source.removeprefix("/static/")), source
    script = next(s for s in sources if "script" in s)
    init = Client().get(script)
    assert init.status_code == 200
    assert init["Content-Type"].startswith("application/javascript")
    assert "/api/v1/schema" in init.content.decode()
