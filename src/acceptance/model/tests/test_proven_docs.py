"""docs/access.md's "What is proven" section is the output of `make prove` for the model
in the repository: a model changed since then fails here until `make prove` is rerun."""

from __future__ import annotations

from acceptance.model import prove
from clientarea.core.management.commands import access_table


def test_what_is_proven_is_current_for_this_model():
    text = prove.DOCS.read_text()
    # `manage.py access_table --write` rewrites the page's tables and keeps this section.
    assert access_table.PROVEN_BEGIN == prove.BEGIN
    assert prove.BEGIN in text and prove.END in text, "run make prove to write the section"
    assert prove.documented_fingerprint(text) == prove.model_fingerprint(), (
        "the access model changed since docs/access.md's 'What is proven' was written: "
        "run `make prove` and commit docs/access.md"
    )


def test_the_fingerprint_follows_every_model_module(tmp_path, monkeypatch):
    copy = tmp_path / "model"
    copy.mkdir()
    for source in prove.MODEL_DIR.glob("*.py"):
        (copy / source.name).write_bytes(source.read_bytes())
    monkeypatch.setattr(prove, "MODEL_DIR", copy)
    seen = {prove.model_fingerprint()}
    (copy / "prove.py").write_text("# the writer of the section is not the model\n")
    assert prove.model_fingerprint() in seen
    for name in ("rules.py", "reach.py", "invariants.py", "state.py", "catalogue.py"):
        (copy / name).write_text((copy / name).read_text() + "\n# changed\n")
        fingerprint = prove.model_fingerprint()
        assert fingerprint not in seen, name
        seen.add(fingerprint)


def test_the_section_is_replaced_in_place_and_renders_the_runs():
    runs = (
        prove.Run("both accounts", 2, False, locality_to=2),
        prove.Run("one account", 3, True, blind_to=2, views_to=2),
    )
    done, ok = prove.prove(runs, processes=1)
    assert ok
    section = prove.render_section(done, extra="Conformance: none yet.")
    result = done[0][1].result
    assert f"{prove.FINGERPRINT_PREFIX}{prove.model_fingerprint()} -->" in section
    assert f"| 2 | {result.states:,} |" in section and "Conformance: none yet." in section
    assert "every account has exactly one owner" in section.lower()
    # What the two explorations prove together, with the counts they measured.
    assert "**Both accounts, to depth 3, through one.**" in section
    assert f"the {result.states:,} distinct states of both accounts to depth 2" in section
    blind = done[1][1].result.per_depth[1][1]  # the one-account exploration's, to depth 2
    assert f"on each of the {blind:,} distinct states (up to relabelling people)" in section

    docs = "# Access\n\nintro\n"
    once = prove.write_section(docs, section)
    twice = prove.write_section(once.replace("intro", "intro, edited"), section)
    assert once.count(prove.BEGIN) == 1 and twice.count(prove.BEGIN) == 1
    assert twice.startswith("# Access\n\nintro, edited\n") and twice.endswith(prove.END + "\n")


def test_the_section_claims_no_composition_when_a_view_was_missed():
    runs = (prove.Run("both", 3, False), prove.Run("one", 1, True, blind_to=0, views_to=3))
    done, ok = prove.prove(runs, processes=1)
    assert not ok and prove.composition_paragraph(done) == ""


def test_the_section_claims_no_composition_without_the_unreadable_account_check():
    runs = (prove.Run("both", 2, False), prove.Run("one", 3, True, blind_to=1, views_to=2))
    done, ok = prove.prove(runs, processes=1)
    assert not ok and prove.composition_paragraph(done) == ""


def test_prove_fails_when_the_unreadable_account_check_finds_a_fault(monkeypatch):
    """make prove runs the check it writes about: an action that takes a login away (fact
    1 allows only giving one) fails the one-account run."""
    from acceptance.model import rules
    from acceptance.model.state import set_at

    real = rules.RULES["revoke"]

    def revoke_and_log_out(s, act, faults):
        after = real(s, act, faults)
        return after._replace(logins=set_at(after.logins, act.target, False))

    monkeypatch.setitem(rules.RULES, "revoke", revoke_and_log_out)
    runs = (prove.Run("both", 1, False), prove.Run("one", 3, True, blind_to=2, views_to=1))
    done, ok = prove.prove(runs, processes=1)
    assert not ok
    assert any("changed the logins" in v for v in done[1][1].locality_broken)
