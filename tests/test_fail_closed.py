"""Policy errors reject every push in every mode, including those found only when the keyring is read."""

from __future__ import annotations

from support.keys import People, key_toml
from support.repos import Clone, Server


def test_a_listed_key_missing_from_the_keyring_rejects_even_in_audit_mode(people: People, server: Server,
                                                                          clone: Clone) -> None:
    server.write_policy(f"""
version = 1
[settings]
mode = "audit"
{key_toml(people.alice, "alice", "maintainer")}
{key_toml(people.bob, "bob", "contributor")}
[[rules]]
name = "signed"
refs = ["refs/heads/main"]
require = "signed"
tier = "contributor"
""", {"alice.asc": people.alice.export(), "bob.asc": people.bob.export()})
    server.install()
    (server.keys_dir / "bob.asc").unlink()  # the policy still lists bob
    clone.write("a.txt", "a\n")
    clone.commit("signed", sign=people.alice)
    result = clone.push("HEAD:main")
    assert not result.ok
    assert server.ref("refs/heads/main") is None
    assert len(result.remote) == 1
    assert result.remote[0].startswith(f"stepup-git: push rejected: {server.policy_path}:")
    assert f"key {people.bob.fingerprint} (bob) is not in the keyring folder" in result.remote[0]
    (error,) = server.audit_records()  # recorded in the default log, as enforced whatever the mode
    assert (error["ref"], error["decision"], error["mode"], error["error"]) == (
        "refs/heads/main", "error", "enforce", result.remote[0].removeprefix("stepup-git: push rejected: "))
