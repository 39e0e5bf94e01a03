# cosmoext stand-in toolchain: Clang for aarch64.  On an x86_64 host that is
# clang --target=aarch64-linux-gnu with aarch64-linux-gnu-ld and the aarch64
# sysroot (apt-get install g++-aarch64-linux-gnu).  Adds -ffixed-x18
# -ffixed-x28 as cosmocc does.
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=/path/to/cosmoext/toolchains/clang-aarch64.cmake
#
# Use it with find_package(cosmoext) and cosmoext_add_module(); _common.cmake
# lists the cache variables it sets.
set(_cx_toolchain clang)
set(_cx_arch aarch64)
include("${CMAKE_CURRENT_LIST_DIR}/_common.cmake")
