import subprocess
import sys

import easyraft
import easyraft._core.codec
import easyraft._core.types


def test_core_modules_are_compiled():
    for mod in (easyraft._core.types, easyraft._core.codec):
        assert mod.__file__.endswith((".so", ".pyd")), mod.__file__


def test_version_from_command_line():
    out = subprocess.run(
        [sys.executable, "-m", "easyraft", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"easyraft {easyraft.__version__}"
