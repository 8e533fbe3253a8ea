"""Break-glass: a release-tier signed push with a reason overrides failing rules, loudly and audited."""

from __future__ import annotations

from support.keys import People, key_toml
from support.lines import unwrap
from support.repos import Clone, Server


def _policy(people: People, *, break_glass: str | None = "release") -> str:
    setting = f'break_glass = "{break_glass}"\n' if break_glass else ""
    return f"""
version = 1
[settings]
{setting}
{key_toml(people.alice, "alice", "maintainer")}
{key_toml(people.carol, "carol", "release")}
[[rules]]
name = "main-history-signed"
refs = ["refs/heads/main"]
require = "signed"
tier = "maintainer"

[[rules]]
name = "no-direct-prod"
refs = ["refs/heads/prod"]
require = "deny"
"""


def _setup(people: People, server: Server, clone: Clone, **kw: str | None) -> str:
    server.write_policy(_policy(people, **kw), {"alice.asc": people.alice.export(), "carol.asc": people.carol.export()})
    server.install()
    clone.write("hotfix.txt", "urgent\n")
    return clone.commit("Unsigned hotfix")


def test_release_key_breaks_glass_with_a_reason(people: People, server: Server, clone: Clone) -> None:
    """An unsigned commit fails `signed`; carol's signed push with a reason overrides it and is audited."""
    tip = _setup(people, server, clone)
    result = clone.push("HEAD:main", signed=people.carol, options=["stepup.break-glass=prod is down"])
    assert result.ok, result
    assert server.ref("refs/heads/main") == tip
    assert result.remote[:4] == [
        "stepup-git: BREAK-GLASS on refs/heads/main by carol (release, key",
        f'            {people.carol.fingerprint[-16:]}): "prod is down"; the failing rules below',
        "            are overridden and this push is audited as break-glass",
        "stepup-git: push accepted by break-glass: 1 update(s) fail the policy",
    ]
    assert 'refs/heads/main: rule "main-history-signed" failed for commit ' + tip[:10] in unwrap(result.remote)
    record = server.audit_records()[-1]
    assert record["decision"] == "break-glass"
    assert record["break_glass"]["owner"] == "carol"
    assert record["break_glass"]["reason"] == "prod is down"
    assert record["break_glass"]["fingerprint"] == people.carol.fingerprint


def test_lower_tier_cannot_break_glass(people: People, server: Server, clone: Clone) -> None:
    _setup(people, server, clone)
    result = clone.push("HEAD:main", signed=people.alice, options=["stepup.break-glass=please"])
    assert not result.ok
    assert server.ref("refs/heads/main") is None
    assert any("break-glass not honoured" in line and "tier maintainer is below the break-glass tier release" in line
               for line in unwrap(result.remote)), result
    assert server.audit_records()[-1]["decision"] == "reject"


def test_break_glass_needs_a_reason_and_a_signed_push(people: People, server: Server, clone: Clone) -> None:
    _setup(people, server, clone)
    no_reason = clone.push("HEAD:main", signed=people.carol, options=["stepup.break-glass"])
    assert not no_reason.ok
    # the push option to copy is never broken across lines
    assert any('-o stepup.break-glass="why this cannot wait"' in line for line in no_reason.remote)
    assert any('give a reason: -o stepup.break-glass="why this cannot wait"' in line
               for line in unwrap(no_reason.remote))
    unsigned = clone.push("HEAD:main", options=["stepup.break-glass=prod is down"])
    assert not unsigned.ok, "a push option outside a signed certificate proves nothing"
    assert server.ref("refs/heads/main") is None


def test_break_glass_never_overrides_deny(people: People, server: Server, clone: Clone) -> None:
    _setup(people, server, clone)
    result = clone.push("HEAD:prod", signed=people.carol, options=["stepup.break-glass=just this once"])
    assert not result.ok
    assert server.ref("refs/heads/prod") is None
    assert any('rule "no-direct-prod" denies this update and cannot be overridden' in line
               for line in unwrap(result.remote))


def test_no_break_glass_tier_in_policy(people: People, server: Server, clone: Clone) -> None:
    _setup(people, server, clone, break_glass=None)
    result = clone.push("HEAD:main", signed=people.carol, options=["stepup.break-glass=prod is down"])
    assert not result.ok
    assert server.ref("refs/heads/main") is None
