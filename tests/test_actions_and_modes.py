"""Actions (docs/semantics.md; README.md `on`), `deny`, pusher binding (§5.4), audit mode and failing closed (§6).

Every push goes through the installed hook with real git and gpg; a few tests run the installed hook
directly to feed it input or an environment no `git push` can produce.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support import run_bytes
from support.keys import Key, People, key_toml
from support.lines import unwrap
from support.repos import Clone, PushResult, Server

ZERO = "0" * 40
MAIN = "refs/heads/main"
PROD = "refs/heads/prod"
GUARDED = "refs/heads/guarded"
REJECTED = "stepup-git: push rejected: 1 of 1 update(s) fail the policy"
WARNING = (
    "stepup-git: WARNING (audit mode): 1 of 1 update(s) fail the policy; the push is accepted now "
    "but will be rejected once the policy is enforced"
)
NO_CERT = "push certificate: none (the push was not made with git push --signed)"
AGE = r"\d+[smhd](?: \d+[hm])?"

RULES = """
[[rules]]
name = "main-no-rewrite"
refs = ["refs/heads/main"]
on = ["force-push", "delete"]
require = "step-up"
tier = "release"

[[rules]]
name = "no-direct-prod"
refs = ["refs/heads/prod"]
on = ["delete"]
require = "deny"

[[rules]]
name = "guarded-bound"
refs = ["refs/heads/guarded"]
require = "step-up"
tier = "maintainer"
bind_pusher = true
"""


def accepted(checks: int) -> str:
    return f"stepup-git: push accepted (1 update(s), {checks} rule check(s) passed)"


def no_rule(ref: str) -> str:
    return f"stepup-git: note: {ref}: no rule applies"


def policy_text(people: People, settings: str = "") -> str:
    """alice maintainer, carol release; main may not be rewritten or deleted, prod never deleted."""
    return (
        "version = 1\n\n"
        + (f"[settings]\n{settings}\n" if settings else "")
        + '[tiers]\norder = ["contributor", "maintainer", "release"]\n\n'
        + key_toml(people.alice, "alice", "maintainer")
        + key_toml(people.carol, "carol", "release")
        + RULES
    )


def keyring(people: People) -> dict[str, str]:
    return {"alice.asc": people.alice.export(), "carol.asc": people.carol.export()}


def protect(server: Server, people: People, settings: str = "", mode: str | None = None) -> None:
    server.write_policy(policy_text(people, settings), keyring(people))
    server.install(mode=mode)


def seeded(
    server: Server, clone: Clone, people: People, *refs: str, settings: str = "",
    mode: str | None = None, sign: Key | None = None,
) -> str:
    """Commit README (signed by `sign` now, if given), push it to `refs` before the hook exists,
    then protect the server."""
    clone.write("README.md", "app\n")
    oid = clone.commit("base", sign=sign)
    assert clone.push(*(refs or ("main",))).ok
    protect(server, people, settings, mode)
    return oid


def who(key: Key, owner: str, tier: str) -> str:
    return f"signed by {owner} ({tier}, key {key.fingerprint[-16:]})"


def finding(ref: str, rule: str, obj: str, required: str, found: list[str], fix: str) -> list[str]:
    """A finding's lines as :func:`unwrap` joins them: a line per field and per part of `found`."""
    return [
        f'{ref}: rule "{rule}" failed for {obj}',
        f"    required: {required}",
        *[("    found:    " if i == 0 else " " * 14) + part for i, part in enumerate(found)],
        f"    fix:      {fix}",
    ]


def assert_lines(remote: list[str], expected: list[str]) -> None:
    """The lines joined where they wrap (:func:`unwrap`, their wrapping depends on ages), where `{AGE}` in an
    expected line stands for any rendered duration; every line fits 80 columns after `remote: `."""
    assert all(len(line) <= 72 for line in remote[1:]), remote
    remote = unwrap(remote)
    assert len(remote) == len(expected), remote
    for line, want in zip(remote, expected, strict=True):
        regex = re.escape(want).replace(re.escape("{AGE}"), AGE)
        assert re.fullmatch(regex, line), (line, want)


