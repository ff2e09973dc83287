"""The .pyi stubs of easyraft/_core against the compiled modules they describe.

mypy trusts the stubs and never sees the .pyx, so a stub that drifts from its
module hides real errors. For every compiled module this checks that:

- a module with public names has a stub, and both list the same public names;
- each stub class has the same public members as the runtime class;
- a function's or method's parameter names match (where Cython exposes them);
- an attribute the stub types as writable is writable, and a read-only one
  (a property without setter, i.e. `cdef readonly`) refuses assignment;
- an IntEnum in the stub is an IntEnum at runtime, with the same members and values.
"""
from __future__ import annotations

import ast
import enum
import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from easyraft._core.inflights import Inflights
from easyraft._core.log import RaftLog
from easyraft._core.progress import ProgressTracker
from easyraft._core.raft import CoreConfig, Raft
from easyraft._core.rawnode import ProgressStatus, RawNode
from easyraft._core.storage import MemoryStorage

CORE = Path(__file__).resolve().parents[2] / "easyraft" / "_core"
MODULES = sorted(p.stem for p in CORE.glob("*.pyx"))

# Instance attributes set in a Python __init__: not visible on the class.
INSTANCE_ATTRS = {("walrec", "RecordError"): {"offset", "reason"}}


def _config() -> CoreConfig:
    return CoreConfig(id=1, storage=MemoryStorage())


def _rawnode() -> RawNode:
    rn = RawNode(_config())
    rn.bootstrap([1])
    return rn


# Instances for the writable/read-only check, for classes that `cls()` cannot build.
FACTORIES: dict[str, Callable[[], object]] = {
    "Inflights": lambda: Inflights(4),
    "ProgressTracker": lambda: ProgressTracker(4),
    "RaftLog": lambda: RaftLog(MemoryStorage()),
    "Raft": lambda: Raft(_config()),
    "CoreConfig": _config,
    "RawNode": _rawnode,
    "Ready": lambda: _rawnode().ready(),
    "Status": lambda: _rawnode().status(),
    "ProgressStatus": lambda: ProgressStatus(1, 2, "probe", True, False, False, 0, 0),
    "Counters": lambda: importlib.import_module("easyraft._core.wire").Counters(),
    "SnapshotBuffer": lambda: importlib.import_module("easyraft._core.wire").SnapshotBuffer(8),
    "FrameReader": lambda: importlib.import_module("easyraft._core.wire").FrameReader(1024),
    "FrameQueue": lambda: importlib.import_module("easyraft._core.wire").FrameQueue(8, 1024),
    "Decoder": lambda: importlib.import_module("easyraft._core.walrec").Decoder(b""),
}


class StubClass:
    def __init__(self, node: ast.ClassDef) -> None:
        self.node = node
        self.bases = [ast.unparse(b) for b in node.bases]
        self.readonly: set[str] = set()     # @property without a setter
        self.writable: set[str] = set()     # annotated attributes
        self.values: dict[str, Any] = {}    # enum members
        self.functions: dict[str, ast.FunctionDef] = {}
        setters = set()
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                decorators = {ast.unparse(d) for d in item.decorator_list}
                if "property" in decorators:
                    self.readonly.add(item.name)
                elif any(d.endswith(".setter") for d in decorators):
                    setters.add(item.name)
                else:
                    self.functions[item.name] = item
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                self.writable.add(item.target.id)
            elif isinstance(item, ast.Assign):
                for t in item.targets:
                    if isinstance(t, ast.Name):
                        self.values[t.id] = ast.literal_eval(item.value)
        self.writable |= setters
        self.readonly -= setters

    @property
    def public(self) -> set[str]:
        names = self.readonly | self.writable | set(self.values) | set(self.functions)
        return {n for n in names if not n.startswith("_")}


def _stub(name: str) -> tuple[set[str], dict[str, StubClass], dict[str, ast.FunctionDef]]:
    """Public names, classes and functions that the stub of module `name` declares."""
    tree = ast.parse((CORE / f"{name}.pyi").read_text())
    names: set[str] = set()
    classes: dict[str, StubClass] = {}
    functions: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = StubClass(node)
            names.add(node.name)
        elif isinstance(node, ast.FunctionDef):
            functions[node.name] = node
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            # Only `import x as x` / `from m import x as x` re-export (PEP 484).
            names.update(a.asname for a in node.names if a.asname == a.name.split(".")[-1])
    return {n for n in names if not n.startswith("_")}, classes, functions


