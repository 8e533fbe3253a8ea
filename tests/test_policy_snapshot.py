"""Path patterns matched from their cached regular expressions agree with pathspec itself, and a policy
snapshot (the validated policy kept per content and path) gives the policy its file gives."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pathspec
import pytest

from stepup_git.errors import PolicyError
from stepup_git.patterns import PathPatterns
from stepup_git.policy import Policy, load

EXAMPLES = Path(__file__).resolve().parent.parent / "policies"

PATTERN_SETS = [
    ["db/migrations/**", "infra/**"],
    ["infra/", "!infra/README.md"],
    ["*.sql", "!db/seed/*.sql"],
    ["/top-only.txt", "docs/**/*.md"],
    ["build", "!build/keep"],
    ["infra/**", "!infra/docs/", "infra/docs/critical.tf"],
    ["**/secrets/**", "a?c/*", "[bc]at/x"],
    ["dir/", "!dir/sub/", "dir/sub/file"],
]
PATHS = [
    "db/migrations/0001.sql", "db/migrations/a/b.sql", "db/migrations", "db/seed/x.sql", "x.sql",
    "infra/main.tf", "infra/README.md", "infra/docs/a.md", "infra/docs/critical.tf", "src/infra/x",
    "top-only.txt", "sub/top-only.txt", "docs/a/b/c.md", "docs/x.md", "build", "build/keep", "build/other",
    "a/secrets/k", "secrets/k", "abc/d", "axc/d", "bat/x", "cat/x", "dir/file", "dir/sub/file",
    "dir/sub/other", "DB/migrations/0001.sql", "caf\u00e9/x", "cafe\u0301/x",
]


@pytest.mark.parametrize("texts", PATTERN_SETS, ids=lambda t: ",".join(t))
def test_compiled_and_cached_patterns_agree_with_pathspec(texts: list[str]) -> None:
    spec = pathspec.GitIgnoreSpec.from_lines(texts)
    fresh = PathPatterns.compile(texts)
    cached = PathPatterns.compile(texts, fresh.to_cache())
    for path in PATHS:
        expected = spec.match_file(path)
        assert fresh.matches(path) == expected, (texts, path)
        assert cached.matches(path) == expected, (texts, path)


def test_every_ordering_of_include_and_exclude_agrees() -> None:
    for texts in itertools.permutations(["infra/", "!infra/docs/", "infra/docs/keep.tf", "!*.md"]):
        spec = pathspec.GitIgnoreSpec.from_lines(texts)
        patterns = PathPatterns.compile(texts, PathPatterns.compile(texts).to_cache())
        for path in ["infra/a.tf", "infra/docs/keep.tf", "infra/docs/x.tf", "infra/x.md", "infra/docs/y.md"]:
            assert patterns.matches(path) == spec.match_file(path), (texts, path)


def test_a_policy_snapshot_loads_without_the_toml_parser_or_pathspec(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 1\n[[rules]]\nname = "m"\npaths = ["db/migrations/**"]\nrequire = "deny"\n')
    cache = tmp_path / "state"
    load(policy, cache_dir=cache)
    assert len(list(cache.glob("policy-*.json"))) == 1
    probe = ("import sys; from pathlib import Path; from stepup_git.policy import load; "
             f"p = load(Path({str(policy)!r}), cache_dir=Path({str(cache)!r})); "
             "assert p.rules[0].paths.matches('db/migrations/1.sql'); "
             "print(sorted({'pathspec', 'tomllib'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _compiled(policy: Policy) -> list[object]:
    """What equality of rules leaves out: the regular expressions compiled from the patterns."""
    return [([p.regex.pattern for p in r.refs], r.paths.to_cache() if r.paths else None) for r in policy.rules]


def test_a_policy_snapshot_gives_the_policy_the_file_gives(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "policies")
    policy = tmp_path / "policies" / "example.toml"
    cache = tmp_path / "state"
    direct = load(policy)
    first = load(policy, cache_dir=cache)
    from_snapshot = load(policy, cache_dir=cache)
    assert direct.keys and direct.rules and any(r.paths for r in direct.rules)
    assert first == direct and from_snapshot == direct
    assert _compiled(from_snapshot) == _compiled(direct)


DB_RULE = 'version = 1\n[[rules]]\nname = "m"\npaths = ["db/**"]\nrequire = "deny"\n'


def _snapshotted(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(a policy with one path rule, the cache folder, the policy's snapshot in it), after one load."""
    policy = tmp_path / "policy.toml"
    policy.write_text(DB_RULE)
    cache = tmp_path / "state"
    assert load(policy, cache_dir=cache).rules[0].paths.matches("db/x")  # type: ignore[union-attr]
    (snapshot,) = cache.glob("policy-*.json")
    return policy, cache, snapshot


