"""Same-run ratio table for the storage benchmarks (bench_crc32c/walrec/wal).

Each benchmark records its median under a group; the entry whose name starts
with "baseline" is the denominator of its group. The table is printed when
the module's benchmarks finish (run with -s to see it inline, or read the
pytest-benchmark table: the medians are the same numbers).
"""
import platform
import subprocess

RESULTS = {}   # group -> {name: (median seconds per op, units per op, unit)}


def record(group, name, benchmark, units_per_op=1.0, unit="op"):
    if benchmark.stats is None:          # --benchmark-disable
        return
    med = benchmark.stats.stats.median
    RESULTS.setdefault(group, {})[name] = (med, units_per_op, unit)
    benchmark.extra_info[f"{unit}_per_s"] = units_per_op / med


def table():
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    lines = [f"python {platform.python_version()} {platform.machine()} commit {commit}"]
    for group, rows in RESULTS.items():
        base = next((v for k, v in rows.items() if k.startswith("baseline")), None)
        lines.append(f"[{group}]")
        for name, (sec, units, unit) in rows.items():
            ratio = f"  time x{sec / base[0]:.2f} of baseline" if base else ""
            rate = units / sec
            rate_s = f"{rate:16,.0f}" if rate >= 100 else f"{rate:16.2f}"
            lines.append(f"  {name:<34} {sec * 1e6:12.1f} us/op {rate_s} {unit}/s{ratio}")
    return "\n".join(lines)


def print_table(config):
    """Print the table now, past pytest's output capture."""
    if not RESULTS:
        return
    cap = config.pluginmanager.getplugin("capturemanager")
    with cap.global_and_fixture_disabled():
        print("\n" + table())
