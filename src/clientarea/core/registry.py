"""Menu entries and dashboard tiles that domain apps register in their AppConfig.ready().

The shell (core) never imports a domain app: each app announces what it adds to the menu
and the dashboard, with the permission that guards it, and the shell shows only what the
current user's access allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from clientarea.accounts.policy import Access


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    permission: str | None  # None: any member of the account
    order: int = 50


@dataclass(frozen=True)
class Tile:
    label: str
    url_name: str
    permission: str
    # Counts what this access reaches (its scope included), in a constant number of queries.
    count: Callable[[Access], int]
    order: int = 50


NAV_ITEMS: list[NavItem] = []
TILES: list[Tile] = []


def register_nav(item: NavItem) -> None:
    if item not in NAV_ITEMS:
        NAV_ITEMS.append(item)
        NAV_ITEMS.sort(key=lambda i: i.order)


def register_tile(tile: Tile) -> None:
    if tile not in TILES:
        TILES.append(tile)
        TILES.sort(key=lambda t: t.order)


# --- attention items ----------------------------------------------------------------------


@dataclass(frozen=True)
class AttentionItem:
    """One thing on the dashboard that needs the person's attention: what it is, and the
    one action that deals with it ("Pay Now", "Renew")."""

    title: str
    url: str
    action: str
    detail: str = ""
    tone: str = "warn"  # "danger", "warn" or "info"


@dataclass(frozen=True)
class AttentionProvider:
    """A source of attention items. `items` computes them for an access (its permission
    and resource scope, through the policy) in a constant number of queries, at most
    ATTENTION_LIMIT of them; `permission` (None: any member) is checked before it runs."""

    name: str
    permission: str | None
    items: Callable[[Access], list[AttentionItem]]
    order: int = 50


ATTENTION_LIMIT = 5
ATTENTION_PROVIDERS: list[AttentionProvider] = []


def register_attention(provider: AttentionProvider) -> None:
    if all(p.name != provider.name for p in ATTENTION_PROVIDERS):
        ATTENTION_PROVIDERS.append(provider)
        ATTENTION_PROVIDERS.sort(key=lambda p: p.order)


# --- background jobs ----------------------------------------------------------------------

# Periodic jobs of the domain apps, run by the worker (which never imports a domain app):
# each returns a short summary for the worker's log ("" when there was nothing to do).
PERIODIC_JOBS: dict[str, Callable[[], str]] = {}


def register_periodic_job(name: str, job: Callable[[], str]) -> None:
    PERIODIC_JOBS[name] = job


# Retention jobs of the domain apps, run by the worker's hourly retention turn beside its
# own (sessions, throttles, email texts): each deletes what is past its age, in bounded
# batches (core.retention), and returns how many rows went, named by the registered name.
RETENTION_JOBS: dict[str, Callable[[], int]] = {}


def register_retention_job(name: str, job: Callable[[], int]) -> None:
    RETENTION_JOBS[name] = job
