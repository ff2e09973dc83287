"""Benchmarks: pytest-benchmark files named bench_*.py (STYLE 8.5).

`python -m pytest tests` never sees this directory (testpaths = tests); run
`python -m pytest benchmarks` (or one file) to time them. Figures are
reported as ratios to a baseline measured in the same run: a benchmark calls
the `figures` fixture with its group, and the one whose name starts with
"baseline" is the denominator of that group.
"""
import platform
import subprocess

import pytest

_FIGURES = {}   # group -> {name: (seconds per op, units per op, unit)}


def pytest_collect_file(file_path, parent):
    # pytest's default pattern is test_*.py; benchmark files are bench_*.py.
    # A file named on the command line is collected by pytest itself.
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def figures():
    """Return record(group, name, benchmark, units_per_op=1, unit="op")."""
    def record(group, name, benchmark, units_per_op=1, unit="op"):
        if benchmark.stats is None:        # --benchmark-disable: nothing measured
            return
        # The fastest round: on a shared machine the others measure the
        # neighbours as much as the code (timeit's advice).
        best = benchmark.stats.stats.min
        _FIGURES.setdefault(group, {})[name] = (best, units_per_op, unit)
        benchmark.extra_info[f"{unit}_per_s"] = units_per_op / best
    return record


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    tr = terminalreporter
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    tr.section("figures (best round; ratio to the same-run baseline of the group)")
    tr.write_line(f"python {platform.python_version()} on {platform.machine()}, commit {commit}")
    for group, rows in _FIGURES.items():
        base = next((v for k, v in rows.items() if k.startswith("baseline")), None)
        tr.write_line(f"[{group}]")
        for name, (sec, units, unit) in rows.items():
            rate = units / sec
            ratio = ""
            if base is not None:
                base_rate = base[1] / base[0]
                ratio = f"  x{rate / base_rate:.2f} vs baseline"
            tr.write_line(f"  {name:<40} {sec * 1e6:10.1f} us/op  {rate:14,.0f} {unit}/s{ratio}")
