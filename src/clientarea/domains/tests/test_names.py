"""Property-based tests of host names: nameserver validation and IDN round-trips."""

from __future__ import annotations

import idna
import pytest
from django.core.exceptions import ValidationError
from hypothesis import assume, example, given
from hypothesis import strategies as st

from clientarea.domains import names

LDH = "abcdefghijklmnopqrstuvwxyz0123456789"


@st.composite
def ldh_label(draw: st.DrawFn) -> str:
    """A valid ASCII label: letters, digits, inner hyphens; never 'xx--' (reserved)."""
    body = draw(st.text(alphabet=LDH + "-", min_size=0, max_size=20))
    first = draw(st.sampled_from(LDH))
    last = draw(st.sampled_from(LDH))
    label = (first + body + last) if body or draw(st.booleans()) else first
    assume(label[2:4] != "--")
    return label


@st.composite
def hostnames(draw: st.DrawFn) -> str:
    labels = draw(st.lists(ldh_label(), min_size=1, max_size=4))
    tld = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=10))
    return ".".join([*labels, tld])


@given(hostnames(), st.booleans(), st.booleans())
@example("ns1.example.com", False, False)
@example("a.b", True, True)
def test_valid_hostnames_are_accepted_and_normalised(name: str, upper: bool, dot: bool) -> None:
    typed = (name.upper() if upper else name) + ("." if dot else "")
    assert names.nameserver_normalise(typed) == name
    assert names.nameservers_validate(["", typed, "ns9.other.example"]) == [
        name,
        "ns9.other.example",
    ]


@given(st.ip_addresses())
@example("[2001:db8::1]")
def test_ip_addresses_are_rejected(address: object) -> None:
    text = str(address)
    with pytest.raises(names.InvalidName, match="IP address"):
        names.nameserver_normalise(text)
    with pytest.raises(ValidationError) as info:
        names.nameservers_validate(["ns1.example.com", text])
    message = info.value.message_dict["ns2"][0]
    assert message.startswith("Nameserver 2: ") and "IP address" in message


BAD_CHARS = " _/@!*,;:<>'\"\\#%&()+=?[]{}|~`$^"


@given(hostnames(), st.sampled_from(BAD_CHARS), st.integers(min_value=0, max_value=50))
def test_garbage_is_rejected_with_the_field_named(name: str, bad: str, at: int) -> None:
    position = at % (len(name) + 1)
    if bad == " ":  # surrounding spaces are trimmed, as a person would expect
        position = 1 + at % (len(name) - 1)
    garbage = name[:position] + bad + name[position:]
    with pytest.raises(ValidationError) as info:
        names.nameservers_validate(["ns1.example.com", "ns2.example.com", garbage])
    assert info.value.message_dict["ns3"][0].startswith("Nameserver 3: ")


@given(st.text(max_size=80))
def test_any_text_is_either_a_clean_hostname_or_a_clear_error(text: str) -> None:
    try:
        result = names.nameserver_normalise(text)
    except names.InvalidName as exc:
        assert str(exc)
    else:
        assert result.isascii() and result == result.lower() and not result.endswith(".")
        assert len(result) <= 253 and "." in result
        assert all(names._LABEL.match(label) for label in result.split("."))


@pytest.mark.parametrize(
    "bad",
    ["ns1", "ns1..example.com", "-ns1.example.com", "ns1-.example.com", "ns1.example.123",
     "a" * 64 + ".example.com", ".".join(["abcdefghi"] * 26) + ".com", "1.2.3.4.", "::1",
     "ns1.example.com/", "http://ns1.example.com", ""],
)  # fmt: skip
def test_known_bad_nameservers(bad: str) -> None:
    with pytest.raises(names.InvalidName):
        names.nameserver_normalise(bad)


@given(st.lists(hostnames(), min_size=1, max_size=4, unique=True), st.data())
def test_duplicates_are_rejected_whatever_the_case_or_trailing_dot(
    servers: list[str], data: st.DataObject
) -> None:
    if len(servers) < 2:
        servers = [*servers, "ns-extra.example.org"]
        assume(len(set(servers)) == 2)
    repeated = data.draw(st.sampled_from(servers))
    variant = repeated.upper() + "."
    values = [*servers, variant][:5]
    assume(variant in values)
    with pytest.raises(ValidationError) as info:
        names.nameservers_validate(values)
    field = f"ns{values.index(variant) + 1}"
    message = info.value.message_dict[field][0]
    assert "already nameserver" in message and message.startswith(f"Nameserver {field[2:]}: ")


def test_count_must_be_between_two_and_five() -> None:
    with pytest.raises(ValidationError) as info:
        names.nameservers_validate(["ns1.example.com", "", "", "", ""])
    assert info.value.message_dict["ns2"] == [
        "Nameserver 2: enter a host name; a domain needs at least 2 nameservers."
    ]
    with pytest.raises(ValidationError):
        names.nameservers_validate([f"ns{i}.example.com" for i in range(6)])
    five = [f"ns{i}.example.com" for i in range(1, 6)]
    assert names.nameservers_validate(five) == five


UNICODE_LETTERS = (
    "abcdefghijklmnopqrstuvwxyzéèàçüöäßñøåæœşğıαβγδεζηθλμπσωабвгдежзиклмнопрстуфхцчшщыэюя"  # noqa: RUF001
)


@st.composite
def unicode_labels(draw: st.DrawFn) -> str:
    return draw(st.text(alphabet=UNICODE_LETTERS + "0123456789", min_size=1, max_size=15))


@given(st.lists(unicode_labels(), min_size=1, max_size=3), st.sampled_from(["ie", "com", "de"]))
@example(["café-example"], "ie")
def test_idn_domains_round_trip_unicode_ascii_unicode(labels: list[str], tld: str) -> None:
    unicode_name = ".".join([*labels, tld])
    ascii_name = names.domain_name_normalise(unicode_name)
    assert ascii_name.isascii()
    assert names.to_unicode(ascii_name) == idna.decode(idna.encode(unicode_name, uts46=True))
    assert names.to_unicode(ascii_name) == unicode_name  # already in normal form
    assert names.domain_name_normalise(names.to_unicode(ascii_name)) == ascii_name


def test_idn_examples() -> None:
    assert names.domain_name_normalise("Café-Example.IE.") == "xn--caf-example-dbb.ie"
    assert names.to_unicode("xn--caf-example-dbb.ie") == "café-example.ie"
    assert names.to_unicode("xn--not-valid-punycode-!!.ie") == "xn--not-valid-punycode-!!.ie"
