import pytest


def pytest_sessionstart(session):
    # Guard against quietly testing an uncompiled tree (yarl's test_quoting_c_loaded).
    import easyraft._core.types as types_mod

    if not types_mod.__file__.endswith((".so", ".pyd")):
        raise pytest.UsageError(
            "easyraft._core is not compiled: run `pip install -e .[test]` "
            "or `python setup.py build_ext --inplace` first"
        )
