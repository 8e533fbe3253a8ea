"""`stepup-git keys list|add|remove`: the policy's [[keys]] and keyring folder, comments kept byte for byte."""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from support import run
from support.keys import Gpg, Key, People, key_toml, signed_policy
from support.repos import Clone, Server

from stepup_git import cli
from stepup_git.cli import keys as cli_keys
from stepup_git.cli.parser import CommandParser
from stepup_git.errors import PolicyError, StepupError
from stepup_git.policy import edit, keys, load

POLICIES = Path(__file__).resolve().parent.parent / "policies"
ALICE = "D5DEAA84AC21D1DD5F6779E7307414120810B0A0"
BOB = "DB05F788EB3F728908784636278F3BE797875052"
CAROL = "60404762EFACED566BEEE13ED0D930B53AF9CFCD"
DAVE_TIER = ('tier = "contributor"            # SSH signatures carry no time: with this key only a signed push '
             '(git push --signed) proves a step-up\n')
ALICE_TABLE = ('[[keys]]\nfingerprint = "D5DE AA84 AC21 D1DD 5F67  79E7 3074 1412 0810 B0A0"\n'
               'owner = "alice"\ntier = "maintainer"\n')
BOB_TABLE = ('[[keys]]\nfingerprint = "DB05F788EB3F728908784636278F3BE797875052"\nowner = "bob"\n'
             'tier = "contributor"\n'
             'expires = 2027-06-30            # the policy stops honouring this key after this day (UTC)\n')
CAROL_TABLE = '[[keys]]\nfingerprint = "60404762EFACED566BEEE13ED0D930B53AF9CFCD"\nowner = "carol"\ntier = "release"\n'


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


Stepup = Callable[..., Result]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    """policies/example.toml and its keys/ folder, copied."""
    shutil.copytree(POLICIES / "keys", tmp_path / "keys")
    shutil.copy(POLICIES / "example.toml", tmp_path / "example.toml")
    return tmp_path / "example.toml"


@pytest.fixture
def stepup(capsys: pytest.CaptureFixture[str]) -> Stepup:
    """Runs `stepup-git keys ...` in process: the CLI's parser class, error printing and exit codes."""

    def call(*argv: str | Path) -> Result:
        capsys.readouterr()
        parser = CommandParser(prog="stepup-git")
        cli_keys.register(parser.add_subparsers(metavar="COMMAND", parser_class=CommandParser))
        try:
            args = parser.parse_args([str(a) for a in argv])
            code = int(args.func(args))
        except StepupError as exc:
            for line in getattr(exc, "problems", None) or [str(exc)]:
                print(f"stepup-git: {line}", file=sys.stderr)
            code = 2
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def key_file(tmp_path: Path, name: str, armored: str) -> Path:
    path = tmp_path / f"{name}.asc"
    path.write_text(armored)
    return path


def row(out: str, key_id: str) -> str:
    """The table row of a key, with runs of spaces collapsed."""
    lines = [" ".join(line.split()) for line in out.splitlines() if line.startswith(key_id)]
    assert len(lines) == 1, out
    return lines[0]


def openpgp_expiry(people: People, key: Key) -> date:
    colons = people.gpg.gpg("--with-colons", "--list-keys", key.fingerprint).decode()
    pub = next(line.split(":") for line in colons.splitlines() if line.startswith("pub:"))
    return datetime.fromtimestamp(int(pub[6]), UTC).date()


def ssh_id(pub: Path) -> str:
    """The key's SHA256 fingerprint as ssh-keygen prints it."""
    return run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub]).stdout.split()[1]


def without(text: str, table: str) -> str:
    """The text with one table cut out together with the blank line that separated it."""
    assert text.count(table) == 1
    return text.replace("\n" + table, "", 1) if ("\n\n" + table) in text else text.replace(table + "\n", "", 1)


# --- list ---------------------------------------------------------------------------------------

def test_list_shows_every_key_with_its_file(policy: Path, stepup: Stepup) -> None:
    """The table has one row per [[keys]] entry: id, owner, tier, policy expiry, GnuPG state, file."""
    result = stepup("keys", "list", "--policy", policy)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["KEY", "OWNER", "TIER", "POLICY", "EXPIRES", "OPENPGP", "FILE"]
    assert row(result.out, ALICE) == f"{ALICE} alice maintainer - valid alice.asc"
    assert row(result.out, BOB).startswith(f"{BOB} bob contributor 2027-06-30")
    assert row(result.out, BOB).endswith(" valid bob.asc")
    assert row(result.out, CAROL) == f"{CAROL} carol release - valid carol.asc"
    assert row(result.out, "SHA256:") == (
        "SHA256:iPkq9WEdddocwLocxAuowp5F/OuWjOpqFJiW7/vjoX4 dave contributor - n/a (SSH) -")
    assert lines[-1] == f"4 key(s) in {policy}; keyring folder {policy.parent / 'keys'}"
    assert len(lines) == 6


