"""Push benchmark: stepup-git against no hook and the classic `git verify-commit` hook.

Usage: .venv/bin/python bench/run.py [--quick] [--sizes 1,200,2000,10000] [--repeat 3]
       [--classic-max N] [--repush-size N] [--memory-sizes 10000,100000] [--refs 300]
       [--refs-history 2000] [--out bench/README.md]

See bench/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build
from report import Push, Results, Samples, machine_facts, report, write_readme

BENCH = Path(__file__).resolve().parent
CLASSIC = BENCH / "classic-pre-receive"
CONFIGS = ("none", "classic", "stepup")
LABELS = {"none": "no hook", "classic": "classic", "stepup": "stepup-git"}


class Bench:
    def __init__(self, work: Path, scratch: Path, stepup_bin: Path | None = None) -> None:
        self.work = work
        self.runs = work / "runs"
        self.env = build.git_env(work)
        self.env["STEPUP_PUSHER"] = build.PUSHER
        self.scratch = scratch
        self.key = build.ensure_key(work, scratch)
        self.verify_home = build.verifying_home(self.key, scratch)
        self.chain = build.load_chain(work, self.key, self.env)
        self.policy, self.policy_source = build.write_policy(work / "policy", self.key)
        self.stepup_bin = stepup_bin or Path(sys.prefix) / "bin" / "stepup-git"
        self.stepup_error: str | None = None
        self.counter = 0

    # ------------------------------------------------------------------ fixtures
    def ensure_chain(self, n: int) -> None:
        have = len(self.chain.commits)
        if have < n:
            print(f"signing commits {have:,}..{n:,} of the chain...", flush=True)
            seconds = build.extend_chain(self.chain, n, self.key, self.scratch, self.env)
            print(f"  built in {seconds:.1f} s", flush=True)

    def source(self, n: int) -> Path:
        self.ensure_chain(n)
        repo = build.source_repo(self.work, self.chain, n, self.env)
        build.check_source(repo, n, self.verify_home, self.env)
        return repo

    def fresh_bare(self, config: str) -> Path | None:
        """A new bare repository with the hook of ``config``; None if it cannot be installed."""
        self.counter += 1
        bare = self.runs / f"{self.counter:05d}-{config}.git"
        build.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], env=self.env)
        return bare if self.install_hook(bare, config) else None

    def install_hook(self, bare: Path, config: str) -> bool:
        """Give ``bare`` the pre-receive hook of ``config``; False if stepup-git cannot be installed."""
        hooks = bare / "hooks"
        if config == "classic":
            shutil.copy(CLASSIC, hooks / "pre-receive.real")
            wrap_hook(hooks, {"GNUPGHOME": str(self.verify_home)})
        elif config == "stepup":
            if self.stepup_error is not None:
                return False
            proc = subprocess.run(
                [str(self.stepup_bin), "install", str(bare), "--policy", str(self.policy)],
                env=self.env,
                capture_output=True,
                text=True,
            )
            hook = hooks / "pre-receive"
            if proc.returncode != 0 or not hook.exists():
                detail = proc.stderr.strip() or proc.stdout.strip() or "no hook written"
                self.stepup_error = f"`stepup-git install` failed: {detail.splitlines()[-1]}"
                print(f"stepup-git unavailable: {self.stepup_error}", flush=True)
                return False
            hook.rename(hooks / "pre-receive.real")
            wrap_hook(hooks, {})
        return True

    def tagged_source(self, history: int, tags: int) -> Path:
        """A bare repository whose ``main`` holds ``history`` commits and whose ``tags`` lightweight tags
        ``refs/tags/bench/<i>`` point at commits spread evenly over that history (cached)."""
        self.ensure_chain(history)
        repo = self.work / "src" / f"n{history}-tags{tags}.git"
        step = max(1, history // tags)
        wanted = {f"refs/tags/bench/{i}": self.chain.commits[(i * step) % history] for i in range(tags)}
        listing = "".join(f"{oid} {name}\n" for name, oid in sorted(wanted.items()))
        done = repo / "bench-refs"
        if done.exists() and done.read_text() == listing:
            return repo
        shutil.rmtree(repo, ignore_errors=True)
        base = self.source(history)
        build.run(["git", "clone", "--quiet", "--bare", "--no-local", str(base), str(repo)], env=self.env)
        stdin = "".join(f"create {name} {oid}\n" for name, oid in wanted.items()).encode()
        build.run(["git", "-C", str(repo), "update-ref", "--stdin"], input=stdin, env=self.env)
        done.write_text(listing)
        return repo

    def floor(self, n: int) -> tuple[float, float]:
        """(walk, verify) seconds of one run of ``bench/floor.py`` on the ``n``-commit source, in the
        interpreter of the stepup-git install (its pygit2 and pysequoia)."""
        python = self.stepup_bin.parent / "python"
        out = build.run(
            [str(python), "-I", str(BENCH / "floor.py"), str(self.source(n)), str(n),
             str(self.work / "key" / "public.asc")],
            env=self.env,
        )
        found = json.loads(out.decode().strip().splitlines()[-1])
        return float(found["walk"]), float(found["verify"])

    # ------------------------------------------------------------------ measurements
    def push(self, src: Path, bare: Path, refspec: str) -> Push:
        timing = bare / "hooks" / "time.txt"
        timing.unlink(missing_ok=True)
        began = time.perf_counter()
        proc = subprocess.run(
            ["git", "-C", str(src), "push", "--quiet", str(bare), refspec], env=self.env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - began
        rss = None
        if timing.exists():
            found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing.read_text())
            rss = int(found.group(1)) if found else None
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return Push(seconds, proc.returncode == 0, rss, lines[0].strip() if lines else "")

    def one_push(self, config: str, src: Path) -> Push | None:
        bare = self.fresh_bare(config)
        if bare is None:
            return None
        try:
            return self.push(src, bare, "main")
        finally:
            shutil.rmtree(bare, ignore_errors=True)

    def repush(self, config: str, n: int, drop_first: bool = False) -> tuple[Push, Push] | None:
        """First push of commits 2..n to release/bench, then the same commits to main.

        ``main`` first holds the root commit only, so both pushes add the same n-1 commits:
        the first as a create on top of main, the second as a fast-forward of main whose
        objects are all in the repository already. With ``drop_first``, ``release/bench`` is
        deleted on the server (``git update-ref -d``, as an administrator would) before the second
        push: no ref then vets the commits, so every rule judges all of them again.
        """
        src = self.source(n)
        bare = self.fresh_bare(config)
        if bare is None:
            return None
        try:
            root, tip = self.chain.commits[0], self.chain.commits[n - 1]
            setup = self.push(src, bare, f"{root}:refs/heads/main")
            if not setup.ok:
                return setup, setup
            first = self.push(src, bare, f"{tip}:refs/heads/release/bench")
            if not first.ok:
                return first, first
            if drop_first:
                build.run(["git", "-C", str(bare), "update-ref", "-d", "refs/heads/release/bench"], env=self.env)
            return first, self.push(src, bare, f"{tip}:refs/heads/main")
        finally:
            shutil.rmtree(bare, ignore_errors=True)

    def many_refs(self, config: str, src: Path, refspec: str) -> Push | None:
        """One push of ``refspec`` (tags) from ``src`` into a server that already holds its ``main``.

        ``main`` goes in before the hook is installed, as on a server with a long history; stepup-git's
        install then records that history as the baseline.
        """
        self.counter += 1
        bare = self.runs / f"{self.counter:05d}-{config}-refs.git"
        build.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], env=self.env)
        try:
            setup = self.push(src, bare, "main")
            if not setup.ok:
                return setup
            if not self.install_hook(bare, config):
                return None
            return self.push(src, bare, refspec)
        finally:
            shutil.rmtree(bare, ignore_errors=True)


def wrap_hook(hooks: Path, env: dict[str, str]) -> None:
    """pre-receive runs the real hook under /usr/bin/time -v to record its peak memory."""
    exports = "".join(f"{name}='{value}'\nexport {name}\n" for name, value in env.items())
    hook = hooks / "pre-receive"
    hook.write_text(f"#!/bin/sh\n{exports}exec /usr/bin/time -v -o '{hooks}/time.txt' '{hooks}/pre-receive.real'\n")
    hook.chmod(0o755)
    (hooks / "pre-receive.real").chmod(0o755)


def measure(bench: Bench, args: argparse.Namespace) -> Results:
    res = Results(args.sizes, args.repeat, args.classic_max, load=os.getloadavg())
    res.repush_size = args.repush_size or max((n for n in args.sizes if n >= 2), default=None)
    bench.ensure_chain(max([*args.sizes, *args.memory_sizes, res.repush_size or 1, args.refs_history]))
    sources = {n: bench.source(n) for n in args.sizes}
    print("warm-up push per configuration", flush=True)
    for config in CONFIGS:
        bench.one_push(config, sources[min(args.sizes)])
    floors: dict[int, list[tuple[float, float]]] = {}
    for n in args.sizes:
        for rep in range(args.repeat):
            for config in CONFIGS:
                if config == "classic" and args.classic_max and n > args.classic_max and rep > 0:
                    continue
                push = bench.one_push(config, sources[n])
                if push is None:
                    continue
                res.table.setdefault((n, config), Samples()).pushes.append(push)
                state = "ok" if push.ok else f"REJECTED: {push.message}"
                print(f"N={n:>6} run {rep + 1} {LABELS[config]:>10}: {push.seconds:8.3f} s {state}", flush=True)
            # the floor between the pushes of the same size, so that it sees the same load on the machine
            walk, verify = bench.floor(n)
            floors.setdefault(n, []).append((walk, verify))
            print(f"N={n:>6} run {rep + 1} {'floor':>10}: walk {walk:.3f} s + verify {verify:.3f} s", flush=True)
        res.floor[n] = (
            statistics.median(w for w, _ in floors[n]),
            statistics.median(v for _, v in floors[n]),
        )
    if res.repush_size:
        for drop_first, store in ((False, res.repush), (True, res.repush_dropped)):
            for rep in range(args.repeat):
                for config in ("none", "stepup"):
                    pair = bench.repush(config, res.repush_size, drop_first)
                    if pair is None:
                        continue
                    first, again = store.setdefault(config, (Samples(), Samples()))
                    first.pushes.append(pair[0])
                    again.pushes.append(pair[1])
                    print(
                        f"re-push{' (first ref dropped)' if drop_first else ''} N={res.repush_size} run {rep + 1} "
                        f"{LABELS[config]:>10}: first {pair[0].seconds:.3f} s, re-push {pair[1].seconds:.3f} s",
                        flush=True,
                    )
    if args.refs:
        src = bench.tagged_source(args.refs_history, args.refs)
        res.refs = (args.refs_history, args.refs)
        cases = {1: "refs/tags/bench/0:refs/tags/bench/0", args.refs: "refs/tags/bench/*:refs/tags/bench/*"}
        for rep in range(args.repeat):
            for count, refspec in cases.items():
                for config in ("none", "stepup"):
                    push = bench.many_refs(config, src, refspec)
                    if push is None:
                        continue
                    res.many_refs.setdefault((count, config), Samples()).pushes.append(push)
                    state = "ok" if push.ok else f"REJECTED: {push.message}"
                    print(f"refs={count:>4} run {rep + 1} {LABELS[config]:>10}: {push.seconds:8.3f} s {state}",
                          flush=True)
    for n in args.memory_sizes:
        if res.repush_size and n > res.repush_size:  # the same re-push where the first push is longest
            for config in ("none", "stepup"):
                pair = bench.repush(config, n)
                if pair is not None:
                    res.repush_large[(n, config)] = pair
                    print(f"re-push N={n} {LABELS[config]:>10}: first {pair[0].seconds:.3f} s, "
                          f"re-push {pair[1].seconds:.3f} s", flush=True)
        push = bench.one_push("stepup", bench.source(n))
        if push is not None:
            res.memory[n] = push
            print(f"memory N={n}: {push.seconds:.3f} s, peak RSS {push.rss_kb} kB", flush=True)
    res.stepup_error = bench.stepup_error
    return res


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def server_install(venv: Path) -> Path:
    """Install stepup-git as an administrator would (install.sh: a regular, not editable, install), so
    that start-up is measured as it runs on a server."""
    env = {**os.environ, "STEPUP_VENV": str(venv)}
    subprocess.run([str(BENCH.parent / "install.sh")], env=env, check=True, stdout=subprocess.DEVNULL)
    return venv / "bin" / "stepup-git"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int_list, default=[1, 200, 2000, 10000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="sizes 1,200, repeat 3")
    p.add_argument(
        "--classic-max",
        type=int,
        default=None,
        help="above this N the classic hook runs once (1-2 min per run at 10,000)",
    )
    p.add_argument(
        "--repush-size", type=int, default=None, help="N of the re-push measurement (default: the largest size)"
    )
    p.add_argument("--memory-sizes", type=int_list, default=[], help="stepup-git peak-memory pushes, e.g. 10000,100000")
    p.add_argument("--refs", type=int, default=300, help="tags in the many-refs push (0: skip it)")
    p.add_argument("--refs-history", type=int, default=2000, help="commits the many-refs server already holds")
    p.add_argument(
        "--out",
        type=Path,
        default=BENCH / "README.md",
        help="README to update between the bench markers ('-' to only print)",
    )
    p.add_argument("--work", type=Path, default=BENCH / "work", help="cache and scratch dir")
    p.add_argument(
        "--stepup-git", type=Path, default=None,
        help="the stepup-git command (default: a fresh server install by install.sh into WORK/venv)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = [1, 200], 3
    if args.repeat < 1 or not args.sizes or min(args.sizes) < 1:
        p.error("--repeat and --sizes must be positive")
    if args.refs < 0 or args.refs_history < 1:
        p.error("--refs must be 0 or more and --refs-history positive")
    for tool in ("git", "gpg", "gpgconf", "/usr/bin/time"):
        if shutil.which(tool) is None:
            p.error(f"{tool} not found")

    args.work.mkdir(parents=True, exist_ok=True)
    if args.stepup_git is None:
        args.stepup_git = server_install(args.work.resolve() / "venv")
    scratch = build.scratch_dir()
    bench: Bench | None = None
    try:
        bench = Bench(args.work.resolve(), scratch, args.stepup_git)
        shutil.rmtree(bench.runs, ignore_errors=True)
        bench.runs.mkdir()
        res = measure(bench, args)
        res.policy_source = bench.policy_source
        block = report(res, machine_facts(res, argv), build.build_history(bench.chain))
    finally:
        for home in scratch.iterdir():
            build.kill_agent(home)
        shutil.rmtree(scratch, ignore_errors=True)
        if bench is not None:
            shutil.rmtree(bench.runs, ignore_errors=True)
    print(block)
    if str(args.out) != "-":
        write_readme(args.out, block)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
