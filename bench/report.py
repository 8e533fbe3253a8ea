"""Results of the push benchmark and the markdown written into bench/README.md."""

from __future__ import annotations

import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


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


@dataclass
class Results:
    sizes: list[int]
    repeat: int
    classic_max: int | None
    table: dict[tuple[int, str], Samples] = field(default_factory=dict)
    repush_size: int | None = None
    repush: dict[str, tuple[Samples, Samples]] = field(default_factory=dict)
    repush_dropped: dict[str, tuple[Samples, Samples]] = field(default_factory=dict)  # first ref deleted
    repush_large: dict[tuple[int, str], tuple[Push, Push]] = field(default_factory=dict)  # (N, config), 1 run
    memory: dict[int, Push] = field(default_factory=dict)
    floor: dict[int, tuple[float, float]] = field(default_factory=dict)  # N -> (walk s, verify s)
    refs: tuple[int, int] | None = None  # (commits the server holds, tags in the big push)
    many_refs: dict[tuple[int, str], Samples] = field(default_factory=dict)  # (refs pushed, config)
    stepup_error: str | None = None
    policy_source: str = ""
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)  # load average when the run started


def fmt(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def difference(own: Samples | None, base: Samples | None) -> float | None:
    """Median of ``own`` minus median of ``base``: the time a hook adds to a push."""
    own_median = own.median() if own else None
    base_median = base.median() if base else None
    return None if own_median is None or base_median is None else own_median - base_median


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
        return difference(res.table.get((n, config)), res.table.get((n, "none")))

    rows = [
        "| N | no-hook push s | classic push s | stepup-git push s | classic hook s "
        "| stepup-git hook s | ratio classic/stepup-git | stepup-git ms/commit "
        "| stepup-git peak RSS MB |",
        "|" + " ---: |" * 9,
    ]
    for n in res.sizes:
        classic, stepup = hook(n, "classic"), hook(n, "stepup")
        ratio = classic / stepup if classic is not None and stepup and stepup > 0.001 else None
        per = stepup * 1000 / n if stepup is not None else None
        rss = res.table[(n, "stepup")].median_rss_mb() if (n, "stepup") in res.table else None
        rows.append(
            f"| {n:,} | {cell(n, 'none')} | {cell(n, 'classic')} | {cell(n, 'stepup')} "
            f"| {fmt(classic)} | {fmt(stepup)} | {fmt(ratio, 2 if ratio and ratio < 1 else 1, 'x')} | {fmt(per, 2)} "
            f"| {fmt(rss, 1)} |"
        )

    lines = ["", *rows, ""]
    targets: list[tuple[str, str, str]] = []

    def floor_ratio(n: int) -> float | None:
        hook_s, parts = hook(n, "stepup"), res.floor.get(n)
        return hook_s / sum(parts) if hook_s is not None and parts and sum(parts) > 0 else None

    if res.floor:
        lines += [
            "The floor: walking the N commits with pygit2 and reading each signature and payload, then "
            "verifying them one by one with pysequoia, in one process (`bench/floor.py`, median of "
            f"{res.repeat}).",
            "",
            "| N | floor walk s | floor verify s | floor s | stepup-git hook s | hook / floor |",
            "|" + " ---: |" * 6,
        ]
        for n in res.sizes:
            if n not in res.floor:
                continue
            walk, verify = res.floor[n]
            lines.append(
                f"| {n:,} | {walk:.3f} | {verify:.3f} | {walk + verify:.3f} | {fmt(hook(n, 'stepup'))} "
                f"| {fmt(floor_ratio(n), 1, 'x')} |"
            )
        lines.append("")

    big = 10_000
    c10, s10 = hook(big, "classic"), hook(big, "stepup")
    r10 = c10 / s10 if c10 is not None and s10 and s10 > 0 else None
    targets.append(
        (
            f"{big:,} commits judged ≥30x faster than the classic hook (hook time)",
            fmt(r10, 1, "x"),
            verdict(None if r10 is None else r10 >= 30),
        )
    )

    f10 = floor_ratio(big)
    targets.append(
        (
            f"{big:,} commits judged within 2x of the floor (hook time / (walk + verify))",
            fmt(f10, 2, "x"),
            verdict(None if f10 is None else f10 <= 2),
        )
    )

    one = hook(1, "stepup")
    if one is not None:
        classic_one = hook(1, "classic")
        lines.append(
            f"- 1-commit push: stepup-git adds {one * 1000:.0f} ms (median) over no hook"
            + ("" if classic_one is None else f"; the classic hook adds {classic_one * 1000:.0f} ms")
            + "."
        )
    targets.append(
        (
            "1-commit push adds ≤150 ms (median) over no hook",
            fmt(None if one is None else one * 1000, 0, " ms"),
            verdict(None if one is None else one <= 0.150),
        )
    )

    rp_ratio = None
    if "stepup" in res.repush and res.repush_size:
        first, again = res.repush["stepup"]
        f_med, a_med = first.median(), again.median()
        failed = first.failed or again.failed
        if failed is not None:
            lines.append(f"- Re-push (N={res.repush_size:,}): rejected: {failed.message}")
        elif f_med is not None and a_med is not None:
            rp_ratio = f_med / a_med
            base_first, base_again = res.repush.get("none", (None, None))
            hf, ha = difference(first, base_first), difference(again, base_again)
            hooks = ""
            if hf is not None and ha is not None:
                hooks = f"; hook time {hf:.3f} s → {ha:.3f} s" + (f" ({hf / ha:.1f}x)" if ha > 0.001 else "")
            lines.append(
                f"- Re-push (N={res.repush_size:,}, the same {res.repush_size - 1:,} "
                f"commits to `main` after `release/bench`): first push {f_med:.3f} s, "
                f"re-push {a_med:.3f} s, {rp_ratio:.1f}x faster (wall){hooks}."
            )
    large: dict[int, float] = {}
    for (n, config), (first_push, again_push) in sorted(res.repush_large.items()):
        if config != "stepup" or not (first_push.ok and again_push.ok):
            continue
        large[n] = first_push.seconds / again_push.seconds
        base = res.repush_large.get((n, "none"))
        hooks = "" if base is None else (f"; hook time {first_push.seconds - base[0].seconds:.3f} s → "
                                         f"{again_push.seconds - base[1].seconds:.3f} s")
        lines.append(f"- Re-push (N={n:,}, 1 run, the same pair of pushes): first push {first_push.seconds:.3f} s, "
                     f"re-push {again_push.seconds:.3f} s, {large[n]:.1f}x faster (wall){hooks}.")
    if "stepup" in res.repush_dropped and res.repush_size:
        first, again = res.repush_dropped["stepup"]
        base_first, base_again = res.repush_dropped.get("none", (None, None))
        hf, ha = difference(first, base_first), difference(again, base_again)
        if hf is not None and ha is not None:
            lines.append(
                f"- Re-push with `release/bench` deleted on the server first (no ref vets the commits: "
                f"`main-history-signed` judges all {res.repush_size - 1:,} again, their verifications from "
                f"the cache; Git sends the pack again, so the hook times say it): hook time {hf:.3f} s → "
                f"{ha:.3f} s" + (f" ({hf / ha:.1f}x)" if ha > 0.001 else "") + "."
            )
    targets.append(
        (
            f"re-push of verified commits ≥10x faster than the first push (wall), N={res.repush_size or 0:,}",
            fmt(rp_ratio, 1, "x"),
            verdict(
                None if rp_ratio is None else rp_ratio >= 10, "UNAVAILABLE" if res.stepup_error else "NOT MEASURED"
            ),
        )
    )
    for n, ratio in sorted(large.items()):
        targets.append((f"re-push of verified commits ≥10x faster than the first push (wall), N={n:,} (1 run)",
                        fmt(ratio, 1, "x"), verdict(ratio >= 10)))

    mem = {n: p.rss_kb / 1024 for n, p in res.memory.items() if p.ok and p.rss_kb}
    for n, push in sorted(res.memory.items()):
        state = f"{push.seconds:.2f} s" if push.ok else f"rejected: {push.message}"
        lines.append(f"- Memory run N={n:,}: push {state}, hook peak RSS {fmt(mem.get(n), 1, ' MB')} (1 run).")
    m100 = mem.get(100_000)
    targets.append(
        (
            "peak RSS of the hook at 100,000 commits ≤150 MB",
            fmt(m100, 1, " MB"),
            verdict(None if m100 is None else m100 <= 150),
        )
    )

    if res.refs and res.many_refs:
        history, count = res.refs
        lines += [
            "",
            f"Many refs: a server whose `main` already holds {history:,} commits (pushed before the hook was "
            f"installed) receives one push of lightweight tags `refs/tags/bench/<i>` at commits of that "
            "history; no rule of the policy applies to them.",
            "",
            "| refs in the push | no-hook push s | stepup-git push s | stepup-git hook s | hook ms per ref |",
            "|" + " ---: |" * 5,
        ]
        hooks: dict[int, float | None] = {}
        for refs in sorted({k for k, _ in res.many_refs}):
            base, own = res.many_refs.get((refs, "none")), res.many_refs.get((refs, "stepup"))
            added = hooks[refs] = difference(own, base)
            per = None if added is None else added * 1000 / refs
            lines.append(
                f"| {refs:,} | {fmt(base.median() if base else None)} | {fmt(own.median() if own else None)} "
                f"| {fmt(added)} | {fmt(per, 2)} |"
            )
        one_ref, many = hooks.get(1), hooks.get(count)
        if one_ref is not None and many is not None:
            lines += ["", f"- Hook time: {one_ref * 1000:.0f} ms for a push of one ref, {many * 1000:.0f} ms for "
                      f"{count:,} ({(many - one_ref) * 1000 / max(count - 1, 1):+.2f} ms per further ref)."]

    if res.stepup_error:
        lines.append(f"- stepup-git configuration unavailable: {res.stepup_error}")
        targets = [(t, m, "UNAVAILABLE" if v == "NOT MEASURED" else v) for t, m, v in targets]
    if res.classic_max and any(n > res.classic_max for n in res.sizes):
        lines.append(f"- Classic hook above N={res.classic_max:,}: 1 run (`--classic-max`).")
    lines += [
        "",
        "### Targets",
        "",
        "| target | measured | result |",
        "| --- | ---: | --- |",
        *[f"| {t} | {m} | {v} |" for t, m, v in targets],
        "",
    ]
    lines += ["### Machine and run", "", *[f"- {f}" for f in facts]]
    for b in builds:
        lines.append(
            f"- Building signed commits {int(b['from']):,}..{int(b['to']):,} of the chain took {b['seconds']:.0f} s."
        )
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
    return [
        f"Command: `.venv/bin/python {command}`",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"CPU: {cpu}; `nproc`: {out(['nproc'])}",
        f"OS: {platform.system()} {platform.release()}",
        f"{out(['git', '--version'])}; {out(['gpg', '--version'])}; Python {platform.python_version()}",
        f"Repeats per cell: {res.repeat} (median); policy: {res.policy_source}",
        "Load average at start (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in res.load),
    ]


def write_readme(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.write_text(text)
