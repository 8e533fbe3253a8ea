"""The policy loader (README.md, "The policy"): every error as `PATH:LINE: message`, never a half-loaded policy."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from stepup_git import policy
from stepup_git.errors import PolicyError, StepupError
from stepup_git.patterns import PathPatterns, RefPattern
from stepup_git.policy import DEFAULT_PUSHER_ENV, load, load_with_warnings, parse_duration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "policies" / "example.toml"
MINIMAL = ROOT / "policies" / "minimal.toml"

ALICE = "D5DEAA84AC21D1DD5F6779E7307414120810B0A0"
BOB = "DB05F788EB3F728908784636278F3BE797875052"
CAROL = "60404762EFACED566BEEE13ED0D930B53AF9CFCD"
DAVE_SSH = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICeI5QqtWnrw7pVP9gW9wSpcCXzwUn0VOOdcQTReDzVT"

HEAD = 'version = 1\n\n[tiers]\norder = ["contributor", "maintainer", "release"]\n'
"""Lines 1-4 of most policies below: keys and rules then start at line 5 or later."""

KEY_ALICE = f'\n[[keys]]\nfingerprint = "{ALICE}"\nowner = "alice"\ntier = "maintainer"\n'
RULE = '\n[[rules]]\nname = "r"\nrequire = "signed"\ntier = "contributor"\n'


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    """The problems of a policy that must not load (asserting that it does not)."""
    path = write(tmp_path, text)
    loaded, found, _ = load_with_warnings(path)
    assert loaded is None, f"a policy with errors loaded: {text}"
    assert found, "no problem reported"
    with pytest.raises(PolicyError) as caught:
        load(path)
    assert caught.value.problems == found
    return found


def only_problem(tmp_path: Path, text: str) -> str:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


def at(tmp_path: Path, line: int) -> str:
    return f"{tmp_path / 'policy.toml'}:{line}: "


# --- errors, each at its line ------------------------------------------------------------------

def test_toml_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    text = HEAD + '\n[settings]\nmode = "enforce"\nmode = "audit"\n'
    assert only_problem(tmp_path, text) == at(tmp_path, 8) + "TOML syntax error: Cannot overwrite a value"


def test_toml_syntax_error_in_a_table_header(tmp_path: Path) -> None:
    text = HEAD + "\n[[rules]\nname = 'x'\n"
    assert only_problem(tmp_path, text).startswith(at(tmp_path, 6) + "TOML syntax error: ")


def test_toml_syntax_error_at_end_of_document_points_at_the_last_line(tmp_path: Path) -> None:
    text = 'version = 1\n\n[tiers]\norder = ["contributor",\n'
    assert only_problem(tmp_path, text).startswith(at(tmp_path, 4) + "TOML syntax error: ")


def test_policy_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_bytes(b'version = 1\n# caf\xe9\n')
    assert load_with_warnings(path)[1] == [f"{path}:2: the policy is not valid UTF-8"]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, 'version = 1\ncolour = "red"\n' + HEAD.removeprefix("version = 1\n"))
    assert problem.startswith(at(tmp_path, 2) + "unknown key 'colour' in the top level; allowed: ")
    assert "keys, rules, settings, tiers, version" in problem


def test_a_misspelt_table_is_reported_at_its_header(tmp_path: Path) -> None:
    """`[[rule]]` for `[[rules]]`: the unknown name is reported at the header's line, not line 1."""
    problem = only_problem(tmp_path, 'version = 1\n\n[[rule]]\nname = "x"\nrequire = "deny"\n')
    assert problem == (at(tmp_path, 3) + "unknown key 'rule' in the top level; allowed: authorities, keys, rules, "
                       "settings, tiers, version")


def test_unknown_key_in_settings(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, HEAD + '\n[settings]\nmode = "audit"\nfreshness = "5m"\n')
    assert problem.startswith(at(tmp_path, 8) + "unknown key 'freshness' in [settings]")


def test_unknown_key_in_keys(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, HEAD + KEY_ALICE + 'email = "a@example.com"\n')
    assert problem.startswith(at(tmp_path, 10) + "unknown key 'email' in [[keys]] #1")


