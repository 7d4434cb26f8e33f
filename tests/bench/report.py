#!/usr/bin/env python3
"""Summarises scripts/bench's measurements.

Usage: report.py RAW_CSV META_TXT OUT_DIR

RAW_CSV has one measurement per line (rep,backing,target,workload,unit,value);
META_TXT holds "key: value" lines for the header. Writes OUT_DIR/results.csv
(one line per backing/workload/target), OUT_DIR/results.md (tables of
medians with min-max spread and tempfs/native ratios) and OUT_DIR/ratios.png
(gnuplot bar chart of the ratios, with a line at 1.0), and prints the
Markdown to stdout.

A ratio is median(target) / median(native) over the reps of this run; the
range after it is the min-max of the per-rep ratios (each target against
the native measurement of the same rep). Every metric is "higher is better",
so a ratio below 1 means slower than the backing filesystem used directly.
"""
import csv
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

WORKLOADS = [
    # key, description, cache state
    ("seqwrite-1j", "seq write 1 MiB blocks, 1 job (new file, end fsync)", "-"),
    ("seqwrite-2j", "seq write 1 MiB blocks, 2 jobs (one half each)", "-"),
    ("seqread-1j", "seq read 1 MiB blocks, 1 job", "warm"),
    ("seqread-2j", "seq read 1 MiB blocks, 2 jobs", "warm"),
    ("randread-4k", "random read 4 KiB, 1 job", "warm"),
    ("mmapread", "mmap read (fio mmap engine), 1 MiB", "warm"),
    ("seqread-cold", "seq read 1 MiB blocks, 1 job", "cold*"),
    ("md-create", "small files: create + write 4 KiB + close", "-"),
    ("md-stat", "small files: stat, first after the writes", "warm dentries"),
    ("md-restat", "small files: stat again", "warm"),
    ("md-read", "small files: open + read 4 KiB + close", "warm"),
    ("md-stat-cold", "small files: stat", "cold dentries"),
    ("md-unlink", "small files: unlink", "-"),
]
TARGETS = [
    ("native", "native"),
    ("tempfs-pt", "tempfs passthrough"),
    ("tempfs-fb", "tempfs fallback"),
    ("hp", "libfuse passthrough_hp"),
]
BACKINGS = ["tmpfs", "disk"]


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}"


def main():
    raw_path, meta_path, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    vals = defaultdict(dict)  # (backing, workload, target) -> {rep: value}
    units = {}
    with raw_path.open() as f:
        for row in csv.DictReader(f):
            key = (row["backing"], row["workload"], row["target"])
            vals[key][int(row["rep"])] = float(row["value"])
            units[row["workload"]] = row["unit"]
    meta = []
    for line in meta_path.read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            meta.append((k.strip(), v.strip()))

    backings = [b for b in BACKINGS if any(k[0] == b for k in vals)]
    targets = [t for t in TARGETS if any(k[2] == t[0] for k in vals)]
    others = [t for t in targets if t[0] != "native"]
    workloads = [w for w in WORKLOADS if any(k[1] == w[0] for k in vals)]

    # stats[(b, w, t)] = dict(n, median, min, max, ratio, rmin, rmax)
    stats = {}
    for b in backings:
        for w, _, _ in workloads:
            nat = vals.get((b, w, "native"), {})
            nat_med = statistics.median(nat.values()) if nat else None
            for t, _ in targets:
                v = vals.get((b, w, t), {})
                if not v:
                    continue
                s = dict(n=len(v), median=statistics.median(v.values()), min=min(v.values()),
                         max=max(v.values()), native=nat_med, ratio=None, rmin=None, rmax=None)
                if t != "native" and nat_med:
                    s["ratio"] = s["median"] / nat_med
                    paired = [v[r] / nat[r] for r in v if r in nat and nat[r] > 0]
                    if paired:
                        s["rmin"], s["rmax"] = min(paired), max(paired)
                stats[(b, w, t)] = s

    out.mkdir(parents=True, exist_ok=True)
    with (out / "results.csv").open("w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["backing", "workload", "cache", "unit", "target", "n", "median", "min", "max",
                     "native_median", "ratio", "ratio_min", "ratio_max"])
        for b in backings:
            for w, _, cache in workloads:
                for t, _ in targets:
                    s = stats.get((b, w, t))
                    if not s:
                        continue
                    r = lambda x: "" if x is None else f"{x:.4f}"
                    wr.writerow([b, w, cache, units.get(w, ""), t, s["n"], f"{s['median']:.3f}",
                                 f"{s['min']:.3f}", f"{s['max']:.3f}",
                                 "" if s["native"] is None else f"{s['native']:.3f}",
                                 r(s["ratio"]), r(s["rmin"]), r(s["rmax"])])

    md = ["# tempfs benchmark", ""]
    for k, v in meta:
        md.append(f"- **{k}**: {v}")
    md += [
        "",
        "Each cell: median over reps (min–max). Ratio = median(target) / median(native), "
        "native = a plain directory on the same backing filesystem, measured in the same run "
        "(interleaved per rep); the range after a ratio is the min–max of the per-rep paired "
        "ratios. Higher is better everywhere; ratio < 1 means slower than native.",
        "Cache: *warm* = file just written and read once untimed (with passthrough the cached pages "
        "are the backing file's, in fallback mode tempfs's own FUSE pages); *cold\\** = after "
        "`sync; echo 3 > drop_caches` (on the tmpfs backing the data itself stays in memory, "
        "so only the page cache above it is cold); *cold dentries* = after `sync; echo 2 > "
        "drop_caches`; *warm dentries* = names cached, but on FUSE the writes invalidated the "
        "attributes (one GETATTR per file). Writes include a final fsync.",
        "",
    ]
    for b in backings:
        md.append(f"## {b} backing")
        md.append("")
        hdr = ["workload", "cache", "unit", "native"]
        for t, name in others:
            hdr += [name, "ratio"]
        md.append("| " + " | ".join(hdr) + " |")
        md.append("|" + "|".join(["---"] * 3 + ["--:"] * (len(hdr) - 3)) + "|")
        for w, desc, cache in workloads:
            row = [f"{w}: {desc}", cache, units.get(w, "")]
            s = stats.get((b, w, "native"))
            row.append(f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})" if s else "-")
            for t, _ in others:
                s = stats.get((b, w, t))
                if not s:
                    row += ["-", "-"]
                    continue
                row.append(f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})")
                rr = fmt_ratio(s["ratio"])
                if s["rmin"] is not None and s["n"] > 1:
                    rr += f" ({fmt_ratio(s['rmin'])}–{fmt_ratio(s['rmax'])})"
                if s["ratio"] is not None:
                    rr = f"**{rr}**" if s["ratio"] < 0.5 else rr
                row.append(rr)
            md.append("| " + " | ".join(row) + " |")
        md.append("")
    md.append("Ratios below 0.5 are in bold. Chart: `ratios.png`; all measurements: `raw.csv`.")
    text = "\n".join(md) + "\n"
    (out / "results.md").write_text(text)
    sys.stdout.write(text)

    plot(out, backings, others, workloads, stats)


