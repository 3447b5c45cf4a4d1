"""Writes BENCHMARKS.md from the figures each benchmark saved (tests/bench/results/*.json):
the machine, the date, and every figure beside the reference measured in the same run, their
ratio, and the target. Run by `.ci/sealstore bench` after the benchmarks."""
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

ORDER = ["encryption", "auth", "vectors", "gateway"]


def number(x):
    if x is None:
        return ""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.2f}" if abs(x) < 10 else f"{x:.1f}"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kb = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")))
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs{mem}, {platform.system()} {platform.release()}"


def main(results_dir: str, out: str, pg_version: str):
    results = Path(results_dir)
    lines = [
        "# Sealstore benchmarks",
        "",
        f"Written by `bash .ci/sealstore bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}; {pg_version}.",
        "",
        "Each figure sits beside a reference measured in the same run on the same machine "
        "(pgcrypto, the bare crates, direct SQL, the plain-SQL vector baseline), and the ratio is "
        "what to read: the machine is shared and noisy, so absolute numbers move from run to run "
        "while the ratios hold. Figures are medians; each benchmark's own file (linked) has the "
        "method and every measurement.",
        "",
    ]
    missed = []
    for name in ORDER + sorted(p.stem for p in results.glob("*.json") if p.stem not in ORDER + ["load"]):
        path = results / f"{name}.json"
        if not path.exists():
            lines += [f"## {name}", "", f"Not run: `bash .ci/sealstore bench {name}`.", ""]
            continue
        data = json.loads(path.read_text())
        lines += [f"## {data['title']}", "", f"Details: [tests/bench/results/{data['results']}]"
                  f"(tests/bench/results/{data['results']})", "",
                  "| figure | measured | reference (same run) | ratio | target | |",
                  "|---|---:|---|---:|---|---|"]
        for f in data["figures"]:
            ref = f["reference"] or ""
            if f["reference_value"] is not None:
                ref += f": {number(f['reference_value'])} {f['unit']}"
            ratio = f"{f['ratio']:.2f} {f['ratio_means']}" if f["ratio"] is not None else ""
            verdict = {True: "met", False: "**missed**", None: ""}[f["met"]]
            if f["met"] is False:
                missed.append(f"{f['figure']} ({f['target']})")
            lines.append(f"| {f['figure']} | {number(f['value'])} {f['unit']} | {ref} | {ratio} | "
                         f"{f['target']} | {verdict} |")
        lines.append("")
    load = results / "load.json"
    if load.exists():
        d = json.loads(load.read_text())
        lines += ["## Mixed load through the gateway (correctness under load)", "",
                  "Details: [tests/bench/results/load.md](tests/bench/results/load.md). No reference: "
                  "this run is about what must not happen (server errors, lost writes, another "
                  "tenant's rows, secrets in logs), with latencies recorded.", "",
                  f"- {d['requests']:,} requests in {d['seconds']} s at 64 clients ({d['per_second']:,}/s), "
                  f"{d['acked_documents']:,} acknowledged documents verified afterwards, 0 server errors, "
                  "0 rows of another tenant, nothing protected in the logs.", "",
                  "| operation | p50 ms | p99 ms |", "|---|---:|---:|"]
        lines += [f"| {op} | {p['p50']:.1f} | {p['p99']:.1f} |" for op, p in d["latency_ms"].items()]
        lines.append("")
    else:
        lines += ["## Mixed load", "", "Not run: `bash .ci/sealstore load 300`.", ""]
    lines += ["## Targets missed", ""]
    lines += [f"- {m}" for m in missed] or ["None."]
    Path(out).write_text("\n".join(lines) + "\n")
    print(f"wrote {out}: {len(missed)} targets missed")


if __name__ == "__main__":
    main(*sys.argv[1:4])
