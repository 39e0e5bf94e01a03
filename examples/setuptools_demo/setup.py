from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("cxdemo._speedups", ["src/cxdemo/_speedups.c"],
                  define_macros=[("CXDEMO_K", "3")]),
        Extension("cxdemo._sorted", ["src/cxdemo/_sorted.cpp"], language="c++",
                  extra_compile_args=["-std=c++17"]),
    ]
)
