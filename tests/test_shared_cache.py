"""Keyring homes are built once per content for all of a server user's repositories; policy snapshots are
kept there once per policy file."""

from __future__ import annotations

from pathlib import Path

from support.keys import People, signed_policy
from support.repos import MakeClone, Server


def _policy(people: People) -> str:
    return signed_policy(people.alice, refs="refs/heads/**", paths="src/**")


def _push(people: People, server: Server, make_clone: MakeClone, cache: Path) -> None:
    clone = make_clone(server)
    clone.write("src/a.txt", "a\n")
    clone.commit("signed", sign=people.alice)
    result = clone.push("HEAD:main", env={"XDG_CACHE_HOME": str(cache)})
    assert result.ok, result


def test_a_new_repository_reuses_the_keyring_built_for_another(people: People, make_clone: MakeClone,
                                                               tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, second = Server(tmp_path / "one"), Server(tmp_path / "two")
    for server in (first, second):
        server.write_policy(_policy(people), {"alice.asc": people.alice.export()})
        server.install()
    _push(people, first, make_clone, cache)
    homes = [p for p in (cache / "stepup-git" / "keyring").iterdir() if p.is_dir()]
    assert len(homes) == 1
    built = (homes[0] / "listing.json").stat().st_mtime_ns
    assert len(list((cache / "stepup-git").glob("policy-*.json"))) == 1
    _push(people, second, make_clone, cache)
    assert len(list((cache / "stepup-git").glob("policy-*.json"))) == 2  # the second server's own policy file
    assert [p for p in (cache / "stepup-git" / "keyring").iterdir() if p.is_dir()] == homes
    assert (homes[0] / "listing.json").stat().st_mtime_ns == built, "not built again"
    for server in (first, second):
        assert not (server.path / "stepup" / "keyring").exists()
        assert (server.path / "stepup" / "audit.jsonl").is_file()


def test_a_cache_folder_others_can_write_is_not_used(people: People, server: Server, make_clone: MakeClone,
                                                     tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "stepup-git").mkdir(parents=True)
    (cache / "stepup-git").chmod(0o777)
    server.write_policy(_policy(people), {"alice.asc": people.alice.export()})
    server.install()
    _push(people, server, make_clone, cache)
    assert not (cache / "stepup-git" / "keyring").exists()
    assert (server.path / "stepup" / "keyring").is_dir()
