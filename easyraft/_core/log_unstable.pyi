# Type stub for the compiled easyraft._core.log_unstable. Unstable has no
# Python-visible members: the core uses it through its .pxd.
# tests/core/test_stubs.py checks it against the compiled module.
from typing import final

@final
class Unstable:
    def __init__(self) -> None: ...