def last_record(server: Server, ref: str, decision: str) -> dict[str, Any]:
    record: dict[str, Any] = server.audit_records()[-1]
    assert (record["ref"], record["decision"]) == (ref, decision)
    return record


def one_proof(record: dict[str, Any], rule: str) -> dict[str, Any]:
    ((name, result, proofs),) = [(r["name"], r["result"], r["proofs"]) for r in record["rules"]]
    assert (name, result) == (rule, "pass")
    (proof,) = proofs
    found: dict[str, Any] = proof
    return found


def step_up_required(tier: str, reason: str, *, bound: bool = False, delete: bool = False) -> str:
    owned = " owned by the pusher" if bound else ""
    proofs = "a signed push certificate for this update (git push --signed)"
    if not delete:
        proofs += " or a signature on the pushed tip made within the last 15m"
    return f"a fresh proof of tier {tier} or higher{owned}: {proofs} ({reason})"


def step_up_fix(tier: str, *, bound: bool = False, force: bool = False) -> str:
    yours = " that is yours" if bound else ""
    return (
        f"sign the push with a key of tier {tier} or higher{yours}: git config user.signingkey "
        f"<key id>, then git push --signed{' --force' if force else ''}; or re-sign the tip now: "
        f"git commit --amend --no-edit -S, then {'git push --force' if force else 'push'}"
    )


def hook_path(server: Server) -> Path:
    return server.path / "hooks" / "pre-receive"