def test_unknown_key_in_second_rule(tmp_path: Path) -> None:
    text = HEAD + RULE + RULE.replace('"r"', '"s"') + "approvals = 2\n"
    problem = only_problem(tmp_path, text)
    assert problem.startswith(at(tmp_path, 15) + "unknown key 'approvals' in [[rules]] #2")


def test_string_where_a_list_is_expected(tmp_path: Path) -> None:
    text = HEAD + RULE + 'refs = "refs/heads/main"\n'
    assert only_problem(tmp_path, text) == at(tmp_path, 10) + "'refs' must be a list of strings"


def test_tier_order_must_be_a_list(tmp_path: Path) -> None:
    text = 'version = 1\n\n[tiers]\norder = "contributor"\n'
    assert only_problem(tmp_path, text) == at(tmp_path, 4) + "'order' must be a list of strings"


def test_signers_as_a_string(tmp_path: Path) -> None:
    text = HEAD + RULE.replace("signed", "step-up") + 'signers = "2"\n'
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 10) + "'signers' must be an integer, not a string")


def test_bind_pusher_as_a_string(tmp_path: Path) -> None:
    text = HEAD + RULE.replace("signed", "step-up") + 'bind_pusher = "yes"\n'
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 10) + "'bind_pusher' must be true or false, not a string")


def test_signers_as_a_boolean(tmp_path: Path) -> None:
    text = HEAD + RULE.replace("signed", "step-up") + "signers = true\n"
    assert only_problem(tmp_path, text).startswith(at(tmp_path, 10) + "'signers' must be an integer")


def test_unknown_tier_in_a_key(tmp_path: Path) -> None:
    text = HEAD + KEY_ALICE.replace('"maintainer"', '"admin"')
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 9) + "unknown tier 'admin'; the tiers are contributor, maintainer, release")


def test_unknown_tier_in_a_rule(tmp_path: Path) -> None:
    text = HEAD + RULE.replace('"contributor"', '"root"')
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 9) + "unknown tier 'root'; the tiers are contributor, maintainer, release")


@pytest.mark.parametrize("fingerprint", [
    "XYZ",
    ALICE[:-1],  # 39 digits
    ALICE + "0",  # 41 digits
    ALICE[:-1] + "G",
    "3074141208 10B0A0",  # a short key id
])
def test_malformed_fingerprint(tmp_path: Path, fingerprint: str) -> None:
    text = HEAD + KEY_ALICE.replace(ALICE, fingerprint)
    problem = only_problem(tmp_path, text)
    assert problem.startswith(at(tmp_path, 7) + f"'fingerprint': malformed fingerprint {fingerprint!r}")


@pytest.mark.parametrize(("ssh", "message"), [
    ("ssh-ed25519", "malformed SSH public key"),
    ("ssh-dss AAAAB3NzaC1kc3MAAACBAP x", "malformed SSH public key"),
    ("ssh-ed25519 not!base64 bob@laptop", "the key data is not base64"),
    ("ssh-rsa " + DAVE_SSH.split()[1], "the key data is not a ssh-rsa key"),
])
def test_bad_ssh_key(tmp_path: Path, ssh: str, message: str) -> None:
    text = HEAD + f'\n[[keys]]\nssh = "{ssh}"\nowner = "bob"\ntier = "contributor"\n'
    problem = only_problem(tmp_path, text)
    assert problem.startswith(at(tmp_path, 7) + "'ssh': malformed SSH public key")
    assert message in problem


def test_key_with_both_fingerprint_and_ssh(tmp_path: Path) -> None:
    text = HEAD + KEY_ALICE + f'ssh = "{DAVE_SSH} dave@laptop"\n'
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 6) + "each [[keys]] entry needs exactly one of 'fingerprint' (OpenPGP) or 'ssh'")


def test_key_with_neither_fingerprint_nor_ssh(tmp_path: Path) -> None:
    text = HEAD + '\n[[keys]]\nowner = "alice"\ntier = "maintainer"\n'
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 6) + "each [[keys]] entry needs exactly one of 'fingerprint' (OpenPGP) or 'ssh'")


