"""What drf-spectacular needs to know that it cannot read from the views: how the API
authenticates (imported by ``ApiConfig.ready``, which registers the extension)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "clientarea.api.authentication.BearerTokenAuthentication"
    name = "personalAccessToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal access token (ca_pat_…) made on the API Tokens page.",
        }


def problems_as_problem_json(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every error answer of the API is ``application/problem+json`` (``problems.py``):
    say so in the schema, where drf-spectacular writes the renderer's JSON type. And the
    bodies that refuse unknown fields say they do (``additionalProperties: false``)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                content = response.get("content") if isinstance(response, dict) else None
                if str(status)[0] in "45" and content and "application/json" in content:
                    content["application/problem+json"] = content.pop("application/json")
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_BODIES:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result


# Request bodies that refuse a field they do not know (a 400 naming it), so that a typo
# in a field's name is never silently a change of nothing: the schema says so.
CLOSED_BODIES = ("PatchedProfileUpdateRequest",)
