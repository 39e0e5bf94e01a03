"""Stand-in for psutil in the Cosmopolitan runs of greenlet's own suite.

psutil 7.2.2 cannot be built against Cosmopolitan, unmodified: its Linux
sources include Linux UAPI headers (linux/ethtool.h, linux/sockios.h,
linux/if.h) that Cosmopolitan's libc does not ship, and supplying the
kernel's own headers clashes with Cosmopolitan's run-time SIOC* constants
(libc/sysv/consts/sio.h).  greenlet's tests import psutil when their package
is imported and use it for one thing, ``Process().memory_full_info().uss``;
where that attribute is missing they skip ("uss not supported").  This module
provides exactly that: no measurement, so those tests skip, as upstream
intends on platforms where psutil has no USS.
"""


class _MemoryInfo:
    """memory_full_info() without ``uss``: the case greenlet's tests skip."""


class Process:
    def memory_full_info(self) -> _MemoryInfo:
        return _MemoryInfo()
