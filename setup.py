"""Builds the optional compiled Top-K select, ``src/topkshape/_topk_native.c``.

Everything else is configured in pyproject.toml. ``optional=True``: where no C compiler
is found the install still succeeds and :mod:`topkshape.ops` selects with numpy (the
same masks, 2-6x slower; ``topkshape.ops.cpu_selection()`` says which one runs). OpenMP
is asked for first (the select then runs on torch's OpenMP threads) and dropped where the
compiler lacks it.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP = ["-fopenmp"]


class BuildWithOpenMPIfAny(build_ext):
    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:  # noqa: BLE001 - distutils raises several unrelated types
            if not set(OPENMP) & set(ext.extra_compile_args):
                raise
            print(f"building {ext.name} without OpenMP ({error})")
            ext.extra_compile_args = [a for a in ext.extra_compile_args if a not in OPENMP]
            ext.extra_link_args = [a for a in ext.extra_link_args if a not in OPENMP]
            super().build_extension(ext)


setup(
    cmdclass={"build_ext": BuildWithOpenMPIfAny},
    ext_modules=[
        Extension(
            "topkshape._topk_native",
            ["src/topkshape/_topk_native.c"],
            extra_compile_args=["-O3", *OPENMP],
            extra_link_args=OPENMP,
            optional=True,
        )
    ],
)
