"""Schemathesis against the API, in-process (the WSGI app, no server), with the tokens of
two owners of two accounts as peers.

Its engine runs every phase — the schema's examples, the coverage phase (boundary and
invalid values for every parameter and body), fuzzing, and the stateful phase that
follows the links between operations (an id a list answered, used by a read) — with
all its checks: no 5xx, status codes, content types, headers and bodies conform to the
schema, bad input is refused, and ``object_level_authorization``, which replays each
read of one peer's object as the other peer and fails if the other peer gets it.

Each account has its objects of every kind, so reads have something to find and the
authorization check something to replay. The run is bounded (examples per operation)
so it fits in ``make test``; ``SCHEMATHESIS_EXAMPLES`` raises it for a longer run.
"""

from __future__ import annotations

import json
import os
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.transport.wsgi import WSGITransport

from clientarea.accounts import permissions
from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory
from clientarea.api.services import token_create
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.support.tests.factories import (
    AttachmentFactory,
    DepartmentFactory,
    TicketFactory,
    TicketMessageFactory,
)

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))


# Rules a JSON schema cannot state, by operation: the fields whose schema-valid values
# may still be refused with a 400 naming them (each rule has its own tests).
RULES_BEYOND_THE_SCHEMA: dict[str, set[str]] = {
    # The password rules: common passwords, likeness to the account's names, and the
    # length without two-factor (15) beyond the schema's minimum (8, with two-factor).
    "POST /api/v1/services/{id}/password": {"password"},
    # Host names (internationalised ones too), once each whatever their case.
    "PUT /api/v1/domains/{id}/nameservers": {"nameservers"},
    # Tickets: a subject of one line, a message without control characters, a department
    # that takes new tickets, a service or domain the token reaches (one of the two),
    # attachments of an allowed type whose content matches their name.
    "POST /api/v1/tickets": {
        "subject",
        "message",
        "department",
        "service",
        "domain",
        "attachments",
    },
    "POST /api/v1/tickets/{id}/replies": {"message", "attachments"},
    # The pages' forms: one line without control characters, a VAT number valid for the
    # country, "at least one field", an address Django's validator accepts, a phone
    # number, a date from today to ten years ahead, kinds of email the token's access
    # reads itself, ids of the account's services and domains.
    "PATCH /api/v1/account": {
        *("company_name", "address_line1", "address_line2", "city", "postcode"),
        *("tax_number", "non_field_errors"),
    },
    "POST /api/v1/contacts": {"name", "email", "phone", "email_kinds"},
    "PATCH /api/v1/contacts/{id}": {"name", "email", "phone", "email_kinds"},
    "POST /api/v1/invitations": {"email", "permissions", "scope", "access_expires_on"},
    "PATCH /api/v1/users/{id}": {"permissions", "scope", "access_expires_on"},
    # A stored card of the account (another's id is refused by name).
    "POST /api/v1/invoices/{id}/pay": {"payment_method"},
}


def refused_by_a_rule_beyond_the_schema(failure: Any, case: Any, response: Any) -> bool:
    if "Schema-valid request rejected" not in failure.title or response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    if body.get("code") == "refused":
        return True  # the object's state or the outside system refused, in its words
    fields = set(body.get("errors", {}))
    allowed = set(RULES_BEYOND_THE_SCHEMA.get(case.operation.label, ()))
    if case.method == "GET":
        allowed.add("cursor")  # opaque: a made-up one, however well-formed, is not ours
    return bool(fields) and fields <= allowed


def _furnish(account: Account) -> str:
    """Objects of every kind on `account`, and its owner's token carrying everything."""
    for _ in range(2):
        make_invoice(account)
        ServiceFactory(account=account)
        DomainFactory(account=account)
    MembershipFactory(account=account, permissions=["invoices"])
    DepartmentFactory(name="Technical Support")  # where a new ticket goes by default
    ticket = TicketFactory(account=account)
    AttachmentFactory(message=TicketMessageFactory(ticket=ticket))
    options: dict[str, Any] = {}
    if "manages_users" in {f.name for f in _token_model()._meta.get_fields()}:
        options["manages_users"] = True  # the Users power, once tokens carry it
    _, secret = token_create(
        account=account,
        actor=account.owner,
        name="Schemathesis",
        permission_codes=sorted(permissions.ALL_CODES),
        expires_at=timezone.now() + timedelta(days=30),
        **options,
    )
    return secret