def test_key_listed_twice(tmp_path: Path) -> None:
    spaced = " ".join(ALICE[i:i + 4] for i in range(0, 40, 4)).lower()
    text = HEAD + KEY_ALICE + KEY_ALICE.replace(ALICE, spaced)
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 11) + f"key {ALICE} is listed twice (first at line 6)")


def test_duplicate_rule_name(tmp_path: Path) -> None:
    text = HEAD + RULE + RULE
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 12) + "duplicate rule name 'r' (first at line 6)")


def test_signers_zero(tmp_path: Path) -> None:
    text = HEAD + KEY_ALICE + RULE.replace("signed", "step-up") + "signers = 0\n"
    assert only_problem(tmp_path, text) == at(tmp_path, 15) + "signers must be 1 or more, not 0"


@pytest.mark.parametrize("duration", ["10", "ten", "-5m", "5 m", "1.5h", "m", ""])
def test_bad_duration_in_a_rule(tmp_path: Path, duration: str) -> None:
    text = HEAD + RULE + f'fresh_within = "{duration}"\n'
    assert only_problem(tmp_path, text) == at(tmp_path, 10) + (
        f"'fresh_within': bad duration {duration!r}: use whole numbers with s, m, h or d, e.g. \"15m\"")


@pytest.mark.parametrize("name", ["fresh_within", "clock_skew", "timeout"])
def test_bad_duration_in_settings(tmp_path: Path, name: str) -> None:
    text = HEAD + f'\n[settings]\n{name} = "ten"\n'
    assert only_problem(tmp_path, text).startswith(
        at(tmp_path, 7) + f"'{name}': bad duration 'ten'")


def test_zero_fresh_within(tmp_path: Path) -> None:
    rule = HEAD + RULE + 'fresh_within = "0m"\n'
    assert only_problem(tmp_path, rule) == at(tmp_path, 10) + "fresh_within must be longer than 0s"
    settings = HEAD + '\n[settings]\nfresh_within = "0s"\n'
    assert only_problem(tmp_path, settings) == at(tmp_path, 7) + "fresh_within must be longer than 0s"


def test_duration_as_a_number(tmp_path: Path) -> None:
    text = HEAD + RULE + "fresh_within = 600\n"
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 10) + "'fresh_within' must be a string, not an integer")


@pytest.mark.parametrize("pattern", ["refs/heads/a b", " refs/heads/main", "refs/heads/\tx", ""])
def test_bad_ref_pattern(tmp_path: Path, pattern: str) -> None:
    text = HEAD + RULE + f'refs = ["refs/heads/main", "{pattern}"]\n'
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 10) + f"bad ref pattern {pattern!r}: no spaces or control characters")


def test_bad_path_pattern(tmp_path: Path) -> None:
    text = HEAD + RULE + 'paths = ["db/**", ""]\n'
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 10) + "bad path pattern '': patterns must not be empty")


def test_empty_lists_are_errors_not_defaults(tmp_path: Path) -> None:
    text = HEAD + RULE + "refs = []\non = []\n"
    assert problems(tmp_path, text) == [
        at(tmp_path, 10) + "'refs' must not be empty",
        at(tmp_path, 11) + "'on' must not be empty",
    ]


def test_unknown_require(tmp_path: Path) -> None:
    text = HEAD + RULE.replace('"signed"', '"approved"')
    assert only_problem(tmp_path, text) == at(tmp_path, 8) + (
        "require must be one of signed, step-up, signed-tag, deny, not 'approved'")


def test_unknown_action(tmp_path: Path) -> None:
    text = HEAD + RULE + 'on = ["delete", "push"]\n'
    assert only_problem(tmp_path, text) == at(tmp_path, 10) + (
        "unknown action 'push'; actions are create, update, force-push, delete")


def test_unknown_proof(tmp_path: Path) -> None:
    text = HEAD + RULE.replace("signed", "step-up") + 'proofs = ["tip-signature", "sms"]\n'
    assert only_problem(tmp_path, text) == at(tmp_path, 10) + (
        "unknown proof 'sms'; proofs are push-certificate, tip-signature")


