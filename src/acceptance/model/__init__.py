"""An executable model of the access model, and an exhaustive explorer over it (issue 17).

Plain Python, no Django: a small world (3 people, 2 accounts, one service and one domain
per account) whose actions mirror the service functions of the real app, and whose
invariants are checked after every step of every action sequence up to a depth.

- ``catalogue``: the permission catalogue, email kinds and the small lattice of grants;
- ``state``: the world's state (immutable), its initial value and its canonical form;
- ``rules``: the actions, each mirroring one service function (cited), refused or applied;
- ``reach``: what each person, token and contact reaches, mirroring the policy (the one
  module the conformance step compares with the real app);
- ``routes``: the route table grouped by rule and object, read from ``access_table``;
- ``invariants``: the properties, written against the state and the published tables
  (route table, channel table), independently of ``reach``;
- ``explore``: breadth-first search over every action sequence, with a CLI.

Conformance with the real app is ``conformance`` (the one module that imports Django; see
its docstring and ``tests/test_conformance.py``): each distinct state the explorer hands
to ``explore.explore(depth, on_state=...)`` is replayed on the app through the service
``rules.SERVICE_OF`` names (P0 owns A0, P1 owns A1, P2 has no login yet), and
``reach.reach(state)`` is compared with the app's answers, route groups expanded with
``routes.routes_of``. The clock: one tick is 4 days, so a transfer offer (72 hours) is
dead after one tick and an invitation (7 days) after two; "soon" for an access expiry is
3 days from then, a token's expiry 6 days.
"""
