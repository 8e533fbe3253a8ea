"""`stepup-git demo` shows a rejected, a re-signed and a signed push, then the audit log, and cleans up."""

from __future__ import annotations

import glob
import sys

from support import run


def test_demo_runs_and_cleans_up() -> None:
    before = set(glob.glob("/tmp/sgdemo*"))
    proc = run([sys.executable, "-m", "stepup_git", "demo"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    steps = [
        "== 1. alice pushes a new migration without a fresh signature: rejected",
        "== 2. she re-signs the tip (git commit --amend --no-edit -S) and pushes again: accepted",
        "== 3. another migration, unsigned commit, pushed with git push --signed: accepted",
        "== 4. the audit log: who approved what, with which key, when",
        "== demo complete",
    ]
    positions = [out.index(step) for step in steps]
    assert positions == sorted(positions)
    rejected = out[positions[0]:positions[1]]
    assert "remote: stepup-git: push rejected: 1 of 1 update(s) fail the policy" in rejected
    assert 'rule "migrations-step-up" failed for commit' in rejected
    assert "git push --signed" in rejected
    audit = out[positions[3]:]
    assert "via tip-signature" in audit and "via push-certificate" in audit
    assert "audit log intact: 4 records" in audit
    assert set(glob.glob("/tmp/sgdemo*")) == before
