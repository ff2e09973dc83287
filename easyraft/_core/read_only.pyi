# Type stub for the compiled easyraft._core.read_only (ReadIndex bookkeeping).
# Both classes are built only inside the core; Python sees their read-only views.
# tests/core/test_stubs.py checks it against the compiled module.
from typing import final

from easyraft._core.types import Message

@final
class ReadIndexStatus:
    @property
    def req(self) -> Message: ...
    @property
    def index(self) -> int: ...

@final
class ReadOnly:
    def __init__(self) -> None: ...