def test_list_json_parses(policy: Path, stepup: Stepup) -> None:
    """`--json` gives every entry with its kind, policy expiry, GnuPG state and file."""
    result = stepup("keys", "list", "--policy", policy, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["policy"] == str(policy)
    assert data["keyring"] == str(policy.parent / "keys")
    entries = {e["owner"]: e for e in data["keys"]}
    assert [e["id"] for e in data["keys"]] == [ALICE, BOB, CAROL,
                                              "SHA256:iPkq9WEdddocwLocxAuowp5F/OuWjOpqFJiW7/vjoX4"]
    assert entries["alice"] == {
        "id": ALICE, "kind": "openpgp", "ssh": None, "owner": "alice", "tier": "maintainer", "line": 31,
        "policy_expires": None, "policy_expired": False,
        "openpgp": {"expires": None, "revoked": False, "problem": None,
                    "uids": ["Alice Example <alice@example.org>"]},
        "in_keyring": True, "file": "alice.asc",
    }
    assert entries["bob"]["policy_expires"] == "2027-06-30"
    assert entries["dave"]["kind"] == "ssh"
    assert entries["dave"]["openpgp"] is None
    assert entries["dave"]["in_keyring"] is None
    assert entries["dave"]["ssh"].startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICeI5Qqt")


def test_list_marks_policy_expiry_past_and_missing_file(policy: Path, stepup: Stepup) -> None:
    """A key past its policy `expires` says "(past)"; a key whose file is gone says it is missing."""
    (policy.parent / "keys" / "carol.asc").unlink()
    policy.write_text(policy.read_text().replace("expires = 2027-06-30", "expires = 2021-03-04"))
    result = stepup("keys", "list", "--policy", policy)
    assert result.code == 0, result.err
    assert row(result.out, BOB) == f"{BOB} bob contributor 2021-03-04 (past) valid bob.asc"
    assert row(result.out, CAROL) == f"{CAROL} carol release - NOT IN KEYRING MISSING"
    _, listed = keys.list_keys(policy, now=datetime(2021, 3, 4, 23, 59, tzinfo=UTC))
    assert [item.policy_expired for item in listed] == [False, False, False, False]
    _, listed = keys.list_keys(policy, now=datetime(2021, 3, 5, tzinfo=UTC))
    assert [item.policy_expired for item in listed] == [False, True, False, False]


def test_list_shows_expired_key(policy: Path, people: People, stepup: Stepup, tmp_path: Path) -> None:
    """A key that expired in OpenPGP terms can be added (with a warning) and lists as EXPIRED."""
    fpr = people.expired.fingerprint
    day = openpgp_expiry(people, people.expired)
    added = stepup("keys", "add", "--policy", policy, "--key", key_file(tmp_path, "old", people.expired.export()),
                   "--owner", "olga", "--tier", "contributor")
    assert added.code == 0, added.err
    assert added.err_lines == [f"stepup-git: warning: key {fpr} expired on {day}: its signatures will not count"]
    result = stepup("keys", "list", "--policy", policy)
    assert row(result.out, fpr) == f"{fpr} olga contributor - EXPIRED {day} olga-{fpr[-16:]}.asc"
    entry = json.loads(stepup("keys", "list", "--policy", policy, "--json").out)["keys"][-1]
    assert entry["openpgp"]["problem"] == f"the key expired on {day}"
    assert entry["openpgp"]["revoked"] is False


def test_list_shows_revoked_key(policy: Path, gpg: Gpg, stepup: Stepup, tmp_path: Path) -> None:
    """A revoked key can be added (with a warning), lists as REVOKED, and `policy check` still passes."""
    rita = gpg.gen_key("Rita", "rita@example.com")
    added = stepup("keys", "add", "--policy", policy, "--key", key_file(tmp_path, "rita", rita.export(revoked=True)),
                   "--owner", "rita", "--tier", "maintainer")
    assert added.code == 0, added.err
    assert added.err_lines == [f"stepup-git: warning: key {rita.fingerprint} is revoked: its signatures will not count"]
    result = stepup("keys", "list", "--policy", policy)
    assert row(result.out, rita.fingerprint) == (
        f"{rita.fingerprint} rita maintainer - REVOKED rita-{rita.fingerprint[-16:]}.asc")
    entry = json.loads(stepup("keys", "list", "--policy", policy, "--json").out)["keys"][-1]
    assert entry["openpgp"]["revoked"] is True
    assert entry["openpgp"]["problem"] == "the key is revoked"
    assert cli.main(["policy", "check", str(policy)]) == 0


# --- add and remove -----------------------------------------------------------------------------

def test_add_list_check_remove_round_trip(policy: Path, people: People, stepup: Stepup, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Add puts one table after the last key and the key file in keys/; remove restores the exact text."""
    original = policy.read_text()
    fpr = people.carol.fingerprint
    copied = policy.parent / "keys" / f"carol-{fpr[-16:]}.asc"
    armored = people.carol.export()

    added = stepup("keys", "add", "--policy", policy, "--key", key_file(tmp_path, "carol", armored),
                   "--owner", "carol", "--tier", "release")
    assert (added.code, added.err) == (0, "")
    assert added.out == f"added OpenPGP key {fpr} for carol (tier release) to {policy}; key file {copied} (new)\n"
    table = f'[[keys]]\nfingerprint = "{fpr}" # Carol <carol@example.com>\nowner = "carol"\ntier = "release"\n'
    assert policy.read_text() == original.replace(DAVE_TIER, DAVE_TIER + "\n" + table, 1)
    assert copied.read_text() == armored

    listed = stepup("keys", "list", "--policy", policy)
    assert row(listed.out, fpr) == f"{fpr} carol release - valid {copied.name}"
    assert cli.main(["policy", "check", str(policy)]) == 0
    assert capsys.readouterr().out == f"{policy}: ok\n"

    grouped = " ".join(fpr[i:i + 4] for i in range(0, 40, 4)).lower()
    removed = stepup("keys", "remove", "--policy", policy, grouped)
    assert (removed.code, removed.err) == (0, "")
    assert removed.out.splitlines() == [f"removed OpenPGP key {fpr} (carol, tier release) from {policy}",
                                        f"deleted key file {copied}"]
    assert policy.read_text() == original
    assert not copied.exists()
    assert fpr not in stepup("keys", "list", "--policy", policy).out
    assert sorted(p.name for p in (policy.parent / "keys").iterdir()) == ["alice.asc", "bob.asc", "carol.asc"]


def test_add_with_expiry_keeps_comments_elsewhere(policy: Path, people: People, stepup: Stepup,
                                                  tmp_path: Path) -> None:
    """A comment before a [[keys]] entry and an inline comment on a rule survive add and remove."""
    text = policy.read_text()
    text = text.replace(BOB_TABLE, "# Bob is a contractor until mid-2027.\n" + BOB_TABLE)
    text = text.replace('require = "signed-tag"\n', 'require = "signed-tag"   # see RELEASING.md\n')
    policy.write_text(text)
    fpr = people.bob.fingerprint

    added = stepup("keys", "add", "--policy", policy, "--key", key_file(tmp_path, "bob", people.bob.export()),
                   "--owner", "bob", "--tier", "maintainer", "--expires", "2031-01-31")
    assert added.code == 0, added.err
    assert "(tier maintainer, policy expiry 2031-01-31)" in added.out
    new_table = (f'[[keys]]\nfingerprint = "{fpr}" # Bob <bob@example.com>\nowner = "bob"\n'
                 'tier = "maintainer"\nexpires = 2031-01-31\n')
    assert without(policy.read_text(), new_table) == text

    removed = stepup("keys", "remove", "--policy", policy, fpr)
    assert removed.code == 0, removed.err
    assert policy.read_text() == text

    removed = stepup("keys", "remove", "--policy", policy, BOB)
    assert removed.code == 0, removed.err
    after = policy.read_text()
    assert after == without(text, BOB_TABLE)
    assert "# Bob is a contractor until mid-2027.\n" in after
    assert 'require = "signed-tag"   # see RELEASING.md\n' in after
    assert removed.out.splitlines() == [f"removed OpenPGP key {BOB} (bob, tier contributor) from {policy}",
                                        f"deleted key file {policy.parent / 'keys' / 'bob.asc'}"]


def test_add_duplicate_key_refused(policy: Path, people: People, stepup: Stepup, tmp_path: Path) -> None:
    """A key already listed, by the same or another owner, is refused in one line; nothing changes."""
    source = key_file(tmp_path, "carol", people.carol.export())
    assert stepup("keys", "add", "--policy", policy, "--key", source, "--owner", "carol", "--tier", "release").code == 0
    before = policy.read_bytes()
    files = sorted((policy.parent / "keys").iterdir())
    line = next(i for i, t in enumerate(before.decode().splitlines(), 1) if people.carol.fingerprint in t) - 1

    again = stepup("keys", "add", "--policy", policy, "--key", source, "--owner", "mallory", "--tier", "contributor")
    assert (again.code, again.out) == (2, "")
    assert again.err_lines == [f"stepup-git: key {people.carol.fingerprint} is already listed in {policy} "
                               f"(line {line}, owner carol, tier release)"]
    example_alice = stepup("keys", "add", "--policy", policy, "--key", POLICIES / "keys" / "alice.asc",
                           "--owner", "alice2", "--tier", "release")
    assert example_alice.code == 2
    assert example_alice.err_lines == [f"stepup-git: key {ALICE} is already listed in {policy} "
                                       "(line 31, owner alice, tier maintainer)"]
    assert policy.read_bytes() == before
    assert sorted((policy.parent / "keys").iterdir()) == files


def test_add_unknown_tier_refused(policy: Path, people: People, stepup: Stepup, tmp_path: Path) -> None:
    """A tier the policy does not define is refused; the policy and the keyring folder are unchanged."""
    before = policy.read_bytes()
    result = stepup("keys", "add", "--policy", policy, "--key", key_file(tmp_path, "carol", people.carol.export()),
                    "--owner", "carol", "--tier", "admin")
    assert (result.code, result.out) == (2, "")
    assert result.err_lines == [f"stepup-git: unknown tier 'admin'; the tiers of {policy} are "
                                "contributor, maintainer, release"]
    assert policy.read_bytes() == before
    assert sorted(p.name for p in (policy.parent / "keys").iterdir()) == ["alice.asc", "bob.asc", "carol.asc"]


@pytest.mark.parametrize("content", ["secret", "two", "none"])
def test_add_refuses_files_without_exactly_one_public_key(policy: Path, people: People, stepup: Stepup, tmp_path: Path,
                                                          content: str) -> None:
    """A secret key is never copied into the keyring folder; nor a file of several keys, or of none."""
    bob = people.bob.fingerprint
    text, message = {
        "secret": (people.gpg.gpg("--armor", "--export-secret-keys", bob).decode(),
                   "holds a secret key; give the public key only (gpg --armor --export FPR)"),
        "two": (people.alice.export() + people.bob.export(),
                "holds 2 primary keys; give a file with exactly one public key"),
        "none": ("not a key\n", "holds no OpenPGP public key; give a file with exactly one public key"),
    }[content]
    source = key_file(tmp_path, content, text)
    before = policy.read_bytes()
    result = stepup("keys", "add", "--policy", policy, "--key", source, "--owner", "bob", "--tier", "contributor")
    assert result.code == 2
    assert result.err_lines == [f"stepup-git: {source} {message}"]
    assert policy.read_bytes() == before
    assert sorted(p.name for p in (policy.parent / "keys").iterdir()) == ["alice.asc", "bob.asc", "carol.asc"]


def test_add_refuses_key_gnupg_would_not_import(policy: Path, people: People, stepup: Stepup,
                                                 tmp_path: Path) -> None:
    """A key without a user ID (GnuPG shows it but will not import it) is refused; nothing changes."""
    fpr = people.alice.fingerprint
    armored = people.gpg.gpg("--armor", "--export", "--export-filter", "keep-uid=uid = nobody", fpr).decode()
    source = key_file(tmp_path, "nouid", armored)
    before = policy.read_bytes()
    result = stepup("keys", "add", "--policy", policy, "--key", source, "--owner", "alice", "--tier", "maintainer")
    assert result.code == 2
    assert result.err_lines == [f"stepup-git: {source}: GnuPG would not import key {fpr} "
                                "(it has no user ID with a valid self-signature)"]
    assert policy.read_bytes() == before
    assert sorted(p.name for p in (policy.parent / "keys").iterdir()) == ["alice.asc", "bob.asc", "carol.asc"]


def test_edit_that_fails_policy_check_is_not_written(policy: Path, people: People) -> None:
    """The last gate: new text that `policy check` rejects never replaces the policy file."""
    before = policy.read_bytes()
    fpr = people.mallory.fingerprint
    new_text = before.decode() + "\n" + key_toml(people.mallory, "mallory", "release")
    with pytest.raises(PolicyError) as caught:
        edit.replace_checked(policy, policy, before, new_text)
    assert caught.value.problems[0] == f"{policy}: nothing was changed: the edit would make the policy invalid"
    header = before.decode().count("\n") + 2
    assert caught.value.problems[1].startswith(f"{policy}:{header}: key {fpr} (mallory) is not in the keyring folder")
    assert len(caught.value.problems) == 2
    assert policy.read_bytes() == before
    assert not list(policy.parent.glob(".*.tmp"))


def test_edit_refused_when_policy_changed_meanwhile(policy: Path) -> None:
    """A policy edited by someone else since it was read is not overwritten."""
    before = policy.read_bytes()
    policy.write_text(before.decode() + "# someone else\n")
    with pytest.raises(StepupError, match="changed while it was being edited"):
        edit.replace_checked(policy, policy, before, before.decode() + "# me\n")
    assert policy.read_text() == before.decode() + "# someone else\n"


def test_add_creates_keyring_folder_and_first_keys_table(tmp_path: Path, people: People, stepup: Stepup) -> None:
    """With no keys yet, the table goes before the first rule's comment, and keys/ is created."""
    policy = tmp_path / "p.toml"
    text = ('version = 1\n\n[tiers]\norder = ["contributor", "maintainer"]\n\n'
            '# Migrations need a maintainer.\n[[rules]]\nname = "m"\npaths = ["db/**"]\n'
            'require = "step-up"\ntier = "maintainer"\n')
    policy.write_text(text)
    source = key_file(tmp_path, "alice", people.alice.export())
    result = stepup("keys", "add", "--policy", policy, "--key", source, "--owner", "alice", "--tier", "maintainer")
    assert result.code == 0, result.err
    fpr = people.alice.fingerprint
    table = f'[[keys]]\nfingerprint = "{fpr}" # Alice <alice@example.com>\nowner = "alice"\ntier = "maintainer"\n'
    assert policy.read_text() == text.replace("# Migrations", table + "\n# Migrations")
    assert (tmp_path / "keys" / f"alice-{fpr[-16:]}.asc").read_text() == people.alice.export()
    assert cli.main(["policy", "check", str(policy)]) == 0
    removed = stepup("keys", "remove", "--policy", policy, "--owner", "alice")
    assert removed.code == 0, removed.err
    assert policy.read_text() == text
    assert removed.err_lines == ["stepup-git: warning: rule 'm' needs 1 signer(s) of tier maintainer or higher, "
                                 "but now 0 person(s) hold such keys: it can never pass"]


def test_add_bad_arguments_are_usage_errors(policy: Path, people: People, stepup: Stepup, tmp_path: Path) -> None:
    """A malformed date, two key sources, or an empty owner: exit 2 with one line; nothing changes."""
    source = key_file(tmp_path, "alice", people.alice.export())
    before = policy.read_bytes()
    bad_date = stepup("keys", "add", "--policy", policy, "--key", source, "--owner", "a", "--tier", "release",
                      "--expires", "30/06/2027")
    assert bad_date.code == 2
    assert bad_date.err_lines == ["stepup-git: keys add: argument --expires: "
                                  "must be a date YYYY-MM-DD, not '30/06/2027'"]
    both = stepup("keys", "add", "--policy", policy, "--key", source, "--ssh", people.alice_ssh.public_line,
                  "--owner", "a", "--tier", "release")
    assert both.code == 2
    assert both.err_lines == ["stepup-git: keys add: argument --ssh: not allowed with argument --key"]
    blank = stepup("keys", "add", "--policy", policy, "--key", source, "--owner", " ", "--tier", "release")
    assert (blank.code, blank.err_lines) == (2, ["stepup-git: --owner must not be empty"])
    assert policy.read_bytes() == before


# --- SSH keys -----------------------------------------------------------------------------------

def test_ssh_add_list_remove_round_trip(policy: Path, people: People, stepup: Stepup) -> None:
    """An SSH key is listed with its comment and kept as keys/<owner>-ssh-*.pub; remove undoes both."""
    original = policy.read_text()
    line = people.alice_ssh.public_line
    key_id = ssh_id(people.alice_ssh.public_path)
    added = stepup("keys", "add", "--policy", policy, "--ssh", line, "--owner", "alice", "--tier", "contributor")
    assert (added.code, added.err) == (0, "")
    pub = policy.parent / "keys" / f"alice-ssh-{key_id[7:15].replace('/', '_').replace('+', '-')}.pub"
    assert added.out == f"added SSH key {key_id} for alice (tier contributor) to {policy}; key file {pub} (new)\n"
    table = f'[[keys]]\nssh = "{line}"\nowner = "alice"\ntier = "contributor"\n'
    assert policy.read_text() == original.replace(DAVE_TIER, DAVE_TIER + "\n" + table, 1)
    assert line.endswith(" alice@laptop")
    assert pub.read_text() == line + "\n"
    assert row(stepup("keys", "list", "--policy", policy).out, key_id) == (
        f"{key_id} alice contributor - n/a (SSH) {pub.name}")
    assert cli.main(["policy", "check", str(policy)]) == 0

    removed = stepup("keys", "remove", "--policy", policy, key_id)
    assert (removed.code, removed.err) == (0, "")
    assert removed.out.splitlines() == [f"removed SSH key {key_id} (alice, tier contributor) from {policy}",
                                        f"deleted key file {pub}"]
    assert policy.read_text() == original
    assert not pub.exists()


def test_ssh_file_add_and_remove_by_public_line(policy: Path, people: People, stepup: Stepup) -> None:
    """`--ssh-file` reads a .pub file; `remove` also accepts the public key line itself."""
    original = policy.read_text()
    bob = people.bob_ssh
    added = stepup("keys", "add", "--policy", policy, "--ssh-file", bob.public_path, "--owner", "bob",
                   "--tier", "maintainer", "--expires", "2030-05-06")
    assert added.code == 0, added.err
    table = f'ssh = "{bob.public_line}"\nowner = "bob"\ntier = "maintainer"\nexpires = 2030-05-06\n'
    assert table in policy.read_text()
    removed = stepup("keys", "remove", "--policy", policy, bob.public_line)
    assert removed.code == 0, removed.err
    assert policy.read_text() == original


def test_ssh_private_key_file_refused(policy: Path, people: People, stepup: Stepup) -> None:
    """A private SSH key file given by mistake is refused and copied nowhere."""
    before = policy.read_bytes()
    result = stepup("keys", "add", "--policy", policy, "--ssh-file", people.alice_ssh.private_path,
                    "--owner", "alice", "--tier", "contributor")
    assert result.code == 2
    assert result.err_lines == [f"stepup-git: {people.alice_ssh.private_path} is a private SSH key; "
                                "give the .pub file"]
    assert policy.read_bytes() == before
    assert sorted(p.name for p in (policy.parent / "keys").iterdir()) == ["alice.asc", "bob.asc", "carol.asc"]


def test_ssh_malformed_key_refused(policy: Path, stepup: Stepup) -> None:
    """A line that is not an SSH public key is refused in one line."""
    result = stepup("keys", "add", "--policy", policy, "--ssh", "ssh-ed25519 AAAAnotbase64!", "--owner", "x",
                    "--tier", "contributor")
    assert result.code == 2
    assert result.err_lines == ["stepup-git: malformed SSH public key: the key data is not base64"]


# --- remove -------------------------------------------------------------------------------------

def test_remove_owner_with_several_keys_needs_all(policy: Path, people: People, stepup: Stepup, tmp_path: Path) -> None:
    """`--owner` matching two keys is refused unless `--all`, which removes both and both files."""
    original = policy.read_text()
    fpr = people.alice.fingerprint
    added = stepup("keys", "add", "--policy", policy, "--key", key_file(tmp_path, "alice", people.alice.export()),
                   "--owner", "alice", "--tier", "release")
    assert added.code == 0, added.err
    with_two = policy.read_bytes()
    refused = stepup("keys", "remove", "--policy", policy, "--owner", "alice")
    assert refused.code == 2
    assert refused.err_lines == [f"stepup-git: owner 'alice' has 2 keys ({ALICE}, {fpr}); "
                                 "give one key, or --all to remove them all"]
    assert policy.read_bytes() == with_two

    removed = stepup("keys", "remove", "--policy", policy, "--owner", "alice", "--all")
    assert removed.code == 0, removed.err
    keys_dir = policy.parent / "keys"
    assert removed.out.splitlines() == [
        f"removed OpenPGP key {ALICE} (alice, tier maintainer) from {policy}",
        f"removed OpenPGP key {fpr} (alice, tier release) from {policy}",
        f"deleted key file {keys_dir / f'alice-{fpr[-16:]}.asc'}",
        f"deleted key file {keys_dir / 'alice.asc'}",
    ]
    assert policy.read_text() == without(original, ALICE_TABLE)
    assert "# or an SSH signing key. `owner` is the pusher name the key belongs to (see bind_pusher).\n[[keys]]\n" \
        'fingerprint = "DB05' in policy.read_text()
    assert sorted(p.name for p in keys_dir.iterdir()) == ["bob.asc", "carol.asc"]
    assert cli.main(["policy", "check", str(policy)]) == 0


def test_remove_warns_when_a_rule_can_no_longer_pass(policy: Path, stepup: Stepup) -> None:
    """Removing the only release key warns for each rule that needs one; the comment above it stays."""
    original = policy.read_text()
    result = stepup("keys", "remove", "--policy", policy, "--owner", "carol")
    assert result.code == 0
    assert result.err_lines == [
        "stepup-git: warning: rule 'main-no-rewrite' needs 1 signer(s) of tier release or higher, "
        "but now 0 person(s) hold such keys: it can never pass",
        "stepup-git: warning: rule 'release-tags' needs 1 signer(s) of tier release or higher, "
        "but now 0 person(s) hold such keys: it can never pass",
    ]
    assert policy.read_text() == without(original, CAROL_TABLE)


def test_remove_keep_file(policy: Path, stepup: Stepup) -> None:
    """`--keep-file` leaves the key file in the keyring folder."""
    result = stepup("keys", "remove", "--policy", policy, BOB, "--keep-file")
    assert result.code == 0, result.err
    assert result.out.splitlines()[1] == f"kept key file {policy.parent / 'keys' / 'bob.asc'} (--keep-file)"
    assert (policy.parent / "keys" / "bob.asc").read_text() == (POLICIES / "keys" / "bob.asc").read_text()
    assert BOB not in policy.read_text()


def test_remove_keeps_a_file_another_listed_key_uses(policy: Path, people: People, stepup: Stepup) -> None:
    """A key file that also holds a key still listed stays in the keyring folder."""
    team = policy.parent / "keys" / "team.asc"
    team.write_text(people.alice.export() + people.bob.export())
    policy.write_text(policy.read_text() + "\n" + key_toml(people.alice, "alice", "maintainer")
                      + "\n" + key_toml(people.bob, "bob", "contributor"))
    assert cli.main(["policy", "check", str(policy)]) == 0
    result = stepup("keys", "remove", "--policy", policy, people.alice.fingerprint)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"removed OpenPGP key {people.alice.fingerprint} (alice, tier maintainer) from {policy}",
        f"kept key file {team}: it also holds {people.bob.fingerprint}",
    ]
    assert team.exists()
    assert cli.main(["policy", "check", str(policy)]) == 0


def test_remove_unknown_key_is_an_error(policy: Path, people: People, stepup: Stepup) -> None:
    """An unlisted fingerprint, SSH id or owner: exit 2 with one line; the file is unchanged."""
    before = policy.read_bytes()
    fpr = people.mallory.fingerprint
    by_fpr = stepup("keys", "remove", "--policy", policy, fpr)
    assert (by_fpr.code, by_fpr.err_lines) == (2, [
        f"stepup-git: no key {fpr} is listed in {policy} (see: stepup-git keys list --policy {policy})"])
    by_owner = stepup("keys", "remove", "--policy", policy, "--owner", "mallory")
    assert (by_owner.code, by_owner.err_lines) == (2, [f"stepup-git: no key of owner 'mallory' is listed in {policy}"])
    by_ssh = stepup("keys", "remove", "--policy", policy, people.mallory_ssh.public_line)
    assert by_ssh.code == 2
    garbage = stepup("keys", "remove", "--policy", policy, "1234")
    assert garbage.code == 2
    assert garbage.err_lines[0].startswith("stepup-git: malformed fingerprint '1234'")
    neither = stepup("keys", "remove", "--policy", policy)
    assert (neither.code, neither.err_lines) == (2, ["stepup-git: give a FINGERPRINT or SSH-ID, or --owner NAME"])
    assert policy.read_bytes() == before


def test_invalid_policy_is_not_edited(policy: Path, people: People, stepup: Stepup, tmp_path: Path) -> None:
    """A policy that does not load is reported as `PATH:LINE: message` and left alone."""
    policy.write_text(policy.read_text().replace('mode = "enforce"', 'mode = "enforcing"'))
    before = policy.read_bytes()
    result = stepup("keys", "add", "--policy", policy, "--key", key_file(tmp_path, "c", people.carol.export()),
                    "--owner", "carol", "--tier", "release")
    assert result.code == 2
    assert result.err_lines == [f'stepup-git: {policy}:12: mode must be "enforce" or "audit", not \'enforcing\'']
    assert policy.read_bytes() == before


# --- the library functions ----------------------------------------------------------------------

def test_functions_called_directly(policy: Path, people: People, tmp_path: Path) -> None:
    """add_key, list_keys and remove_keys return what the commands print and raise StepupError."""
    source = key_file(tmp_path, "carol", people.carol.export())
    done, warnings = keys.add_key(policy, owner="carol", tier="release", key_file=source)
    assert done.startswith(f"added OpenPGP key {people.carol.fingerprint} for carol (tier release)")
    assert warnings == []
    loaded, listed = keys.list_keys(policy)
    assert [item.key.owner for item in listed] == ["alice", "bob", "carol", "dave", "carol"]
    assert listed[-1].status == "valid"
    assert listed[-1].file == f"carol-{people.carol.fingerprint[-16:]}.asc"
    assert loaded.key(people.carol.fingerprint) is not None
    with pytest.raises(StepupError, match="already listed"):
        keys.add_key(policy, owner="carol", tier="release", key_file=source)
    done_lines, warnings = keys.remove_keys(policy, key=people.carol.fingerprint)
    assert len(done_lines) == 2
    assert warnings == []
    with pytest.raises(StepupError, match="no key"):
        keys.remove_keys(policy, key=people.carol.fingerprint)


def test_symlinked_policy_stays_a_symlink(policy: Path, people: People, tmp_path: Path) -> None:
    """Editing through a symlink rewrites the file it points to, not the link."""
    link = tmp_path / "link.toml"
    link.symlink_to(policy)
    policy.chmod(0o640)
    keys.add_key(link, owner="carol", tier="release", key_file=key_file(tmp_path, "c", people.carol.export()))
    assert link.is_symlink()
    assert people.carol.fingerprint in policy.read_text()
    assert policy.stat().st_mode & 0o777 == 0o640


def test_policy_error_lists_every_problem(policy: Path) -> None:
    """A PolicyError from loading carries each `PATH:LINE: message`."""
    policy.write_text(policy.read_text().replace('tier = "maintainer"\n', 'tier = "boss"\n', 1))
    with pytest.raises(PolicyError) as caught:
        keys.list_keys(policy)
    assert caught.value.problems == [
        f"{policy}:34: unknown tier 'boss'; the tiers are contributor, maintainer, release"]


# --- remove: policies sharing one keyring folder ------------------------------------------------

def test_remove_keeps_the_key_file_a_neighbour_policy_lists(people: People, server: Server, clone: Clone,
                                                            stepup: Stepup) -> None:
    """Two policies beside each other share keys/: removing alice from one keeps keys/alice.asc, which
    the other still lists, and the repository guarded by the other still accepts alice's signed push.
    Once no policy lists her key, the file goes."""
    server.write_policy(signed_policy(people.alice) + "\n" + key_toml(people.bob, "bob", "contributor"),
                        {"alice.asc": people.alice.export(), "bob.asc": people.bob.export()})
    other = server.root / "other.toml"
    other.write_text(signed_policy(people.alice))
    run([sys.executable, "-m", "stepup_git", "install", server.path, "--policy", other])
    alice_file = server.keys_dir / "alice.asc"

    result = stepup("keys", "remove", "--policy", server.policy_path, people.alice.fingerprint)
    assert (result.code, result.err_lines) == (0, [
        "stepup-git: warning: rule 'signed' needs 1 signer(s) of tier maintainer or higher, but now 0 person(s) "
        "hold such keys: it can never pass"])
    assert result.out.splitlines() == [
        f"removed OpenPGP key {people.alice.fingerprint} (alice, tier maintainer) from {server.policy_path}",
        f"kept key file {alice_file}: {other} still lists key {people.alice.fingerprint}",
    ]
    assert alice_file.read_text() == people.alice.export()
    assert people.alice.fingerprint not in server.policy_path.read_text()
    clone.write("a.txt", "a\n")
    clone.commit("signed by alice", sign=people.alice)
    pushed = clone.push("HEAD:main")
    assert pushed.ok, pushed
    assert pushed.remote == ["stepup-git: push accepted (1 update(s), 1 rule check(s) passed)"]

    result = stepup("keys", "remove", "--policy", server.policy_path, people.bob.fingerprint)
    assert result.out.splitlines()[1:] == [f"deleted key file {server.keys_dir / 'bob.asc'}"]
    result = stepup("keys", "remove", "--policy", other, people.alice.fingerprint)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"removed OpenPGP key {people.alice.fingerprint} (alice, tier maintainer) from {other}",
        f"deleted key file {alice_file}",
    ]
    assert not alice_file.exists()


