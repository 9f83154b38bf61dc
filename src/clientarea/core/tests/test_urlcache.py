"""URL reversal remembered per process (core.urlcache, {% load clientarea_urls %}): the
same answers as Django's reverse and {% url %}, never stale after the URL configuration
changes, and loaded by every client-area template that reverses URLs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpResponse
from django.template import Context, Template
from django.urls import NoReverseMatch, path, reverse, set_script_prefix

from clientarea.core.urlcache import reverse_cached

SRC = Path(__file__).resolve().parents[3]

urlpatterns = [path("moved/", lambda request: HttpResponse(), name="moved")]


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("core:dashboard", (), {}),
        ("accounts:profile", (), {}),
        ("billing:invoice_detail", (7,), {}),
        ("billing:invoice_detail", (), {"pk": 7}),
        ("billing:invoice_detail", ("7",), {}),
    ],
)
def test_the_same_answer_as_reverse(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    assert reverse_cached(name, args=args, kwargs=kwargs) == reverse(name, args=args, kwargs=kwargs)
    assert reverse_cached(name, args=args, kwargs=kwargs) == reverse(name, args=args, kwargs=kwargs)


def test_an_argument_that_is_not_a_plain_int_or_str_is_reversed_every_time() -> None:
    class Named:
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return self.text

        def __hash__(self) -> int:
            return 1

        def __eq__(self, other: object) -> bool:
            return True  # two different objects that a cache would confuse

    assert reverse_cached("billing:invoice_detail", args=[Named("3")]).endswith("/3/")
    assert reverse_cached("billing:invoice_detail", args=[Named("4")]).endswith("/4/")
    # True == 1 for a dict key, but not for a URL.
    with pytest.raises(NoReverseMatch):
        reverse_cached("billing:invoice_detail", args=[True])
    assert reverse_cached("billing:invoice_detail", args=[1]).endswith("/1/")


def test_no_stale_answer_after_the_url_configuration_or_script_prefix_changes(
    settings: Any,
) -> None:
    assert reverse_cached("core:dashboard") == "/"
    settings.ROOT_URLCONF = __name__  # this module's urlpatterns: no dashboard, "/moved/"
    with pytest.raises(NoReverseMatch):
        reverse_cached("core:dashboard")
    assert reverse_cached("moved") == "/moved/"
    settings.ROOT_URLCONF = "config.urls"
    assert reverse_cached("core:dashboard") == "/"
    set_script_prefix("/clients/")
    try:
        assert reverse_cached("core:dashboard") == "/clients/"
    finally:
        set_script_prefix("/")
    assert reverse_cached("core:dashboard") == "/"


def test_the_tag_renders_as_djangos_url_tag() -> None:
    source = (
        "{% url 'accounts:profile' %}|{% url 'billing:invoice_detail' pk %}|"
        "{% url 'billing:invoice_detail' pk=pk %}|{% url 'billing:invoice_detail' pk as u %}"
        "[{{ u }}]|{% url 'no:such' as missing %}[{{ missing }}]"
    )
    context = {"pk": 12}
    django = Template(source).render(Context(context))
    cached = Template("{% load clientarea_urls %}" + source).render(Context(context))
    assert cached == django
    with pytest.raises(NoReverseMatch):
        Template("{% load clientarea_urls %}{% url 'no:such' %}").render(Context({}))


def test_every_client_area_template_that_reverses_urls_loads_the_cached_tag() -> None:
    missing = []
    for file in [*(SRC / "templates").rglob("*.html"), *(SRC / "clientarea").rglob("*.html")]:
        text = file.read_text()
        if "/admin/" in str(file) or "/email" in str(file) or "{% url " not in text:
            continue  # the back office's own templates; emails are rendered once, off-page
        if not re.search(r"\{% load [^%]*\bclientarea_urls\b", text):
            missing.append(str(file.relative_to(SRC)))
    assert missing == []