@pytest.mark.parametrize("require", ["signed", "step-up", "signed-tag"])
def test_rule_without_tier(tmp_path: Path, require: str) -> None:
    text = HEAD + f'\n[[rules]]\nname = "r"\nrequire = "{require}"\n'
    assert only_problem(tmp_path, text) == (
        at(tmp_path, 6) + f"rule 'r' needs a 'tier' (require = '{require}')")


def test_rule_without_name_or_require(tmp_path: Path) -> None:
    text = HEAD + '\n[[rules]]\ntier = "contributor"\n'
    assert problems(tmp_path, text) == [
        at(tmp_path, 6) + "[[rules]] #1 needs 'name'",
        at(tmp_path, 6) + "[[rules]] #1 needs 'require'",
    ]


def test_unknown_mode_and_version(tmp_path: Path) -> None:
    text = 'version = 2\n\n[settings]\nmode = "lenient"\n'
    assert problems(tmp_path, text) == [
        at(tmp_path, 1) + "unsupported policy version 2: this stepup-git reads version 1",
        at(tmp_path, 4) + "mode must be \"enforce\" or \"audit\", not 'lenient'",
    ]


def test_deny_rule_needs_no_tier(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + '\n[[rules]]\nname = "no-prod"\nrefs = ["refs/heads/prod"]\n'
                 'require = "deny"\n')
    (rule,) = load(path).rules
    assert (rule.require, rule.tier, rule.line) == ("deny", None, 6)


def test_several_errors_are_all_reported_sorted_by_line(tmp_path: Path) -> None:
    text = (
        "version = 1\n"                          # 1
        'colour = "red"\n'                       # 2
        "\n"                                     # 3
        "[[rules]]\n"                            # 4
        'name = "r"\n'                           # 5
        'require = "signed"\n'                   # 6
        'tier = "boss"\n'                        # 7
        'fresh_within = "ten"\n'                 # 8
        "\n"                                     # 9
        "[[keys]]\n"                             # 10
        'fingerprint = "nope"\n'                 # 11
        'owner = "alice"\n'                      # 12
        'tier = "maintainer"\n'                  # 13
        "\n"                                     # 14
        "[settings]\n"                           # 15
        'clock_skew = "-1m"\n'                   # 16
    )
    found = problems(tmp_path, text)
    assert [int(re.search(r":(\d+): ", p).group(1)) for p in found] == [2, 7, 8, 11, 16]  # type: ignore[union-attr]
    assert found[0].startswith(at(tmp_path, 2) + "unknown key 'colour'")
    assert found[1].startswith(at(tmp_path, 7) + "unknown tier 'boss'")
    assert found[2].startswith(at(tmp_path, 8) + "'fresh_within': bad duration 'ten'")
    assert found[3].startswith(at(tmp_path, 11) + "'fingerprint': malformed fingerprint 'nope'")
    assert found[4].startswith(at(tmp_path, 16) + "'clock_skew': bad duration '-1m'")


def test_path_is_reported_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, HEAD + RULE + 'colour = "red"\n')
    monkeypatch.chdir(tmp_path)
    (problem,) = load_with_warnings("policy.toml")[1]
    assert problem.startswith("policy.toml:10: unknown key 'colour' in [[rules]] #1")


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    loaded, found, _ = load_with_warnings(missing)
    assert loaded is None
    assert found == [f"{missing}: cannot read the policy: No such file or directory"]
    with pytest.raises(StepupError):
        load(missing)


def test_one_bad_rule_never_half_loads(tmp_path: Path) -> None:
    good = HEAD + KEY_ALICE + RULE
    path = write(tmp_path, good)
    assert [r.name for r in load(path).rules] == ["r"]
    path = write(tmp_path, good + RULE.replace('"r"', '"s"').replace("signed", "sign"))
    with pytest.raises(PolicyError) as caught:
        load(path)
    assert caught.value.problems == [at(tmp_path, 18) + (
        "require must be one of signed, step-up, signed-tag, deny, not 'sign'")]
    assert str(caught.value) == caught.value.problems[0]
    assert load_with_warnings(path)[0] is None


