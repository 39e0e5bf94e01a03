# cosmoext stand-in toolchain: GCC for aarch64.  On an x86_64 host that is
# aarch64-linux-gnu-gcc/g++/ld (apt-get install g++-aarch64-linux-gnu); on an
# aarch64 host, gcc/g++/ld.  Adds -ffixed-x18 -ffixed-x28 as cosmocc does.
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=/path/to/cosmoext/toolchains/gnu-aarch64.cmake
#
# Use it with find_package(cosmoext) and cosmoext_add_module(); _common.cmake
# lists the cache variables it sets.
set(_cx_toolchain gnu)
set(_cx_arch aarch64)
include("${CMAKE_CURRENT_LIST_DIR}/_common.cmake")
