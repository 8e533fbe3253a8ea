"""Push benchmark: stepup-git against no hook and the classic `git verify-commit` hook.

Usage: .venv/bin/python bench/run.py [--quick] [--sizes 1,200,2000,10000] [--repeat 3]
       [--classic-max N] [--repush-size N] [--memory-sizes 10000,100000] [--out bench/README.md]

See bench/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import tomlkit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLASSIC = BENCH / "classic-pre-receive"
CONFIGS = ("none", "classic", "stepup")
LABELS = {"none": "no hook", "classic": "classic", "stepup": "stepup-git"}
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
LONG_WINDOW = "3650d"  # freshness window of the bench policy: cached signatures stay fresh
PUSHER = "bench"
EXAMPLE = ROOT / "policies" / "example.toml"


@dataclass
class Push:
    seconds: float
    ok: bool
    rss_kb: int | None
    message: str


@dataclass
class Samples:
    pushes: list[Push] = field(default_factory=list)

    @property
    def failed(self) -> Push | None:
        return next((p for p in self.pushes if not p.ok), None)

    def median(self) -> float | None:
        if not self.pushes or self.failed:
            return None
        return statistics.median(p.seconds for p in self.pushes)

    def median_rss_mb(self) -> float | None:
        rss = [p.rss_kb for p in self.pushes if p.rss_kb is not None]
        return statistics.median(rss) / 1024 if rss else None


class Bench:
    def __init__(self, work: Path, scratch: Path, stepup_bin: Path | None = None) -> None:
        self.work = work
        self.runs = work / "runs"
        self.env = build.git_env(work)
        self.env["STEPUP_PUSHER"] = PUSHER
        self.scratch = scratch
        self.key = build.ensure_key(work, scratch)
        self.verify_home = build.verifying_home(self.key, scratch)
        self.chain = build.load_chain(work, self.key, self.env)
        self.policy = write_policy(work / "policy", self.key)
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
        hooks = bare / "hooks"
        if config == "classic":
            shutil.copy(CLASSIC, hooks / "pre-receive.real")
            wrap_hook(hooks, {"GNUPGHOME": str(self.verify_home)})
        elif config == "stepup":
            if self.stepup_error is not None:
                return None
            proc = subprocess.run([str(self.stepup_bin), "install", str(bare), "--policy",
                                   str(self.policy)], env=self.env, capture_output=True, text=True)
            hook = hooks / "pre-receive"
            if proc.returncode != 0 or not hook.exists():
                detail = (proc.stderr.strip() or proc.stdout.strip() or "no hook written")
                self.stepup_error = f"`stepup-git install` failed: {detail.splitlines()[-1]}"
                print(f"stepup-git unavailable: {self.stepup_error}", flush=True)
                return None
            hook.rename(hooks / "pre-receive.real")
            wrap_hook(hooks, {})
        return bare

    # ------------------------------------------------------------------ measurements
    def push(self, src: Path, bare: Path, refspec: str) -> Push:
        timing = bare / "hooks" / "time.txt"
        timing.unlink(missing_ok=True)
        began = time.perf_counter()
        proc = subprocess.run(["git", "-C", str(src), "push", "--quiet", str(bare), refspec],
                              env=self.env, capture_output=True, text=True)
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

    def repush(self, config: str, n: int) -> tuple[Push, Push] | None:
        """First push of commits 2..n to release/bench, then the same commits to main.

        ``main`` first holds the root commit only, so both pushes add the same n-1 commits:
        the first as a create on top of main, the second as a fast-forward of main whose
        objects are all in the repository already.
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
            return first, self.push(src, bare, f"{tip}:refs/heads/main")
        finally:
            shutil.rmtree(bare, ignore_errors=True)


def wrap_hook(hooks: Path, env: dict[str, str]) -> None:
    """pre-receive runs the real hook under /usr/bin/time -v to record its peak memory."""
    exports = "".join(f"{name}='{value}'\nexport {name}\n" for name, value in env.items())
    hook = hooks / "pre-receive"
    hook.write_text(f"#!/bin/sh\n{exports}exec /usr/bin/time -v -o '{hooks}/time.txt' "
                    f"'{hooks}/pre-receive.real'\n")
    hook.chmod(0o755)
    (hooks / "pre-receive.real").chmod(0o755)


