"""Build the compiled core: one extension per easyraft/_core/*.pyx.

EASYRAFT_CYTHON_TRACE=1 builds with line tracing (coverage of .pyx files);
EASYRAFT_CYTHON_ANNOTATE=1 writes the annotated HTML next to each .pyx.
"""
import glob
import os
import sys

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - pyproject pins Cython as a build requirement
    sys.exit("easyraft needs Cython>=3.0.8 to build (pip install Cython)")

TRACE = os.environ.get("EASYRAFT_CYTHON_TRACE") == "1"
ANNOTATE = os.environ.get("EASYRAFT_CYTHON_ANNOTATE") == "1"

directives = {
    "language_level": "3",
    "embedsignature": True,
    "cdivision": True,
    "initializedcheck": False,
}
macros = []
if TRACE:
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE_NOGIL", "1"))

extra_compile_args = [] if sys.platform == "win32" else ["-O3", "-fno-strict-aliasing"]

extensions = []
for path in sorted(glob.glob(os.path.join("easyraft", "_core", "*.pyx"))):
    name = os.path.splitext(path)[0].replace(os.sep, ".")
    extensions.append(
        Extension(
            name,
            [path],
            include_dirs=[os.path.join("easyraft", "_core")],
            define_macros=macros,
            extra_compile_args=extra_compile_args,
        )
    )

setup(
    # Compile the extensions in parallel: most of a clean install is gcc.
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=ANNOTATE,
        nthreads=os.cpu_count() or 1,
    ),
)
