"""``stepup-git demo``: a throw-away server, keys and policy, and real pushes that show the idea.

1. a change to db/migrations/ is rejected (with the message a developer sees);
2. the same change is accepted once the tip carries a fresh maintainer signature;
3. a `git push --signed` (push certificate) is accepted for an unsigned tip;
4. the audit log shows who approved what, with which key, and its hash chain verifies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .errors import StepupError

POLICY = """\
version = 1

[settings]
fresh_within = "10m"
keyring = "keys"

[tiers]
order = ["contributor", "maintainer"]

[[keys]]
fingerprint = "{fpr}"
owner = "alice"
tier = "maintainer"

[[rules]]
name = "migrations-step-up"
paths = ["db/migrations/**"]
require = "step-up"
tier = "maintainer"
"""


class Demo:
    def __init__(self, root: Path) -> None:
        self.root = root
        home = root / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("")
        self.gnupg = root / "g"
        self.gnupg.mkdir(mode=0o700)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "STEPUP_", "GNUPG"))}
        self.env.update(HOME=str(home), GNUPGHOME=str(self.gnupg), GIT_CONFIG_NOSYSTEM="1", LC_ALL="C",
                        STEPUP_PUSHER="alice", GIT_AUTHOR_NAME="Alice", GIT_AUTHOR_EMAIL="alice@example.org",
                        GIT_COMMITTER_NAME="Alice", GIT_COMMITTER_EMAIL="alice@example.org")

    def sh(self, *args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(args), cwd=cwd, env=self.env, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise StepupError(f"demo: {' '.join(args[:3])} failed: {proc.stderr.strip()[:300]}")
        return proc

    def step(self, title: str) -> None:
        print(f"\n== {title}")

    def push(self, clone: Path, *extra: str) -> bool:
        proc = self.sh("git", "push", *extra, "origin", "HEAD:main", cwd=clone, check=False)
        for line in proc.stderr.splitlines():
            if line.startswith("remote:") or line.lstrip().startswith(("!", "*", "+")) or "->" in line:
                print("   " + line.rstrip())
        return proc.returncode == 0

    def run(self) -> int:
        self.step("setting up: a maintainer key for alice, a bare server repository, a policy")
        self.sh("gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Alice <alice@example.org>",
                "ed25519", "sign", "never")
        listing = self.sh("gpg", "--with-colons", "--list-keys", "alice@example.org").stdout
        fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        policy_dir = self.root / "policy"
        (policy_dir / "keys").mkdir(parents=True)
        (policy_dir / "keys" / "alice.asc").write_text(self.sh("gpg", "--armor", "--export", fpr).stdout)
        (policy_dir / "policy.toml").write_text(POLICY.format(fpr=fpr))
        server = self.root / "server.git"
        self.sh("git", "init", "-q", "--bare", "-b", "main", str(server))
        self.sh(sys.executable, "-m", "stepup_git", "install", str(server), "--policy", str(policy_dir / "policy.toml"))
        print(f"   policy: changes to db/migrations/** need a fresh proof by a maintainer key ({fpr[-16:]})")

        clone = self.root / "work"
        self.sh("git", "clone", "-q", str(server), str(clone))
        for key, value in (("user.signingkey", fpr), ("commit.gpgsign", "false")):
            self.sh("git", "config", key, value, cwd=clone)
        (clone / "README.md").write_text("demo\n")
        self.sh("git", "add", "-A", cwd=clone)
        self.sh("git", "commit", "-q", "-m", "Start", cwd=clone)
        self.push(clone)

        self.step("1. alice pushes a new migration without a fresh signature: rejected")
        (clone / "db" / "migrations").mkdir(parents=True)
        (clone / "db" / "migrations" / "0042.sql").write_text("ALTER TABLE users ADD COLUMN mfa boolean;\n")
        self.sh("git", "add", "-A", cwd=clone)
        self.sh("git", "commit", "-q", "-m", "Add migration 0042", cwd=clone)
        rejected = not self.push(clone)

        self.step("2. she re-signs the tip (git commit --amend --no-edit -S) and pushes again: accepted")
        self.sh("git", "commit", "-q", "--amend", "--no-edit", "-S", cwd=clone)
        signed_ok = self.push(clone)

        self.step("3. another migration, unsigned commit, pushed with git push --signed: accepted")
        (clone / "db" / "migrations" / "0043.sql").write_text("CREATE INDEX users_mfa ON users (mfa);\n")
        self.sh("git", "add", "-A", cwd=clone)
        self.sh("git", "commit", "-q", "-m", "Add migration 0043", cwd=clone)
        cert_ok = self.push(clone, "--signed")

        self.step("4. the audit log: who approved what, with which key, when")
        log = server / "stepup" / "audit.jsonl"
        show = self.sh(sys.executable, "-m", "stepup_git", "audit", "show", "--log", str(log))
        print("\n".join("   " + line for line in show.stdout.splitlines()))
        verify = self.sh(sys.executable, "-m", "stepup_git", "audit", "verify", "--log", str(log), check=False)
        print("   " + verify.stdout.strip())
        ok = rejected and signed_ok and cert_ok and verify.returncode == 0
        print("\n== demo " + ("complete" if ok else "did not go as expected"))
        return 0 if ok else 1