def test_a_changed_policy_is_compiled_again(tmp_path: Path) -> None:
    policy, cache, _ = _snapshotted(tmp_path)
    policy.write_text('version = 1\n[[rules]]\nname = "m"\npaths = ["infra/**"]\nrequire = "deny"\n')
    paths = load(policy, cache_dir=cache).rules[0].paths
    assert paths is not None and paths.matches("infra/x") and not paths.matches("db/x")


def test_a_changed_policy_with_an_error_is_rejected_though_a_snapshot_exists(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 1\n[[rules]]\nname = "m"\nrequire = "deny"\n')
    cache = tmp_path / "state"
    load(policy, cache_dir=cache)
    policy.write_text('version = 1\n[[rules]]\nname = "m"\nrequire = "dney"\n')
    with pytest.raises(PolicyError) as caught:
        load(policy, cache_dir=cache)
    assert caught.value.problems == [
        f"{policy}:4: require must be one of signed, step-up, signed-tag, deny, not 'dney'"]


def test_the_same_content_at_another_path_has_its_own_snapshot(tmp_path: Path) -> None:
    text = 'version = 1\n[settings]\nkeyring = "keys"\n'
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cache = tmp_path / "state"
    for name in ("a", "b"):
        (tmp_path / name / "policy.toml").write_text(text)
    assert load(tmp_path / "a" / "policy.toml", cache_dir=cache).settings.keyring == tmp_path / "a" / "keys"
    assert load(tmp_path / "b" / "policy.toml", cache_dir=cache).settings.keyring == tmp_path / "b" / "keys"
    assert load(tmp_path / "a" / "policy.toml", cache_dir=cache).settings.keyring == tmp_path / "a" / "keys"
    assert len(list(cache.glob("policy-*.json"))) == 2


@pytest.mark.parametrize("damage", ["{not json", '{"format": 1}', "[]", "null"])
def test_a_damaged_snapshot_is_ignored(tmp_path: Path, damage: str) -> None:
    policy, cache, snapshot = _snapshotted(tmp_path)
    snapshot.write_text(damage)
    paths = load(policy, cache_dir=cache).rules[0].paths
    assert paths is not None and paths.matches("db/x") and not paths.matches("src/x")


def test_a_snapshot_of_other_content_is_not_used(tmp_path: Path) -> None:
    """A snapshot is only trusted for the exact bytes it was made from (its digest is checked)."""
    policy, cache, snapshot = _snapshotted(tmp_path)
    data = json.loads(snapshot.read_text())
    data["rules"] = []
    data["digest"] = "0" * 64
    snapshot.write_text(json.dumps(data))
    assert [r.name for r in load(policy, cache_dir=cache).rules] == ["m"]


def test_random_pattern_sets_agree_with_pathspec() -> None:
    import random

    pool = ["db/", "!db/seed/", "*.sql", "!*.md", "infra/**", "!infra/docs/**", "docs/", "/root.txt", "**/k8s/",
            "a/**/b", "!a/x/b", "*.tf", "!keep.tf", "build", "dir/sub/", "!dir/sub/f"]
    paths = [*PATHS, "db/seed/a.sql", "db/a.md", "a/b", "a/x/b", "a/y/z/b", "k8s/x.yml", "x/k8s/y",
             "infra/docs/keep.tf", "keep.tf", "root.txt", "z/root.txt"]
    rng = random.Random(20261124)
    for _ in range(300):
        texts = rng.sample(pool, rng.randint(1, 6))
        spec = pathspec.GitIgnoreSpec.from_lines(texts)
        patterns = PathPatterns.compile(texts, PathPatterns.compile(texts).to_cache())
        for path in paths:
            assert patterns.matches(path) == spec.match_file(path), (texts, path)