def _token_model() -> Any:
    from clientarea.api.models import ApiToken

    return ApiToken


def _config(tmp_path: Path, secrets: dict[str, str]) -> SchemathesisConfig:
    wfc = tmp_path / "auth.json"
    wfc.write_text(
        json.dumps(
            {
                "auth": [
                    {
                        "name": name,
                        "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {secret}"}],
                    }
                    for name, secret in secrets.items()
                ]
            }
        )
    )
    return SchemathesisConfig.from_dict(
        {
            "seed": 1,
            "cache": {"enabled": False},  # every run the same, and nothing left behind
            "workers": 1,
            "checks": {"enabled": True},
            "generation": {"max-examples": EXAMPLES},
            "auth": {"wfc": {"path": str(wfc), "peers": sorted(secrets)}},
        },
        base_dir=str(tmp_path),
    )


@pytest.fixture
def in_process_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schemathesis 4.32 sends its authorization probes (``ignored_auth``,
    ``object_level_authorization``) without the run's session, and then hands the
    in-process transport the socket-level options (redirects, TLS, proxies) that it
    drops only when a session is given; Werkzeug refuses them. Drop them here too."""
    original = WSGITransport.send

    def send(self: Any, case: Any, *, session: Any = None, **kwargs: Any) -> Any:
        if session is None:
            for name in ("max_redirects", "verify", "cert", "proxies"):
                kwargs.pop(name, None)
        return original(self, case, session=session, **kwargs)

    monkeypatch.setattr(WSGITransport, "send", send)


@pytest.mark.usefixtures("in_process_probes")
def test_the_api_passes_every_schemathesis_check(
    tmp_path: Path, settings: Any, panel: Any, registrar: Any
) -> None:
    settings.API_RATE_LIMIT = (1_000_000, 60)  # the limit has its own tests
    secrets = {
        "alice": _furnish(AccountFactory(company_name="Alice's")),
        "bob": _furnish(AccountFactory(company_name="Bob's")),
    }
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema", get_wsgi_application(), config=_config(tmp_path, secrets)
    )

    @schema.hook("filter_failure")
    def _rules_beyond_the_schema(context: Any, failure: Any, case: Any, response: Any) -> bool:
        """Keep every failure but "schema-valid input refused" where the refusal is a
        rule no schema can state, and only for the fields that carry one."""
        return not refused_by_a_rule_beyond_the_schema(failure, case, response)

    failures: list[str] = []
    errors: list[str] = []
    tested: set[str] = set()
    checks_run: set[str] = set()
    phases: dict[str, str] = {}  # name: status
    transitions = 0
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted) and event.payload is not None:
            transitions = max(transitions, event.payload.transitions_selected)
        elif isinstance(event, events.PhaseFinished):
            phases[event.phase.name.value] = event.status.value
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            label = event.recorder.label
            tested.add(label)
            for case_id, check_list in event.recorder.checks.items():
                for check in check_list:
                    checks_run.add(check.name)
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        failures.append(f"{label}: {check.name}: {failure.title}")
                        if os.environ.get("SCHEMATHESIS_VERBOSE"):
                            print(label, check.name, failure, check.failure_info.code_sample)
                            got = event.recorder.interactions.get(case_id)
                            if got is not None and got.response is not None:
                                print("   ->", got.response.status_code, got.response.content[:300])
        elif isinstance(event, events.NonFatalError):
            trace = "".join(traceback.format_exception(event.value))
            errors.append(f"{event.label}: {event.info.message}\n{trace}")
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
    assert errors == [], "\n".join(errors[:1])
    # Every phase ran, the stateful one along links between operations (Schemathesis
    # infers them from the schema: an id a list or a create answers, used by a read).
    ran = {name for name, status in phases.items() if status != "skip"}
    assert ran >= {"coverage", "fuzzing", "stateful"}, phases
    assert transitions > 0
    # The checks that matter most here did run (a check that never met its case would
    # not be listed): the cross-account replay and the unauthenticated one among them.
    assert {
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "ignored_auth",
        "object_level_authorization",
    } <= checks_run, sorted(checks_run)
    assert failures == [], "\n\n".join(sorted(set(failures)))
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert operations - tested == set(), "operations never tested"