def run_hook(
    server: Server, stdin: bytes, env: Mapping[str, str | None] | None = None
) -> tuple[int, list[str], str]:
    """Run the installed pre-receive hook directly: (exit code, stderr lines, stdout)."""
    proc = run_bytes(
        [hook_path(server)],
        cwd=server.path,
        env={"GIT_DIR": str(server.path), **(env or {})},
        input=stdin,
        check=False,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr
    return proc.returncode, stderr.splitlines(), proc.stdout.decode("utf-8", "replace")


# --- actions ------------------------------------------------------------------------------------


def test_fast_forward_to_main_needs_no_proof(people: People, server: Server, clone: Clone) -> None:
    """`main-no-rewrite` covers force-push and delete only: an unsigned fast-forward passes."""
    base = seeded(server, clone, people)
    clone.write("src/app.py", "print('v2')\n")
    oid = clone.commit("ordinary work")
    result = clone.push("main")
    assert result.ok, result
    assert result.remote == [accepted(0), no_rule(MAIN)]
    assert server.ref(MAIN) == oid
    record = last_record(server, MAIN, "accept")
    assert (record["old"], record["new"], record["action"], record["rules"]) == (
        base, oid, "update", []
    )


def rewritten_main(server: Server, clone: Clone, people: People) -> tuple[str, str]:
    """main holds base+work on the server; the clone rewrites it: (server tip, rewritten tip)."""
    base = seeded(server, clone, people)
    clone.write("src/app.py", "print('v2')\n")
    old = clone.commit("work")
    assert clone.push("main").ok
    clone.git("reset", "-q", "--hard", base)
    clone.write("src/app.py", "print('rewritten')\n")
    return old, clone.commit("rewritten history")


def test_force_push_to_main_needs_a_release_proof(
    people: People, server: Server, clone: Clone
) -> None:
    """A rewrite of main is refused unsigned and when a maintainer signs the push; carol's signed
    push (release) lets it through."""
    old, new = rewritten_main(server, clone, people)
    required = step_up_required("release", "force-push of refs/heads/main")
    result = clone.push("main", force=True)
    assert not result.ok, result
    assert unwrap(result.remote) == [
        REJECTED,
        *finding(MAIN, "main-no-rewrite", f"commit {new[:10]}", required,
                 [NO_CERT, f"tip commit {new[:10]}: no signature"], step_up_fix("release", force=True)),
    ]
    assert server.ref(MAIN) == old
    assert last_record(server, MAIN, "reject")["action"] == "force-push"

    alice = who(people.alice, "alice", "maintainer")
    result = clone.push("main", force=True, signed=people.alice)
    assert not result.ok, result
    assert unwrap(result.remote) == [
        REJECTED,
        *finding(MAIN, "main-no-rewrite", f"commit {new[:10]}", required,
                 [f"push certificate: {alice}, nonce OK; tier maintainer is below release",
                  f"tip commit {new[:10]}: no signature"],
                 step_up_fix("release", force=True)),
    ]
    assert server.ref(MAIN) == old

    result = clone.push("main", force=True, signed=people.carol)
    assert result.ok, result
    assert result.remote == [accepted(1)]
    assert server.ref(MAIN) == new
    record = last_record(server, MAIN, "accept")
    assert (record["old"], record["new"], record["action"]) == (old, new, "force-push")
    proof = one_proof(record, "main-no-rewrite")
    assert (proof["kind"], proof["owner"], proof["fingerprint"]) == (
        "push-certificate", "carol", people.carol.fingerprint
    )


def test_force_push_fix_names_a_command_that_works(
    people: People, server: Server, clone: Clone
) -> None:
    """The fix printed for a refused rewrite must itself be a force-push (docs/semantics.md, "Rules": the command
    that fixes it); a plain `git push --signed` is refused by Git as a non-fast-forward."""
    old, _ = rewritten_main(server, clone, people)
    result = clone.push("main", force=True)
    assert not result.ok and server.ref(MAIN) == old
    fix = unwrap(result.remote)[-1]
    plain = clone.push("main", signed=people.carol)
    assert not plain.ok and "[rejected]" in plain.stderr and plain.remote == []
    assert server.ref(MAIN) == old
    assert fix.startswith("    fix:      ")
    assert "git push --signed --force" in fix or "git push --force --signed" in fix


def test_delete_main_needs_a_signed_push(people: People, server: Server, clone: Clone) -> None:
    """Deleting main needs a push certificate: carol's fresh tip signature cannot prove a delete."""
    tip = seeded(server, clone, people, sign=people.carol)
    result = clone.push(":main")
    assert not result.ok, result
    assert unwrap(result.remote) == [
        REJECTED,
        *finding(
            MAIN,
            "main-no-rewrite",
            "the delete of refs/heads/main",
            step_up_required("release", "delete of refs/heads/main", delete=True),
            [NO_CERT],
            "sign the push with a key of tier release or higher: git config user.signingkey "
            "<key id>, then git push --signed origin :main",
        ),
    ]
    assert server.ref(MAIN) == tip
    record = last_record(server, MAIN, "reject")
    assert (record["old"], record["new"], record["action"]) == (tip, ZERO, "delete")

    result = clone.push(":main", signed=people.carol)
    assert result.ok, result
    assert result.remote == [accepted(1)]
    assert server.ref(MAIN) is None
    record = last_record(server, MAIN, "accept")
    assert (record["new"], record["action"]) == (ZERO, "delete")
    proof = one_proof(record, "main-no-rewrite")
    assert (proof["kind"], proof["owner"]) == ("push-certificate", "carol")


def test_delete_prod_is_denied_even_when_signed(
    people: People, server: Server, clone: Clone
) -> None:
    """`deny` refuses the delete of prod whatever proof comes with it; other prod updates pass."""
    tip = seeded(server, clone, people, "main", "main:prod")
    denied = [
        REJECTED,
        'refs/heads/prod: rule "no-direct-prod" failed for',
        "    the delete of refs/heads/prod",
        '    required: nothing: rule "no-direct-prod" denies this (delete of',
        "              refs/heads/prod)",
        "    found:    a delete",
        "    fix:      this change is not allowed by the policy; ask a repository",
        "              administrator if it must happen",
    ]
    for signer in (None, people.carol):
        result = clone.push(":prod", signed=signer)
        assert not result.ok, result
        assert result.remote == denied
        assert server.ref(PROD) == tip
        record = last_record(server, PROD, "reject")
        assert [(r["name"], r["result"], r["reason"]) for r in record["rules"]] == [
            ("no-direct-prod", "fail", "denied: delete of refs/heads/prod")
        ]
    oid = clone.commit("prod moves forward")
    result = clone.push("HEAD:prod")
    assert result.ok, result
    assert result.remote == [accepted(0), no_rule(PROD)]
    assert server.ref(PROD) == oid


# --- pusher binding -----------------------------------------------------------------------------


def bound_finding(oid: str, people: People, problem: str, fix: str | None = None) -> list[str]:
    alice = who(people.alice, "alice", "maintainer")
    return finding(
        GUARDED,
        "guarded-bound",
        f"commit {oid[:10]}",
        step_up_required("maintainer", "create of refs/heads/guarded", bound=True),
        [NO_CERT, f"tip commit {oid[:10]}: {alice} {{AGE}} ago", f"pusher: {problem}"],
        fix or step_up_fix("maintainer", bound=True),
    )


def unknown_pusher_fix(names: str) -> str:
    """The fix when the server does not say who pushes: the server's set-up, not the developer's."""
    return (f"the server did not say who pushes (none of {names} is set for the hook), so no proof can be bound "
            "to the pusher; a repository administrator must have the server pass the authenticated user in one "
            "of them, or name the variable it sets in settings.pusher_env (docs/servers.md)")


DEFAULT_PUSHER_ENV = "STEPUP_PUSHER, GL_USERNAME, GITEA_PUSHER_NAME, GL_USER, GITHUB_USER_LOGIN, REMOTE_USER"


def test_bind_pusher_needs_the_proof_to_be_the_pushers_own(
    people: People, server: Server, clone: Clone
) -> None:
    """alice's fresh tip signature counts only when the pusher is alice (STEPUP_PUSHER first,
    then GL_USERNAME)."""
    seeded(server, clone, people)
    oid = clone.commit("guarded change", sign=people.alice)
    push = f"HEAD:{GUARDED}"

    # bob holds no policy key at all: the fix is that alice pushes it herself
    bob_cannot = ("bob holds no key of tier maintainer or higher, so no signature of theirs can prove this; someone "
                  "who does (alice, carol) must sign it and push it themselves: git push --signed")
    result = clone.push(push, pusher="bob")
    assert not result.ok, result
    assert_lines(result.remote, [REJECTED, *bound_finding(
        oid, people, "bob, but the proof is alice's", bob_cannot)])
    assert last_record(server, GUARDED, "reject")["pusher"] == "bob"

    result = clone.push(push)
    assert not result.ok, result
    assert_lines(result.remote, [REJECTED, *bound_finding(
        oid, people, "unknown, so alice's proof cannot be bound to the pusher",
        unknown_pusher_fix(DEFAULT_PUSHER_ENV))])
    assert last_record(server, GUARDED, "reject")["pusher"] is None

    result = clone.push(push, pusher="bob", env={"GL_USERNAME": "alice"})
    assert not result.ok, result
    assert_lines(result.remote, [REJECTED, *bound_finding(
        oid, people, "bob, but the proof is alice's", bob_cannot)])
    assert server.ref(GUARDED) is None

    result = clone.push(push, pusher="alice")
    assert result.ok, result
    assert result.remote == [accepted(1)]
    assert server.ref(GUARDED) == oid
    record = last_record(server, GUARDED, "accept")
    assert record["pusher"] == "alice"
    proof = one_proof(record, "guarded-bound")
    assert (proof["kind"], proof["owner"]) == ("tip-signature", "alice")

    second = clone.commit("second guarded change", sign=people.alice)
    result = clone.push(push, env={"GL_USERNAME": "alice"})
    assert result.ok, result
    assert result.remote == [accepted(1)]
    assert server.ref(GUARDED) == second
    assert last_record(server, GUARDED, "accept")["pusher"] == "alice"


def test_pusher_env_setting_replaces_the_list(
    people: People, server: Server, clone: Clone
) -> None:
    """With `settings.pusher_env = ["CUSTOM_USER"]`, STEPUP_PUSHER and GL_USERNAME are ignored."""
    seeded(server, clone, people, settings='pusher_env = ["CUSTOM_USER"]\n')
    oid = clone.commit("guarded change", sign=people.alice)
    push = f"HEAD:{GUARDED}"
    unknown = "unknown, so alice's proof cannot be bound to the pusher"
    result = clone.push(push, pusher="alice", env={"GL_USERNAME": "alice"})
    assert not result.ok, result
    assert_lines(result.remote, [REJECTED, *bound_finding(oid, people, unknown, unknown_pusher_fix("CUSTOM_USER"))])
    assert server.ref(GUARDED) is None

    result = clone.push(push, env={"CUSTOM_USER": "alice"})  # the server names the pusher, as the fix says
    assert result.ok, result
    assert result.remote == [accepted(1)]
    assert server.ref(GUARDED) == oid
    assert last_record(server, GUARDED, "accept")["pusher"] == "alice"


# --- audit mode ---------------------------------------------------------------------------------


def test_audit_mode_warns_and_accepts(people: People, server: Server, clone: Clone) -> None:
    """`install --mode audit`: a failing push goes through, with the findings as a warning."""
    seeded(server, clone, people, mode="audit")
    oid = clone.commit("unsigned guarded change")
    result = clone.push(f"HEAD:{GUARDED}", pusher="alice")
    assert result.ok, result
    assert unwrap(result.remote) == [
        WARNING,
        *finding(
            GUARDED,
            "guarded-bound",
            f"commit {oid[:10]}",
            step_up_required("maintainer", "create of refs/heads/guarded", bound=True),
            [NO_CERT, f"tip commit {oid[:10]}: no signature"],
            step_up_fix("maintainer", bound=True),
        ),
    ]
    assert server.ref(GUARDED) == oid
    record = last_record(server, GUARDED, "warn")
    assert (record["mode"], record["pusher"]) == ("audit", "alice")
    assert [(r["name"], r["result"]) for r in record["rules"]] == [("guarded-bound", "fail")]


def test_install_mode_overrides_the_policy_mode(
    people: People, server: Server, clone: Clone
) -> None:
    """`settings.mode = "audit"` warns; `install --mode enforce` (git config) then rejects."""
    seeded(server, clone, people, settings='mode = "audit"\n')
    first = clone.commit("unsigned guarded change")
    result = clone.push(f"HEAD:{GUARDED}")
    assert result.ok and unwrap(result.remote)[0] == WARNING, result
    assert server.ref(GUARDED) == first
    assert last_record(server, GUARDED, "warn")["mode"] == "audit"

    server.install(mode="enforce")
    second = clone.commit("another unsigned guarded change")
    result = clone.push(f"HEAD:{GUARDED}")
    assert not result.ok and result.remote[0] == REJECTED, result
    assert server.ref(GUARDED) == first
    assert last_record(server, GUARDED, "reject")["mode"] == "enforce"
    assert second != first


# --- failing closed -----------------------------------------------------------------------------


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based number of the line holding the `occurrence`-th `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def assert_one_line_rejection(server: Server, result: PushResult, message: str) -> None:
    """The push was refused with exactly `stepup-git: push rejected: <message>`, nothing moved."""
    assert not result.ok, result
    assert result.remote == [f"stepup-git: push rejected: {message}"], result
    assert "Traceback" not in result.stderr
    assert server.ref("refs/heads/topic") is None


@pytest.mark.parametrize("mode", [None, "audit"])
def test_malformed_policy_rejects_every_push(
    people: People, server: Server, clone: Clone, mode: str | None
) -> None:
    """A policy broken after install fails closed with one `PATH:LINE:` line, in audit mode too."""
    seeded(server, clone, people, mode=mode)
    policy = server.policy_path.resolve()
    good = policy_text(people)
    records = len(server.audit_records())

    syntax = good + "\n[settings\nmode = 'audit'\n"
    server.write_policy(syntax, keyring(people))
    result = clone.push("HEAD:refs/heads/topic")
    line = line_of(syntax, "[settings")
    assert_one_line_rejection(
        server, result,
        f"{policy}:{line}: TOML syntax error: Expected ']' at the end of a table declaration",
    )

    tier = good.replace('tier = "release"', 'tier = "admin"', 1)
    server.write_policy(tier, keyring(people))
    result = clone.push("HEAD:refs/heads/topic")
    assert_one_line_rejection(
        server, result,
        f"{policy}:{line_of(tier, 'admin')}: unknown tier 'admin'; "
        "the tiers are contributor, maintainer, release",
    )
    errors = server.audit_records()[records:]
    assert [(r["ref"], r["action"], r["decision"], r["mode"], r["rules"]) for r in errors] == [
        ("refs/heads/topic", "create", "error", "enforce", [])] * 2
    assert errors[0]["error"].startswith(f"{policy}:{line}: TOML syntax error")
    assert errors[1]["error"].startswith(f"{policy}:{line_of(tier, 'admin')}: unknown tier 'admin'")


def test_keyring_folder_missing_a_listed_key_rejects(
    people: People, server: Server, clone: Clone
) -> None:
    """A `[[keys]]` entry whose public key is not in the keyring folder fails every push closed."""
    seeded(server, clone, people)
    text = policy_text(people)
    server.write_policy(text, {"alice.asc": people.alice.export()})
    policy = server.policy_path.resolve()
    keys = policy.parent / "keys"
    carol = line_of(text, "[[keys]]", 2)
    result = clone.push("HEAD:refs/heads/topic")
    assert_one_line_rejection(
        server, result,
        f"{policy}:{carol}: key {people.carol.fingerprint} (carol) is not in the keyring folder "
        f"{keys}; add its public key as {keys}/carol.asc",
    )


def test_garbage_on_the_hooks_input(people: People, server: Server, clone: Clone) -> None:
    """Input that is not `<old> <new> <ref>` lines is refused with one line, never a traceback."""
    seeded(server, clone, people)
    code, lines, out = run_hook(server, b"hello world\n")
    assert (code, out) == (1, "")
    assert lines == [
        "stepup-git: push rejected: input line 1 is not '<old-id> <new-id> <ref>': 'hello world'"
    ]
    code, lines, out = run_hook(server, b"\xff\xfe garbage \xc3\x28\n")
    assert (code, out) == (1, "")
    assert lines == ["stepup-git: push rejected: input line 1 is not '<old-id> <new-id> <ref>': "
                     "'\\udcff\\udcfe garbage \\udcc3('"]
    # Each refused input is recorded as an error, under no ref: none could be read from it.
    assert [(r["ref"], r["old"], r["new"], r["decision"], r["mode"], r["error"])
            for r in server.audit_records()[-2:]] == [
        (None, None, None, "error", "enforce", "input line 1 is not '<old-id> <new-id> <ref>': 'hello world'"),
        (None, None, None, "error", "enforce",
         "input line 1 is not '<old-id> <new-id> <ref>': '\\udcff\\udcfe garbage \\udcc3('"),
    ]


def test_deleting_a_branch_that_does_not_exist_changes_nothing_and_is_audited(
        people: People, server: Server, clone: Clone) -> None:
    """`git push origin :refs/heads/bogus`: Git warns and goes on; nothing changes, so no rule applies."""
    seeded(server, clone, people)
    result = clone.push(":refs/heads/bogus")
    assert result.ok, result
    assert result.remote[:2] == [accepted(0),
                                 "stepup-git: note: refs/heads/bogus: the ref does not exist; deleting it changes "
                                 "nothing"]
    record = server.audit_records()[-1]
    assert (record["ref"], record["old"], record["new"], record["action"], record["decision"], record["rules"]) == (
        "refs/heads/bogus", ZERO, ZERO, "delete", "accept", [])


def test_a_delete_that_claims_an_existing_branch_does_not_exist_is_judged_as_its_delete(
        people: People, server: Server, clone: Clone) -> None:
    """Git deletes a ref whose old id is sent as the zero id without checking what it holds: such a line
    for main is judged as deleting main as it stands, and main-no-rewrite refuses it."""
    base = seeded(server, clone, people)
    code, lines, out = run_hook(server, f"{ZERO} {ZERO} {MAIN}\n".encode(), env={"STEPUP_PUSHER": "alice"})
    assert (code, out) == (1, "")
    assert unwrap(lines)[:2] == [REJECTED, f'{MAIN}: rule "main-no-rewrite" failed for the delete of {MAIN}']
    record = server.audit_records()[-1]
    assert (record["ref"], record["old"], record["new"], record["action"], record["decision"]) == (
        MAIN, base, ZERO, "delete", "reject")
    assert server.ref(MAIN) == base


def test_a_git_dir_that_is_no_repository_rejects_with_one_line(
        people: People, server: Server, clone: Clone, tmp_path: Path) -> None:
    """The hook takes the repository git names, and no other; a directory that is none is refused, not judged."""
    seeded(server, clone, people)
    elsewhere = tmp_path / "not-a-repository"
    elsewhere.mkdir()
    code, lines, out = run_hook(server, f"{ZERO} {'a' * 40} {MAIN}\n".encode(), env={"GIT_DIR": str(elsewhere)})
    assert (code, out) == (1, "")
    assert lines == [f"stepup-git: push rejected: cannot open the repository {elsewhere}: it is not a Git repository"]


def rewind_with_signed_tip(server: Server, clone: Clone, people: People, mode: str | None = None) -> bytes:
    """Hook input that rewinds main to a commit carol signed just now (a check of her signature)."""
    signed = clone.commit("signed by carol", sign=people.carol)
    clone.write("src/app.py", "print('v2')\n")
    tip = clone.commit("unsigned work")
    assert clone.push("main").ok
    protect(server, people, mode=mode)
    return f"{tip} {signed} {MAIN}\n".encode()


def path_without_gpg(folder: Path) -> str:
    """A PATH holding only what the hook launcher needs (git, basename, dirname): no gpg."""
    folder.mkdir()
    for tool in ("git", "basename", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        (folder / tool).symlink_to(found)
    assert shutil.which("gpg", path=str(folder)) is None
    return str(folder)


def no_gpg(tmp_path: Path) -> dict[str, str]:
    """A PATH without gpg, and an empty server cache, so the keyring must really be built with gpg."""
    return {"PATH": path_without_gpg(tmp_path / "bin"), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_missing_gpg_rejects_with_one_line(
    people: People, server: Server, clone: Clone, tmp_path: Path
) -> None:
    """Without gpg on the server's PATH a push that needs a signature check is refused, and says
    why; the same input passes once gpg is found."""
    rewind = rewind_with_signed_tip(server, clone, people)
    code, lines, out = run_hook(server, rewind, env=no_gpg(tmp_path))
    assert (code, out) == (1, "")
    assert lines == ["stepup-git: push rejected: gpg is not installed on the server (install gnupg)"]
    error = last_record(server, MAIN, "error")
    assert (error["error"], error["mode"], error["rules"]) == (
        "gpg is not installed on the server (install gnupg)", "enforce", [])

    code, lines, out = run_hook(server, rewind, env={"PATH": os.environ["PATH"]})
    assert (code, lines, out) == (0, [accepted(1)], "")
    record = last_record(server, MAIN, "accept")
    assert record["action"] == "force-push"
    proof = one_proof(record, "main-no-rewrite")
    assert (proof["kind"], proof["owner"]) == ("tip-signature", "carol")


def test_missing_gpg_in_audit_mode_warns_and_accepts(
    people: People, server: Server, clone: Clone, tmp_path: Path
) -> None:
    """docs/semantics.md: an internal error rejects the push except in audit mode, where it warns and accepts
    (a policy that cannot be loaded is the one error that rejects in every mode, README.md, "The policy")."""
    rewind = rewind_with_signed_tip(server, clone, people, mode="audit")
    code, lines, out = run_hook(server, rewind, env=no_gpg(tmp_path))
    assert (lines, out) == (
        [
            "stepup-git: WARNING (audit mode): gpg is not installed on the server (install gnupg); "
            "the push is accepted"
        ],
        "",
    )
    assert code == 0
    error = last_record(server, MAIN, "error")
    assert (error["error"], error["mode"]) == ("gpg is not installed on the server (install gnupg)", "audit")


def test_update_no_rule_matches_is_accepted_and_audited(
    people: People, server: Server, clone: Clone
) -> None:
    """A branch no rule names is created freely, and the audit log still records it."""
    seeded(server, clone, people)
    oid = clone.commit("topic work")
    result = clone.push("HEAD:refs/heads/topic", pusher="alice")
    assert result.ok, result
    assert result.remote == [accepted(0), no_rule("refs/heads/topic")]
    assert server.ref("refs/heads/topic") == oid
    record = last_record(server, "refs/heads/topic", "accept")
    assert (record["old"], record["new"], record["action"], record["rules"]) == (
        ZERO, oid, "create", []
    )
    assert (record["pusher"], record["mode"]) == ("alice", "enforce")
