# cosmoext stand-in toolchain: GCC (gcc, g++, ld) for x86_64, the default
# route and the stand-in for cosmocc on machines without it.  PIC by default;
# cosmoext_add_module(NAME NO_PIC ...) gives cosmocc's non-PIC shape.
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=/path/to/cosmoext/toolchains/gnu-x86_64.cmake
#
# Use it with find_package(cosmoext) and cosmoext_add_module(); _common.cmake
# lists the cache variables it sets.
set(_cx_toolchain gnu)
set(_cx_arch x86_64)
include("${CMAKE_CURRENT_LIST_DIR}/_common.cmake")
