"""What closing an account touches, collected from the apps that hold it.

The close page lives in accounts, which never imports a domain app: billing, hosting and
domains each register a hook in their ``AppConfig.ready()`` that lists the account's items
and says what closing does to each (the way ``core.registry`` collects dashboard tiles).
An item that is ``blocking`` (an unpaid invoice) refuses the closing until it is settled.
They may also register a housekeeping sweep the worker runs (services cancelled at the end
of their period, once the account is closed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .models import Account


@dataclass(frozen=True)
class ClosureItem:
    section: str  # "Unpaid invoices", "Services", "Domains"
    label: str
    outcome: str  # what closing does to it, in the customer's words
    blocking: bool = False


ClosureHook = Callable[[Account], list[ClosureItem]]
Sweep = Callable[[], int]

HOOKS: list[ClosureHook] = []
SWEEPS: list[Sweep] = []


def register_closure_hook(hook: ClosureHook) -> None:
    if hook not in HOOKS:
        HOOKS.append(hook)


def register_closure_sweep(sweep: Sweep) -> None:
    if sweep not in SWEEPS:
        SWEEPS.append(sweep)


def closure_items(account: Account) -> list[ClosureItem]:
    items: list[ClosureItem] = []
    for hook in HOOKS:
        items.extend(hook(account))
    return items


def closure_blockers(account: Account) -> list[ClosureItem]:
    return [item for item in closure_items(account) if item.blocking]


def closure_sweeps_run() -> int:
    """Run every registered sweep (the worker's housekeeping); how many items changed."""
    return sum(sweep() for sweep in SWEEPS)
