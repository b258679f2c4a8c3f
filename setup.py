"""Build the optional compiled kernel of the exact GED solver; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and
``enas_tui.similarity.exact`` falls back to its pure-Python search (same answers, ~100x slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "enas_tui.similarity._exact_kernel",
            sources=["enas_tui/similarity/_exact_kernel.c"],
            optional=True,
        )
    ]
)