def test_inline_rule_tables_report_their_own_line(tmp_path: Path) -> None:
    text = ('version = 1\nrules = [\n  {name = "a", require = "signed", tier = "contributor"},\n'
            '  {name = "b", require = "bogus"},\n]\n')
    assert only_problem(tmp_path, text) == at(tmp_path, 4) + (
        "require must be one of signed, step-up, signed-tag, deny, not 'bogus'")


# --- the happy path: the shipped policies -----------------------------------------------------

def test_example_policy_loads_with_its_values() -> None:
    p, found, warnings = load_with_warnings(EXAMPLE)
    assert p is not None and found == [] and warnings == []
    assert p.path == EXAMPLE
    assert p.tiers == ("contributor", "maintainer", "release")
    s = p.settings
    assert (s.mode, s.fresh_within, s.clock_skew) == ("enforce", timedelta(minutes=15), timedelta(minutes=5))
    assert s.keyring == ROOT / "policies" / "keys"
    assert s.audit_log is None
    assert s.pusher_env == DEFAULT_PUSHER_ENV == (
        "STEPUP_PUSHER", "GL_USERNAME", "GITEA_PUSHER_NAME", "GL_USER", "GITHUB_USER_LOGIN", "REMOTE_USER")

    alice, bob, carol, dave = p.keys
    assert (alice.id, alice.fingerprint, alice.owner, alice.tier, alice.kind) == (
        ALICE, ALICE, "alice", "maintainer", "openpgp")
    assert (bob.fingerprint, bob.owner, bob.tier, bob.expires) == (BOB, "bob", "contributor", date(2027, 6, 30))
    assert alice.expires is None
    assert (carol.fingerprint, carol.tier) == (CAROL, "release")
    assert (dave.kind, dave.ssh, dave.fingerprint, dave.owner, dave.tier) == (
        "ssh", DAVE_SSH, None, "dave", "contributor")
    assert dave.id.startswith("SHA256:") and len(dave.id) == len("SHA256:") + 43
    assert p.key(ALICE) is alice and p.key("0" * 40) is None

    rules = {r.name: r for r in p.rules}
    assert list(rules) == ["main-history-signed", "migrations-step-up", "main-no-rewrite", "release-tags",
                           "branch-delete-step-up", "no-direct-prod", "no-replace-refs"]
    every = frozenset({"create", "update", "force-push", "delete"})
    both = ("push-certificate", "tip-signature")

    signed = rules["main-history-signed"]
    assert [r.text for r in signed.refs] == ["refs/heads/main", "refs/heads/release/*"]
    assert (signed.require, signed.tier, signed.on, signed.paths) == ("signed", "contributor", every, None)
    assert (signed.signers, signed.bind_pusher, signed.proofs) == (1, False, both)
    assert signed.fresh_within == timedelta(minutes=15)

    step = rules["migrations-step-up"]
    assert [r.text for r in step.refs] == ["refs/heads/**"]
    assert step.paths is not None and step.paths.texts == ("db/migrations/**", "infra/**")
    assert (step.require, step.tier, step.on) == ("step-up", "maintainer", every)
    assert (step.fresh_within, step.fresh_explicit) == (timedelta(minutes=10), True)
    assert (step.signers, step.bind_pusher, step.proofs) == (1, True, both)

    rewrite = rules["main-no-rewrite"]
    assert (rewrite.require, rewrite.tier, rewrite.on) == ("step-up", "release",
                                                           frozenset({"force-push", "delete"}))
    assert (rewrite.fresh_within, rewrite.fresh_explicit, rewrite.proofs) == (
        timedelta(minutes=15), False, both)

    tags = rules["release-tags"]
    assert ([r.text for r in tags.refs], tags.require, tags.tier) == (["refs/tags/v*"], "signed-tag", "release")

    deny = rules["no-direct-prod"]
    assert (deny.require, deny.tier, deny.on) == ("deny", None, frozenset({"delete"}))

    deletion = rules["branch-delete-step-up"]
    assert ([r.text for r in deletion.refs], deletion.require, deletion.tier, deletion.on) == (
        ["refs/heads/**"], "step-up", "maintainer", frozenset({"delete"}))
    replace_refs = rules["no-replace-refs"]
    assert ([r.text for r in replace_refs.refs], replace_refs.require, replace_refs.on) == (
        ["refs/replace/**"], "deny", every)

    lines = EXAMPLE.read_text().splitlines()
    headers = [n for n, line in enumerate(lines, start=1) if line.strip() == "[[rules]]"]
    assert [r.line for r in p.rules] == headers
    assert [p.rank(t) for t in p.tiers] == [0, 1, 2]
    assert p.satisfies(carol, "maintainer") and p.satisfies(alice, "maintainer")
    assert not p.satisfies(bob, "maintainer")


