"""Queries asked on every request, built with the ORM once per process, not per request.

Building a queryset (filters, joins, annotations) and compiling it to SQL is most of the
Python work of a small query: for the request's one access query (``policy.access_with``)
it was about 15,000 function calls a request, more than a whole bare Django page
(bench/bench_throughput.py). Its SQL is the same for every request; only the person's
id, the account's id, the time and the like change. So a ``PreparedQuery`` builds the
queryset once per process and thread with marks in place of those values, compiles it,
finds where each mark went among the SQL's parameters, and each request only puts its
values there and runs the SQL. The rows are turned into model instances by the same
compiler, as the queryset itself would (its converters, its ``select_related``, its
annotations).

The query is still written once, with the ORM, next to the rule it applies: nothing is
hand-written SQL and nothing is cached across requests but the SQL text. If the marks
cannot be found as given (a Django version that folds or reorders parameters), the
queryset is simply built on every call, as before (``is_prepared`` says which; a test
holds the request path to the prepared one).

This is not a server-side prepared statement: the SQL goes with its parameters like any
other query, so it works unchanged behind a transaction-mode pooler (docs/deploy.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from django.db import connections, router
from django.db.models import Model, QuerySet
from django.db.models.query import (  # type: ignore[attr-defined]  # (not in the stubs)
    ModelIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)

# Two sets of values no real request carries, by kind and by the value's place k among
# the query's values (so no two values share a mark): the query is built with each set,
# and a parameter is a value's place only if it is the first set's mark in the one build
# and the second's in the other (a constant that happens to equal a mark cannot pass).
_MARKS: dict[type, Callable[[int, int], Any]] = {
    int: lambda which, k: -730_519_000 - 1_000 * which - k,
    str: lambda which, k: f"\x1fmark-{which}-{k}\x1f",
    datetime: lambda which, k: datetime(2001 + which, 2, 3, 4, 5, k, 789_012, tzinfo=UTC),
}


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    places: dict[str, tuple[int, ...]]  # each value's positions among the parameters
    compiler: SQLCompiler  # of the first build: turns rows into instances
    tuples: bool  # a values_list's rows (tuples), not model instances


class PreparedQuery(Generic[M]):
    """`build(**values)` returns a queryset of `model` for those values; `kinds` names
    each value and its type (int, str or datetime). Each value must reach the SQL as a
    parameter (a filter's or an expression's value), as it is or adapted as a datetime."""

    def __init__(
        self, model: type[M], build: Callable[..., QuerySet[M, Any]], **kinds: type
    ) -> None:
        unknown = {name: kind for name, kind in kinds.items() if kind not in _MARKS}
        if unknown:
            raise TypeError(f"No mark for {unknown}: use int, str or datetime.")
        self.model = model
        self.build = build
        self.kinds = kinds
        # Per thread: a compiler belongs to its thread's connection (gunicorn's threads
        # each keep theirs).
        self._local = threading.local()

    def fetch(self, using: str | None = None, **values: Any) -> list[Any]:
        """The queryset's rows for `values`, as ``list(build(**values))`` would give: model
        instances, or tuples for a ``values_list`` (not ``flat``: its rows are tuples)."""
        if set(values) != set(self.kinds):
            raise TypeError(f"Expected the values {sorted(self.kinds)}, got {sorted(values)}.")
        alias = using or router.db_for_read(self.model)
        compiled = self._compiled(alias)
        filled = self.sql_for(alias, **values)
        if compiled is None or filled is None:
            return list(self.build(**values).using(alias))
        with connections[alias].cursor() as cursor:
            cursor.execute(*filled)
            rows = cursor.fetchall()
        if compiled.tuples:
            return list(compiled.compiler.results_iter(results=[rows], tuple_expected=True))
        return list(_instances(compiled.compiler, alias, rows))

    def sql_for(self, using: str, **values: Any) -> tuple[str, list[Any]] | None:
        """The prepared SQL and its parameters for `values`; None when the queryset is
        built instead: not prepared, or a value not plainly of its kind (a str for an
        int, a naive time, an int past 64 bits), which the ORM converts or answers
        without SQL (an out-of-range id finds nothing), and raw SQL would not."""
        compiled = self._compiled(using)
        if compiled is None or not all(_plain(self.kinds[n], v) for n, v in values.items()):
            return None
        connection = connections[using]
        params = list(compiled.params)
        for name, places in compiled.places.items():
            value = self._adapted(connection, values[name])
            for i in places:
                params[i] = value
        return compiled.sql, params

    def is_prepared(self, using: str) -> bool:
        return self._compiled(using) is not None

    # ---------------------------------------------------------------------------------

    def _marks(self, which: int) -> dict[str, Any]:
        return {name: _MARKS[kind](which, k) for k, (name, kind) in enumerate(self.kinds.items())}

    @staticmethod
    def _adapted(connection: Any, value: Any) -> Any:
        if isinstance(value, datetime):
            return connection.ops.adapt_datetimefield_value(value)
        return value

    def _compiled(self, alias: str) -> _Compiled | None:
        cache: dict[str, _Compiled | None] = self._local.__dict__.setdefault("by_alias", {})
        if alias not in cache:
            cache[alias] = self._compile(alias)
        return cache[alias]

    def _compile(self, alias: str) -> _Compiled | None:
        connection = connections[alias]
        builds = []
        for which in (0, 1):
            queryset = self.build(**self._marks(which))
            if queryset._iterable_class not in (ModelIterable, ValuesListIterable):
                return None  # dicts or flat values: only instances and tuples are made here
            tuples = queryset._iterable_class is ValuesListIterable
            compiler = queryset.query.get_compiler(using=alias)
            sql, params = compiler.as_sql()
            builds.append((compiler, sql, tuple(params)))
        (compiler, sql, params), (_, other_sql, other_params) = builds
        if sql != other_sql or len(params) != len(other_params):
            return None
        places: dict[str, tuple[int, ...]] = {}
        firsts, seconds = self._marks(0), self._marks(1)
        for name in self.kinds:
            first = self._adapted(connection, firsts[name])
            second = self._adapted(connection, seconds[name])
            places[name] = tuple(
                i
                for i, (p, q) in enumerate(zip(params, other_params, strict=True))
                if _same(p, first) and _same(q, second)
            )
            if not places[name]:
                return None
        marked = {i for found in places.values() for i in found}
        unmarked_differ = any(
            not _same(p, q)
            for i, (p, q) in enumerate(zip(params, other_params, strict=True))
            if i not in marked
        )
        if unmarked_differ:  # a value reached the SQL in some form other than a parameter
            return None
        return _Compiled(sql, params, places, compiler, tuples)


def _plain(kind: type, value: Any) -> bool:
    if kind is int:
        return type(value) is int and -(2**63) <= value < 2**63
    if kind is datetime:
        return isinstance(value, datetime) and value.tzinfo is not None
    return type(value) is kind


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _instances(compiler: SQLCompiler, alias: str, rows: list[Any]) -> Iterator[Any]:
    """Rows made into model instances as Django's ``ModelIterable`` makes them (the model's
    columns, then ``select_related`` objects, then annotations)."""
    select, klass_info = compiler.select, compiler.klass_info
    assert klass_info is not None
    start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
    names = [column[0].target.attname for column in select[start:end]]
    populators = get_related_populators(klass_info, select, alias)
    model = klass_info["model"]
    for row in compiler.results_iter(results=[rows]):
        instance = model.from_db(alias, names, row[start:end])
        for populator in populators:
            populator.populate(row, instance)
        for name, position in compiler.annotation_col_map.items():
            setattr(instance, name, row[position])
        yield instance
