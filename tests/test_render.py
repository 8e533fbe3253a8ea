"""What a pusher reads: a finding a line per field and per proof, wrapped to fit an 80-column terminal
after Git's `remote: ` (72 columns of text), commands to copy never broken (docs/semantics.md, "Dry runs";
README, "When your push is rejected"). The pushes in the other tests show the same lines end to end."""

from __future__ import annotations

from support.lines import unwrap

from stepup_git.model import Finding, Found, RuleResult, Update, Verdict
from stepup_git.render import render
from stepup_git.text import COLUMNS, wrap

MAIN = "refs/heads/main"
REQUIRED = ("a fresh proof of tier maintainer or higher owned by the pusher: a signed push certificate for this "
            "update (git push --signed) or a signature on the pushed tip made within the last 10m (update of "
            "refs/heads/main changes db/migrations/0042.sql (db/migrations/**, infra/**))")
FIX = ("sign the push with a key of tier maintainer or higher that is yours: git config user.signingkey <key id>, "
       "then git push --signed; or re-sign the tip now: git commit --amend --no-edit -S, then push")
REBASE = ("sign with a policy key of tier contributor or higher (git config user.signingkey <key id>): git rebase "
          "--rebase-merges --exec 'git commit --amend --no-edit -S' 1a2b3c4d5e, then push again")


def rejected(*findings: Finding, failed: int | None = None, ref: str = MAIN) -> list[str]:
    result = RuleResult(findings[0].rule, False, "failed", findings=findings,
                        failed_count=len(findings) if failed is None else failed)
    return render([Verdict(Update("1" * 40, "2" * 40, ref), "update", (result,))], mode="enforce")


def step_up(*found: Found, ref: str = MAIN) -> Finding:
    return Finding(ref, "migrations-step-up", "commit 4e89fb1346", REQUIRED, found, FIX)


def test_a_step_up_finding_has_a_labelled_line_per_proof_wrapped_under_its_value() -> None:
    lines = rejected(step_up(
        Found("none (the push was not made with git push --signed)", "push certificate", "push-certificate"),
        Found("signed by alice (maintainer, key 307414120810B0A0) 2h 5m ago, older than 10m",
              "tip commit 4e89fb1346", "tip-signature")))
    assert lines == [
        "stepup-git: push rejected: 1 of 1 update(s) fail the policy",
        'refs/heads/main: rule "migrations-step-up" failed for commit 4e89fb1346',
        "    required: a fresh proof of tier maintainer or higher owned by the",
        "              pusher: a signed push certificate for this update",
        "              (git push --signed) or a signature on the pushed tip made",
        "              within the last 10m (update of refs/heads/main changes",
        "              db/migrations/0042.sql (db/migrations/**, infra/**))",
        "    found:    push certificate: none (the push was not made with",
        "                git push --signed)",
        "              tip commit 4e89fb1346: signed by alice (maintainer, key",
        "                307414120810B0A0) 2h 5m ago, older than 10m",
        "    fix:      sign the push with a key of tier maintainer or higher that",
        "              is yours: git config user.signingkey <key id>, then",
        "              git push --signed; or re-sign the tip now:",
        "              git commit --amend --no-edit -S, then push",
    ]
    assert all(len(line) <= COLUMNS for line in lines[1:])
    assert unwrap(lines)[2:] == [
        f"    required: {REQUIRED}",
        "    found:    push certificate: none (the push was not made with git push --signed)",
        "              tip commit 4e89fb1346: signed by alice (maintainer, key 307414120810B0A0) 2h 5m ago, "
        "older than 10m",
        f"    fix:      {FIX}",
    ]


def test_a_command_to_copy_is_never_broken_even_when_longer_than_a_line() -> None:
    finding = Finding(MAIN, "signed", "commit 1a2b3c4d5e", "every new commit signed by a policy key of tier "
                      "contributor or higher", (Found("no signature"),), REBASE)
    lines = rejected(finding, finding, failed=7)
    assert lines[1:6] == [
        'refs/heads/main: rule "signed" failed for commit 1a2b3c4d5e',
        "    required: every new commit signed by a policy key of tier",
        "              contributor or higher",
        "    found:    no signature",
        "    fix:      sign with a policy key of tier contributor or higher",
    ]
    assert lines[6:9] == [
        "              (git config user.signingkey <key id>):",
        "              git rebase --rebase-merges --exec 'git commit --amend --no-edit -S' 1a2b3c4d5e,",
        "              then push again",
    ]
    assert lines[-1] == '    ... and 5 more object(s) failing rule "signed" the same way'
    assert unwrap(lines)[1:5] == [
        'refs/heads/main: rule "signed" failed for commit 1a2b3c4d5e',
        "    required: every new commit signed by a policy key of tier contributor or higher",
        "    found:    no signature",
        f"    fix:      {REBASE}",
    ]
    assert unwrap(lines)[5:9] == unwrap(lines)[1:5]


def test_a_long_ref_or_path_stands_alone_and_is_shown_printable() -> None:
    ref = "refs/heads/" + "x" * 70 + "\n" + "remote: forged"
    lines = rejected(Finding(ref, "deny-all", f"the delete of {ref}", "nothing: rule \"deny-all\" denies this",
                             (Found("a delete"),), "this change is not allowed by the policy"), ref=ref)
    shown = "refs/heads/" + "x" * 70 + "\\x0aremote:"
    assert lines[1:3] == [shown, '    forged: rule "deny-all" failed for the delete of']
    assert lines[3] == f"    {shown}"
    assert all(line.isprintable() for line in lines)


def test_the_object_a_finding_names_stays_on_one_line() -> None:
    ref = "refs/heads/release/2026-q4"
    finding = Finding(ref, "main-history-signed", "tag v2026.4.0 (1a2b3c4d5e)", "a signed tag",
                      (Found("no signature"),), "sign it")
    assert rejected(finding, ref=ref)[1:3] == [
        'refs/heads/release/2026-q4: rule "main-history-signed" failed for',
        "    tag v2026.4.0 (1a2b3c4d5e)",
    ]


def test_signers_and_the_pusher_are_labelled_parts_of_their_own() -> None:
    lines = rejected(step_up(
        Found("signed by alice (maintainer, key 307414120810B0A0), nonce OK", "push certificate", "push-certificate"),
        Found("1 of 2 counted (alice)", "signers"),
        Found("bob, but the proof is alice's", "pusher")))
    assert lines[7:10] == [
        "    found:    push certificate: signed by alice (maintainer, key",
        "                307414120810B0A0), nonce OK",
        "              signers: 1 of 2 counted (alice)",
    ]
    assert lines[10] == "              pusher: bob, but the proof is alice's"


def test_wrap_breaks_between_words_and_keeps_short_text_whole() -> None:
    assert wrap("a short value", "    fix:      ", " " * 14) == ["    fix:      a short value"]
    assert wrap("", "    note: ", " " * 10) == ["    note:"]
    assert wrap("word " * 20, "", "  ", width=20) == ["word word word word", *["  word word word"] * 5, "  word"]
    # a hyphenated option is not a place to break, nor a quoted argument of a command
    assert wrap("then run git push --force-with-lease origin 'a b c'; done", "", "", width=20) == [
        "then run", "git push --force-with-lease origin 'a b c';", "done"]
    # a push option to copy stays whole, its quoted value too
    assert wrap('give a reason: -o stepup.break-glass="why this cannot wait"', "    note: ", " " * 10, width=50) == [
        "    note: give a reason:", '          -o stepup.break-glass="why this cannot wait"']