def _runtime_public(obj: object) -> set[str]:
    return {n for n in vars(obj) if not n.startswith("_")}


def _stub_params(fn: ast.FunctionDef) -> list[str]:
    a = fn.args
    return [p.arg for p in [*a.posonlyargs, *a.args, *a.kwonlyargs]] + (
        [f"*{a.vararg.arg}"] if a.vararg else []) + ([f"**{a.kwarg.arg}"] if a.kwarg else [])


def _runtime_params(fn: object) -> list[str] | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    out = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            out.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            out.append(f"**{p.name}")
        else:
            out.append(p.name)
    # A slot wrapper (a cdef class's __init__) says only (self, /, *args, **kwargs).
    return None if out[-2:] == ["*args", "**kwargs"] else out


def _check_function(where: str, stub_fn: ast.FunctionDef, runtime_fn: object,
                    problems: list[str]) -> None:
    want = _runtime_params(runtime_fn)
    got = _stub_params(stub_fn)
    if isinstance(runtime_fn, staticmethod):
        want = _runtime_params(runtime_fn.__func__)
    if want is not None and got != want:
        problems.append(f"{where}: stub parameters {got}, runtime {want}")


def _check_class(mod: str, name: str, stub: StubClass, cls: type, problems: list[str]) -> None:
    where = f"{mod}.{name}"
    runtime = _runtime_public(cls)
    if issubclass(cls, enum.Enum):
        runtime = set(cls.__members__)
        if not issubclass(cls, enum.IntEnum) or "enum.IntEnum" not in stub.bases:
            problems.append(f"{where}: runtime and stub must both be IntEnum")
        values = {k: int(v) for k, v in cls.__members__.items()}
        if values != stub.values:
            problems.append(f"{where}: stub members {stub.values}, runtime {values}")
    declared = stub.public | INSTANCE_ATTRS.get((mod, name), set())
    if declared != runtime | INSTANCE_ATTRS.get((mod, name), set()):
        problems.append(f"{where}: only in stub {sorted(declared - runtime)}, "
                        f"only at runtime {sorted(runtime - declared)}")
    for fname, fn in stub.functions.items():
        if fname in vars(cls) and (not fname.startswith("__") or fname == "__init__"):
            _check_function(f"{where}.{fname}", fn, vars(cls)[fname], problems)
    if not (stub.readonly | stub.writable) - INSTANCE_ATTRS.get((mod, name), set()):
        return
    factory = FACTORIES.get(name, cls)
    obj = factory()
    for attr in sorted(stub.readonly | stub.writable):
        if (mod, name) in INSTANCE_ATTRS or attr.startswith("_"):
            continue
        value = getattr(obj, attr)
        try:
            setattr(obj, attr, value)
            writable = True
        except AttributeError:
            writable = False
        if writable != (attr in stub.writable):
            problems.append(f"{where}.{attr}: stub says "
                            f"{'writable' if attr in stub.writable else 'read-only'}, "
                            f"runtime is {'writable' if writable else 'read-only'}")


@pytest.mark.parametrize("name", MODULES)
def test_stub_matches_compiled_module(name: str) -> None:
    mod = importlib.import_module(f"easyraft._core.{name}")
    assert mod.__file__ is not None and mod.__file__.endswith((".so", ".pyd")), mod.__file__
    runtime = _runtime_public(mod)
    if not (CORE / f"{name}.pyi").exists():
        assert not runtime, f"easyraft/_core/{name}.pyi is missing; public names: {sorted(runtime)}"
        return
    names, classes, functions = _stub(name)
    assert names == runtime, (f"only in stub {sorted(names - runtime)}, "
                              f"only at runtime {sorted(runtime - names)}")
    problems: list[str] = []
    for cname, stub_cls in classes.items():
        if not cname.startswith("_"):
            _check_class(name, cname, stub_cls, getattr(mod, cname), problems)
    for fname, fn in functions.items():
        _check_function(f"{name}.{fname}", fn, getattr(mod, fname), problems)
    assert not problems, "\n".join(problems)


def test_stub_helpers_see_readonly_and_writable() -> None:
    # The checker itself: Message fields are cdef public, Entry's cdef readonly.
    _, classes, _ = _stub("types")
    assert {"to", "frm", "entries", "snapshot"} <= classes["Message"].writable
    assert {"term", "index", "type", "data"} == classes["Entry"].readonly