# ---------------------------------------------------------------------- policy

FALLBACK_POLICY = """\
version = 1

[settings]
mode = "enforce"
fresh_within = "15m"
clock_skew = "5m"
keyring = "keys"

[tiers]
order = ["contributor", "maintainer", "release"]

[[keys]]
fingerprint = "0000000000000000000000000000000000000000"
owner = "nobody"
tier = "contributor"

[[rules]]
name = "main-history-signed"
refs = ["refs/heads/main", "refs/heads/release/*"]
require = "signed"
tier = "contributor"

[[rules]]
name = "migrations-step-up"
refs = ["refs/heads/**"]
paths = ["db/migrations/**", "infra/**"]
require = "step-up"
tier = "maintainer"
fresh_within = "10m"
proofs = ["push-certificate", "tip-signature"]
signers = 1
bind_pusher = true

[[rules]]
name = "main-no-rewrite"
refs = ["refs/heads/main"]
on = ["force-push", "delete"]
require = "step-up"
tier = "release"

[[rules]]
name = "release-tags"
refs = ["refs/tags/v*"]
require = "signed-tag"
tier = "release"

[[rules]]
name = "no-direct-prod"
refs = ["refs/heads/prod"]
on = ["delete"]
require = "deny"
"""


def write_policy(folder: Path, key: build.BenchKey, example: Path = EXAMPLE) -> Path:
    """``policies/example.toml`` with the bench key as its only key (or SPEC §3's example).

    Changes: the keys, a keyring holding the bench key, freshness windows long enough that
    the (cached) tip signatures count as fresh, and the audit log in each repository.
    """
    text = example.read_text() if example.exists() else FALLBACK_POLICY
    doc = tomlkit.parse(text)
    tiers = doc["tiers"]["order"]
    tier = "release" if "release" in tiers else str(tiers[-1])
    entry = tomlkit.table()
    entry.update({"fingerprint": key.fingerprint, "owner": PUSHER, "tier": tier})
    entry.add(tomlkit.nl())
    keys = tomlkit.aot()
    keys.append(entry)
    doc["keys"] = keys
    settings = doc.setdefault("settings", tomlkit.table())
    settings.update({"mode": "enforce", "keyring": "keys", "fresh_within": LONG_WINDOW})
    for name in ("audit_log", "pusher_env"):
        settings.pop(name, None)
    for rule in doc.get("rules", []):
        if "fresh_within" in rule:
            rule["fresh_within"] = LONG_WINDOW
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    for old in (folder / "keys").glob("*"):
        old.unlink()
    (folder / "keys" / "bench.asc").write_text(key.public_armor)
    policy = folder / "policy.toml"
    policy.write_text(tomlkit.dumps(doc))
    return policy


# ---------------------------------------------------------------------- running


@dataclass
class Results:
    sizes: list[int]
    repeat: int
    classic_max: int | None
    table: dict[tuple[int, str], Samples] = field(default_factory=dict)
    repush_size: int | None = None
    repush: dict[str, tuple[Samples, Samples]] = field(default_factory=dict)
    memory: dict[int, Push] = field(default_factory=dict)
    stepup_error: str | None = None
    policy_source: str = ""


def measure(bench: Bench, args: argparse.Namespace) -> Results:
    res = Results(args.sizes, args.repeat, args.classic_max)
    res.repush_size = args.repush_size or max((n for n in args.sizes if n >= 2), default=None)
    bench.ensure_chain(max([*args.sizes, *args.memory_sizes, res.repush_size or 1]))
    sources = {n: bench.source(n) for n in args.sizes}
    print("warm-up push per configuration", flush=True)
    for config in CONFIGS:
        bench.one_push(config, sources[min(args.sizes)])
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
                print(f"N={n:>6} run {rep + 1} {LABELS[config]:>10}: {push.seconds:8.3f} s {state}",
                      flush=True)
    if res.repush_size:
        for rep in range(args.repeat):
            for config in ("none", "stepup"):
                pair = bench.repush(config, res.repush_size)
                if pair is None:
                    continue
                first, again = res.repush.setdefault(config, (Samples(), Samples()))
                first.pushes.append(pair[0])
                again.pushes.append(pair[1])
                print(f"re-push N={res.repush_size} run {rep + 1} {LABELS[config]:>10}: first "
                      f"{pair[0].seconds:.3f} s, re-push {pair[1].seconds:.3f} s", flush=True)
    for n in args.memory_sizes:
        push = bench.one_push("stepup", bench.source(n))
        if push is not None:
            res.memory[n] = push
            print(f"memory N={n}: {push.seconds:.3f} s, peak RSS {push.rss_kb} kB", flush=True)
    res.stepup_error = bench.stepup_error
    return res