def test_minimal_policy_loads_with_its_defaults() -> None:
    p = load(MINIMAL)
    assert p.tiers == ("contributor", "maintainer")
    assert p.settings.mode == "enforce"
    assert p.settings.fresh_within == timedelta(minutes=15)
    assert p.settings.keyring == ROOT / "policies" / "minimal-keys"
    (key,) = p.keys
    assert (key.fingerprint, key.owner, key.tier) == (ALICE, "alice", "maintainer")
    rule, deletion, replace_refs = p.rules
    assert (deletion.name, deletion.on, deletion.require) == ("delete-step-up", frozenset({"delete"}), "step-up")
    assert (replace_refs.name, replace_refs.require) == ("no-replace-refs", "deny")
    assert rule.name == "migrations-step-up"
    assert [r.text for r in rule.refs] == ["**"]
    assert rule.matches_ref("refs/heads/main") and rule.matches_ref("refs/tags/v1/x")
    assert rule.on == frozenset({"create", "update", "force-push", "delete"})
    assert rule.proofs == ("push-certificate", "tip-signature")
    assert (rule.signers, rule.bind_pusher, rule.fresh_within) == (1, False, timedelta(minutes=15))
    assert rule.paths is not None and rule.paths.texts == ("db/migrations/**",)


def test_keyring_is_relative_to_the_policy_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", HEAD + '\n[settings]\nkeyring = "../pubkeys"\naudit_log = "log/a.jsonl"\n')
    monkeypatch.chdir(tmp_path)
    settings = load(path).settings
    assert settings.keyring == tmp_path / "conf" / "../pubkeys"
    assert settings.keyring.resolve() == tmp_path / "pubkeys"
    assert settings.audit_log == tmp_path / "conf" / "log" / "a.jsonl"
    assert load(path).settings.keyring == load(Path("conf/policy.toml")).settings.keyring.absolute()


def test_fingerprints_are_normalised(tmp_path: Path) -> None:
    spaced = "d5de aa84 ac21 d1dd 5f67  79e7 3074 1412 0810 b0a0"
    p = load(write(tmp_path, HEAD + KEY_ALICE.replace(ALICE, spaced)))
    assert p.keys[0].fingerprint == ALICE and p.keys[0].id == ALICE


def test_settings_overrides(tmp_path: Path) -> None:
    text = HEAD + ('\n[settings]\nmode = "audit"\nfresh_within = "1h30m"\nclock_skew = "90s"\n'
                   'pusher_env = ["GL_USER"]\n') + RULE
    p = load(write(tmp_path, text))
    assert (p.settings.mode, p.settings.fresh_within, p.settings.clock_skew) == (
        "audit", timedelta(minutes=90), timedelta(seconds=90))
    assert p.settings.pusher_env == ("GL_USER",)
    assert p.rules[0].fresh_within == timedelta(minutes=90)


def test_default_tiers_when_the_table_is_absent(tmp_path: Path) -> None:
    p = load(write(tmp_path, "version = 1\n" + RULE))
    assert p.tiers == ("contributor", "maintainer", "release")