def plot(out, backings, others, workloads, stats):
    dat = out / "ratios.dat"
    n = len(others)
    width = 0.8 / max(n, 1)
    ymax, ymin = 2.0, 0.05
    with dat.open("w") as f:
        for bi, b in enumerate(backings):
            if bi:
                f.write("\n\n")
            f.write(f"# backing {b}: x ratio label, one block per target\n")
            for ti, (t, _) in enumerate(others):
                if ti:
                    f.write("\n\n")
                for wi, (w, _, _) in enumerate(workloads):
                    s = stats.get((b, w, t))
                    x = wi + (ti - (n - 1) / 2) * width
                    if not s or s["ratio"] is None:
                        f.write(f"{x:.4f} NaN -\n")  # keeps the block non-empty
                        continue
                    r = s["ratio"]
                    f.write(f"{x:.4f} {r:.5f} {r:.2f}\n" if r >= 0.1 else f"{x:.4f} {r:.5f} {r:.2g}\n")
                    ymax = max(ymax, r * 2)
                    ymin = min(ymin, r / 2)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
    xt = ", ".join(f'"{w}" {i}' for i, (w, _, _) in enumerate(workloads))
    gp = [
        "set terminal pngcairo size 1600,%d font 'sans,10'" % (460 * len(backings) + 60),
        f"set output '{out / 'ratios.png'}'",
        f"set multiplot layout {len(backings)},1 title 'target / native, same run (median ratio; higher is better; 1 = as fast as the backing fs)'",
        "set style fill solid 0.85 border -1",
        f"set boxwidth {width:.4f} absolute",
        f"set xtics ({xt}) rotate by -25 scale 0",
        f"set xrange [-0.6:{len(workloads) - 0.4}]",
        "set termoption noenhanced",
        "set logscale y",
        f"set yrange [{ymin:.4g}:{ymax:.3g}]",
        "set ytics (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20)",
        "set ylabel 'ratio to native (log scale)'",
        "set grid ytics",
        "set key outside right top vertical",
        "set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2 lc rgb 'black' front",
    ]
    blocks = {}
    idx = 0
    for b in backings:
        for t, _ in others:
            blocks[(b, t)] = idx
            idx += 1
    for b in backings:
        gp.append(f"set title '{b} backing'")
        parts = []
        for ti, (t, name) in enumerate(others):
            i = blocks[(b, t)]
            parts.append(f"'{dat}' index {i} using 1:2 with boxes lc rgb '{colors[ti % 4]}' title '{name}'")
            parts.append(f"'{dat}' index {i} using 1:2:3 with labels rotate left offset 0,0.3 "
                         "font ',7' notitle")
        gp.append("plot " + ", \\\n  ".join(parts))
    gp.append("unset multiplot")
    (out / "ratios.gp").write_text("\n".join(gp) + "\n")
    r = subprocess.run(["gnuplot", str(out / "ratios.gp")], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("gnuplot failed:\n" + r.stderr)


if __name__ == "__main__":
    main()