# ---------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def verdict(ok: bool | None, missing: str = "NOT MEASURED") -> str:
    return missing if ok is None else ("PASS" if ok else "FAIL")


def report(res: Results, facts: list[str], builds: list[dict[str, float]]) -> str:
    unavailable = "unavailable" if res.stepup_error else "—"

    def cell(n: int, config: str) -> str:
        samples = res.table.get((n, config))
        if samples is None or not samples.pushes:
            return unavailable if config == "stepup" else "—"
        if samples.failed:
            return "rejected"
        runs = len(samples.pushes)
        note = f" ({runs} run)" if runs == 1 and res.repeat > 1 else ""
        return fmt(samples.median()) + note

    def hook(n: int, config: str) -> float | None:
        base, own = res.table.get((n, "none")), res.table.get((n, config))
        if base is None or own is None or base.median() is None or own.median() is None:
            return None
        return own.median() - base.median()  # type: ignore[operator]

    rows = ["| N | no-hook push s | classic push s | stepup-git push s | classic hook s "
            "| stepup-git hook s | ratio classic/stepup-git | stepup-git ms/commit "
            "| stepup-git peak RSS MB |", "|" + " ---: |" * 9]
    for n in res.sizes:
        classic, stepup = hook(n, "classic"), hook(n, "stepup")
        ratio = classic / stepup if classic is not None and stepup and stepup > 0.001 else None
        per = stepup * 1000 / n if stepup is not None else None
        rss = res.table[(n, "stepup")].median_rss_mb() if (n, "stepup") in res.table else None
        rows.append(f"| {n:,} | {cell(n, 'none')} | {cell(n, 'classic')} | {cell(n, 'stepup')} "
                    f"| {fmt(classic)} | {fmt(stepup)} | {fmt(ratio, 1, 'x')} | {fmt(per, 2)} "
                    f"| {fmt(rss, 1)} |")

    lines = ["", "### Results", "", *rows, ""]
    targets: list[tuple[str, str, str]] = []

    big = 10_000
    c10, s10 = hook(big, "classic"), hook(big, "stepup")
    r10 = c10 / s10 if c10 is not None and s10 and s10 > 0 else None
    targets.append((f"{big:,} commits judged ≥30x faster than the classic hook (hook time)",
                    fmt(r10, 1, "x"), verdict(None if r10 is None else r10 >= 30)))

    one = hook(1, "stepup")
    if one is not None:
        classic_one = hook(1, "classic")
        lines.append(f"- 1-commit push: stepup-git adds {one * 1000:.0f} ms (median) over no hook"
                     + ("" if classic_one is None
                        else f"; the classic hook adds {classic_one * 1000:.0f} ms") + ".")
    targets.append(("1-commit push adds ≤100 ms (median) over no hook",
                    fmt(None if one is None else one * 1000, 0, " ms"),
                    verdict(None if one is None else one <= 0.100)))

    rp_ratio = None
    if "stepup" in res.repush and res.repush_size:
        first, again = res.repush["stepup"]
        f_med, a_med = first.median(), again.median()
        if first.failed or again.failed:
            failed = first.failed or again.failed
            lines.append(f"- Re-push (N={res.repush_size:,}): rejected: {failed.message}")  # type: ignore[union-attr]
        elif f_med is not None and a_med is not None:
            rp_ratio = f_med / a_med
            base = res.repush.get("none")
            hooks = ""
            if base and base[0].median() is not None and base[1].median() is not None:
                hf, ha = f_med - base[0].median(), a_med - base[1].median()  # type: ignore[operator]
                hooks = (f"; hook time {hf:.3f} s → {ha:.3f} s"
                         + (f" ({hf / ha:.1f}x)" if ha > 0.001 else ""))
            lines.append(f"- Re-push (N={res.repush_size:,}, the same {res.repush_size - 1:,} "
                         f"commits to `main` after `release/bench`): first push {f_med:.3f} s, "
                         f"re-push {a_med:.3f} s, {rp_ratio:.1f}x faster (wall){hooks}.")
    targets.append(("re-push of verified commits ≥10x faster than the first push (wall)",
                    fmt(rp_ratio, 1, "x"),
                    verdict(None if rp_ratio is None else rp_ratio >= 10,
                            "UNAVAILABLE" if res.stepup_error else "NOT MEASURED")))

    mem = {n: p.rss_kb / 1024 for n, p in res.memory.items() if p.ok and p.rss_kb}
    for n, push in sorted(res.memory.items()):
        state = f"{push.seconds:.2f} s" if push.ok else f"rejected: {push.message}"
        lines.append(f"- Memory run N={n:,}: push {state}, hook peak RSS "
                     f"{fmt(mem.get(n), 1, ' MB')} (1 run).")
    m_ratio = mem[100_000] / mem[10_000] if 10_000 in mem and 100_000 in mem else None
    targets.append(("peak RSS at 100,000 commits ≤1.5x that at 10,000", fmt(m_ratio, 2, "x"),
                    verdict(None if m_ratio is None else m_ratio <= 1.5)))

    if res.stepup_error:
        lines.append(f"- stepup-git configuration unavailable: {res.stepup_error}")
        targets = [(t, m, "UNAVAILABLE" if v == "NOT MEASURED" else v) for t, m, v in targets]
    if res.classic_max and any(n > res.classic_max for n in res.sizes):
        lines.append(f"- Classic hook above N={res.classic_max:,}: 1 run (`--classic-max`).")
    lines += ["", "### Targets (SPEC §10)", "", "| target | measured | result |",
              "| --- | ---: | --- |", *[f"| {t} | {m} | {v} |" for t, m, v in targets], ""]
    lines += ["### Machine and run", "", *[f"- {f}" for f in facts]]
    for b in builds:
        lines.append(f"- Building signed commits {int(b['from']):,}..{int(b['to']):,} of the chain "
                     f"took {b['seconds']:.0f} s.")
    return "\n".join([START, *lines, "", END])


