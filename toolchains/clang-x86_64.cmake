# cosmoext stand-in toolchain: Clang (clang, clang++; GNU ld) for x86_64.
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=/path/to/cosmoext/toolchains/clang-x86_64.cmake
#
# Use it with find_package(cosmoext) and cosmoext_add_module(); _common.cmake
# lists the cache variables it sets.
set(_cx_toolchain clang)
set(_cx_arch x86_64)
include("${CMAKE_CURRENT_LIST_DIR}/_common.cmake")
