"""Lint and type-check the source tree (as uvloop's tests/test_sourcecode.py does).

ruff checks easyraft/, tests/ and benchmarks/; mypy checks easyraft/ (with the
_core stubs) under the settings in pyproject.toml. Both come with the `test`
extra; a missing tool fails here rather than skipping, so CI cannot lose the check.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # From the repository root, so both tools read its pyproject.toml.
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_ruff() -> None:
    proc = _run("ruff", "check", "--no-fix", "easyraft", "tests", "benchmarks")
    assert proc.returncode == 0, f"ruff found problems:\n{proc.stdout}{proc.stderr}"


def test_mypy() -> None:
    proc = _run("mypy", "easyraft")
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"