def machine_facts(res: Results, argv: list[str]) -> list[str]:
    def out(args: list[str]) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    command = " ".join(["bench/run.py", *argv])
    return [f"Command: `.venv/bin/python {command}`",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"CPU: {cpu}; `nproc`: {out(['nproc'])}",
            f"OS: {platform.system()} {platform.release()}",
            f"{out(['git', '--version'])}; {out(['gpg', '--version'])}; "
            f"Python {platform.python_version()}",
            f"Repeats per cell: {res.repeat} (median); policy: {res.policy_source}"]


def write_readme(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)


def int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int_list, default=[1, 200, 2000, 10000])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="sizes 1,200, repeat 3")
    p.add_argument("--classic-max", type=int, default=None,
                   help="above this N the classic hook runs once (it takes ~1 min at 10,000)")
    p.add_argument("--repush-size", type=int, default=None,
                   help="N of the re-push measurement (default: the largest size)")
    p.add_argument("--memory-sizes", type=int_list, default=[],
                   help="stepup-git peak-memory pushes, e.g. 10000,100000")
    p.add_argument("--out", type=Path, default=BENCH / "README.md",
                   help="README to update between the bench markers ('-' to only print)")
    p.add_argument("--work", type=Path, default=BENCH / "work", help="cache and scratch dir")
    p.add_argument("--stepup-git", type=Path, default=None,
                   help="the stepup-git command (default: the one beside this Python)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = [1, 200], 3
    if args.repeat < 1 or not args.sizes or min(args.sizes) < 1:
        p.error("--repeat and --sizes must be positive")
    for tool in ("git", "gpg", "gpgconf", "/usr/bin/time"):
        if shutil.which(tool) is None:
            p.error(f"{tool} not found")

    args.work.mkdir(parents=True, exist_ok=True)
    scratch = build.scratch_dir()
    bench: Bench | None = None
    try:
        bench = Bench(args.work.resolve(), scratch, args.stepup_git)
        shutil.rmtree(bench.runs, ignore_errors=True)
        bench.runs.mkdir()
        res = measure(bench, args)
        res.policy_source = (
            "policies/example.toml with the bench key" if EXAMPLE.exists()
            else "SPEC §3 example (policies/example.toml missing) with the bench key")
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
