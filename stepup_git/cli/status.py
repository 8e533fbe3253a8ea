"""``stepup-git status REPO``: what is installed in a repository, and how it is doing: the hook, the mode,
the policy, the baseline, where state lives, and the last audit records."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .. import layouts
from ..audit import default_log, read, render_table
from ..errors import AuditError
from ..install import MARKER, open_repository
from ..policy import configured_policy_path
from ..policy.check import check_policy
from ..policy.load import load

LAST = 5  # audit records shown


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="what is installed in a repository: hook, mode, policy, baseline, state")
    p.add_argument("repo", type=Path, metavar="REPO")
    p.set_defaults(func=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    repo = open_repository(args.repo)
    try:
        git_dir = Path(repo.path).resolve()
        hook = layouts.hook_file_for("plain", git_dir, hooks_path=repo.config("core.hooksPath"), workdir=repo.workdir())
        installed = hook.is_file() and MARKER in hook.read_text(errors="replace")
        print(f"repository: {git_dir}")
        print(f"hook:       {'installed' if installed else 'NOT installed'} ({hook})"
              + ("" if installed else f"; run: stepup-git install {git_dir} --policy FILE"))
        policy_file = configured_policy_path(git_dir, repo.config("stepup.policy"))
        if policy_file is None:
            print("policy:     none configured (git config stepup.policy); every push is refused")
            return 0
        problems, _ = check_policy(policy_file)
        if problems:
            print(f"policy:     {policy_file}: {len(problems)} error(s), every push is refused; "
                  f"see: stepup-git policy check {policy_file}")
            return 0
        policy = load(policy_file)
        configured_mode = repo.config("stepup.mode")
        mode = configured_mode or policy.settings.mode
        where = "git config stepup.mode" if configured_mode else "the policy"
        leave = f"; to enforce: stepup-git install {git_dir} --mode enforce" if mode == "audit" else ""
        print(f"policy:     {policy_file} (ok)")
        print(f"mode:       {mode} (from {where}){leave}")
        baseline = repo.baseline()
        recorded = (git_dir / "stepup" / "baseline").is_file()
        print(f"baseline:   {len(baseline)} commit(s) recorded" if recorded
              else f"baseline:   not recorded; run: stepup-git baseline {git_dir}")
        local = f"local, in {git_dir / 'stepup'}"
        print(f"state:      {'a PostgreSQL database (docs/servers.md)' if policy.settings.state else local}")
        if policy.settings.state:
            return 0
        log = policy.settings.audit_log or default_log(git_dir)
        try:
            records = list(read(log))
        except AuditError as exc:
            print(f"audit log:  {log}: {exc}")
            return 0
        if not records:
            print(f"audit log:  {log}, no records yet")
            return 0
        print(f"audit log:  {log}, {len(records)} record(s); the last {min(LAST, len(records))}:")
        print(render_table(records[-LAST:]), end="")
        return 0
    finally:
        repo.close()
