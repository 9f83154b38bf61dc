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