def test_remove_ignores_a_policy_with_another_keyring_folder(policy: Path, stepup: Stepup) -> None:
    """A policy beside it that lists the key but keeps its keys in another folder does not hold the file."""
    (policy.parent / "elsewhere.toml").write_text(
        f'version = 1\n[settings]\nkeyring = "other-keys"\n[[keys]]\nfingerprint = "{BOB}"\n'
        'owner = "bob"\ntier = "contributor"\n')
    result = stepup("keys", "remove", "--policy", policy, BOB)
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines()[1:] == [f"deleted key file {policy.parent / 'keys' / 'bob.asc'}"]


def test_remove_keeps_the_file_when_a_policy_beside_it_cannot_be_read(policy: Path, stepup: Stepup) -> None:
    """A *.toml beside the policy that is not valid TOML may list the key: the file stays, and the line
    says why and what to do."""
    broken = policy.parent / "draft.toml"
    broken.write_text('[[keys]]\nfingerprint = "DB05\n')
    with pytest.raises(tomllib.TOMLDecodeError) as parsed:
        tomllib.loads(broken.read_text())
    result = stepup("keys", "remove", "--policy", policy, BOB)
    assert (result.code, result.err) == (0, "")
    bob_file = policy.parent / "keys" / "bob.asc"
    assert result.out.splitlines()[1:] == [
        f"kept key file {bob_file}: {broken} is not valid TOML ({parsed.value}), so it may still list the key; "
        "delete the file by hand once no policy uses it"]
    assert bob_file.exists()


def test_remove_says_when_no_file_holds_the_key(policy: Path, stepup: Stepup) -> None:
    """dave's SSH key is listed inline, with no .pub file: the command says there was no file to delete."""
    dave = next(k for k in load(policy).keys if k.owner == "dave")
    result = stepup("keys", "remove", "--policy", policy, "--owner", "dave")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        f"removed SSH key {dave.id} (dave, tier contributor) from {policy}",
        f"no key file in {policy.parent / 'keys'} holds {dave.id}; nothing to delete",
    ]
