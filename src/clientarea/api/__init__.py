"""The REST API (``/api/v1/``) and the personal access tokens that authenticate it.

The top layer: it imports the domain apps (their selectors, services and the one policy
of ``clientarea.accounts.policy``) and nothing imports it but the settings and the root
URLconf.

Framework: Django REST framework with drf-spectacular, rather than Django Ninja.
- Django 5.2 support: DRF 3.16 and later declare Django 5.2 and are the most used Django
  API framework; drf-spectacular declares Django 5.2 too.
- Schema generation: drf-spectacular writes a validated OpenAPI 3 schema from the views
  and serializers, and its sidecar package ships Swagger UI as static files, so the docs
  are served from our own origin under the site's Content-Security-Policy.
- Built in, where Ninja needs add-ons or hand-written code: cursor pagination,
  pluggable authentication (our bearer tokens alone, so a session never authenticates
  the API and no CSRF hole opens), an exception hook (every error as problem+json), and
  per-request throttles.
- No new model layer: plain serializers over the rows the pages read. Ninja would have
  brought pydantic and its compiled core for what DRF's serializers already do.

Layout: ``tokens`` (secret format and hash), ``models``, ``services`` (create, revoke,
void, authenticate), ``selectors``, ``receivers`` (tokens die with their creator's
access or ownership), ``authentication``/``access``/``throttling``/``problems``/
``pagination`` (the DRF pieces), ``middleware`` (the /api/ boundary), ``views``
(endpoints, schema, docs) and ``views_tokens`` (the API Tokens page).
"""
