"""Fixtures of the acceptance tests: the route x actor matrices' worlds, built once per
module."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from acceptance.test_access_matrix import build_world


@dataclass
class _Built:
    world: Any  # a World of the access matrix, or of the API's (BUILD_WORLD)
    cookies: dict[str, Any]  # each actor's browser cookies, as the world was built
    at: float


@pytest.fixture(scope="module")
def _matrix_world_once(
    request: pytest.FixtureRequest, django_db_setup: Any, django_db_blocker: Any
) -> Iterator[_Built]:
    """The matrix's world (the module's ``BUILD_WORLD``, else the access matrix's
    ``build_world``), built once for a module's cases (building it was most of each
    case's time) inside a transaction that is rolled back once they have run.
    Module-scoped, it is set up before each case's own transaction, which is then a
    savepoint inside this one: what a case changes is rolled back with it, and the next
    case finds the world as it was built."""
    build: Callable[[], Any] = getattr(request.module, "BUILD_WORLD", build_world)
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        # Marked as a test's own block, as Django marks the one around each test: a request
        # in it is outside any transaction of the app's (the outside-call rule).
        outer._from_testcase = True
        outer.__enter__()
        try:
            world = build()
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    sessions = getattr(world, "sessions", {})
    cookies = {actor: copy.deepcopy(client.cookies) for actor, client in sessions.items()}
    try:
        yield _Built(world, cookies, time.monotonic())
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def matrix_world(_matrix_world_once: _Built, db: Any) -> Any:
    """The shared world as it was built: every browser with its cookies of then (a case's
    requests may have logged one out or rotated its cookies; the rows they changed were
    rolled back with the case) and its objects read again from the database."""
    built = _matrix_world_once
    # The sessions' last activity is the build's (each case's is rolled back): the idle
    # timeout must not have come, or every actor would be sent to the login page.
    age = time.monotonic() - built.at
    assert age < settings.SESSION_IDLE_TIMEOUT / 2, f"the shared world is {age:.0f} s old"
    world = built.world
    for actor, client in getattr(world, "sessions", {}).items():
        client.cookies = copy.deepcopy(built.cookies[actor])
    for instance in (world.a, world.b, world.service, world.domain):
        instance.refresh_from_db()
    return world
