"""Simultaneous pushes to one repository: one audit record each, an intact chain, one keyring build."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support.keys import People, signed_policy
from support.repos import MakeClone, PushResult, Server

PUSHES = 10


def test_simultaneous_pushes_are_each_audited_once(people: People, server: Server, make_clone: MakeClone,
                                                   tmp_path: Path) -> None:
    server.write_policy(signed_policy(people.alice, refs="refs/heads/**"), {"alice.asc": people.alice.export()})
    server.install()
    cache = tmp_path / "server-cache"  # the server user's cache: empty, so the racing pushes build the keyring
    workers = []
    for n in range(PUSHES):
        c = make_clone(server)
        c.write(f"work-{n}.txt", f"{n}\n")
        # every other push is unsigned, so accepts and rejects are written at the same time
        c.commit(f"work {n}", sign=people.alice if n % 2 == 0 else None)
        workers.append(c)

    def push(n: int) -> PushResult:
        return workers[n].push(f"HEAD:refs/heads/topic-{n}", pusher=f"dev{n}", env={"XDG_CACHE_HOME": str(cache)})

    with ThreadPoolExecutor(max_workers=PUSHES) as pool:
        results = list(pool.map(push, range(PUSHES)))

    for n, result in enumerate(results):
        assert result.ok == (n % 2 == 0), result
        assert (server.ref(f"refs/heads/topic-{n}") is not None) == (n % 2 == 0)
    records = server.audit_records()
    assert len(records) == PUSHES
    by_ref = {r["ref"]: r for r in records}
    assert sorted(by_ref) == sorted(f"refs/heads/topic-{n}" for n in range(PUSHES))
    for n in range(PUSHES):
        record = by_ref[f"refs/heads/topic-{n}"]
        assert record["pusher"] == f"dev{n}"
        assert record["decision"] == ("accept" if n % 2 == 0 else "reject")
    verify = subprocess.run([sys.executable, "-m", "stepup_git", "audit", "verify", "--repo", str(server.path)],
                            capture_output=True, text=True, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip() == f"audit log intact: {PUSHES} records"
    homes = [p for p in (cache / "stepup-git" / "keyring").iterdir() if p.is_dir()]
    assert len(homes) == 1, homes  # one home, built once, no half-built folder left behind
