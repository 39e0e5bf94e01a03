"""Print gen_exports.py arguments for the running interpreter (host mode).

The Python C API comes from libpython's dynamic symbols when Python is a
shared build, else from the executable; libc/libm from the C compiler's view.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig


def _cc_file(cc: str, name: str) -> str | None:
    try:
        out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return out if os.path.isabs(out) and os.path.exists(out) else None


def host_args(cc: str = "cc") -> list[str]:
    args: list[str] = []
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    ldlib = sysconfig.get_config_var("LDLIBRARY") or ""
    shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
    lib = os.path.join(libdir, ldlib)
    if shared and os.path.exists(lib):
        args += ["--python-lib", lib]
    else:
        args += ["--python-lib", os.path.realpath(sys.executable)]
    for name in ("libc.so.6", "libm.so.6", "libc_nonshared.a"):
        path = _cc_file(cc, name)
        if path:
            args += ["--libc-lib", path]
    return args


if __name__ == "__main__":
    print(";".join(host_args(sys.argv[1] if len(sys.argv) > 1 else "cc")))