# --- patterns and durations -------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "ref", "matches"), [
    ("refs/heads/*", "refs/heads/a", True),
    ("refs/heads/*", "refs/heads/a/b", False),
    ("refs/heads/*", "refs/tags/a", False),
    ("refs/heads/**", "refs/heads/a", True),
    ("refs/heads/**", "refs/heads/a/b", True),
    ("refs/heads/**", "refs/tags/a", False),
    ("refs/heads/main", "refs/heads/main", True),
    ("refs/heads/main", "refs/heads/main2", False),
    ("refs/heads/main", "refs/heads/mai", False),
    ("refs/heads/main", "refs/heads/Main", False),
    ("refs/heads/main", "xrefs/heads/main", False),
    ("refs/heads/release/*", "refs/heads/release/1.0", True),
    ("refs/heads/release/*", "refs/heads/release/1.0/hotfix", False),
    ("refs/tags/v*", "refs/tags/v1.2", True),
    ("refs/tags/v*", "refs/tags/x1.2", False),
    ("refs/heads/a.b", "refs/heads/aXb", False),
    ("refs/heads/a+", "refs/heads/a+", True),
    ("**", "refs/heads/a/b/c", True),
])
def test_ref_pattern(pattern: str, ref: str, matches: bool) -> None:
    assert RefPattern.compile(pattern).matches(ref) is matches


@pytest.mark.parametrize(("path", "matches"), [
    ("db/migrations/x.sql", True),
    ("db/migrations/a/b.sql", True),
    ("DB/migrations/x.sql", False),
    ("db/Migrations/x.sql", False),
    ("x/db/migrations/y", False),
    ("db/migrationsx/y.sql", False),
    ("db/x.sql", False),
])
def test_path_pattern(path: str, matches: bool) -> None:
    patterns = PathPatterns.compile(["db/migrations/**"])
    assert (patterns.first_match([path]) == path) is matches


def test_path_patterns_are_byte_exact_unicode() -> None:
    nfc, nfd = "caf\u00e9/x", "cafe\u0301/x"
    patterns = PathPatterns.compile(["caf\u00e9/**"])
    assert patterns.first_match([nfd]) is None
    assert patterns.first_match([nfd, nfc]) == nfc


def test_path_patterns_first_match_in_order() -> None:
    patterns = PathPatterns.compile(["db/migrations/**", "infra/**"])
    assert patterns.first_match(["README", "infra/main.tf", "db/migrations/1.sql"]) == "infra/main.tf"
    assert patterns.first_match(["README", "src/app.py"]) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("90s", timedelta(seconds=90)),
    ("15m", timedelta(minutes=15)),
    ("2d", timedelta(days=2)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("0m", timedelta(0)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["10", "ten", "-5m", "", "1.5h", "5 m", "m5", "5M", "1w"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


# --- warnings ---------------------------------------------------------------------------------

def test_two_person_rule_with_one_eligible_key_warns(tmp_path: Path) -> None:
    text = HEAD + KEY_ALICE + KEY_ALICE.replace(ALICE, BOB).replace("alice", "bob").replace(
        "maintainer", "contributor") + RULE.replace("signed", "step-up").replace(
        "contributor", "maintainer") + "signers = 2\n"
    p, found, warnings = load_with_warnings(write(tmp_path, text))
    assert p is not None and found == []
    assert warnings == [at(tmp_path, 16) + "warning: rule 'r' needs 2 signer(s) of tier maintainer or "
                        "higher, but only 1 person(s) hold such keys (alice) and signers counts people: it can "
                        "never pass"]
    assert p.rules[0].signers == 2


def test_two_person_rule_with_two_eligible_keys_does_not_warn(tmp_path: Path) -> None:
    text = HEAD + KEY_ALICE + KEY_ALICE.replace(ALICE, CAROL).replace("alice", "carol").replace(
        "maintainer", "release") + RULE.replace("signed", "step-up").replace(
        "contributor", "maintainer") + "signers = 2\n"
    p, found, warnings = load_with_warnings(write(tmp_path, text))
    assert p is not None and found == [] and warnings == []


def test_policy_module_exports_the_words() -> None:
    assert policy.ACTIONS == ("create", "update", "force-push", "delete")
    assert policy.REQUIRES == ("signed", "step-up", "signed-tag", "deny")
    assert policy.PROOF_KINDS == ("push-certificate", "tip-signature")
