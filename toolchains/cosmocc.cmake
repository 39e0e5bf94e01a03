# cosmoext toolchain: Cosmopolitan's cosmocc (target "cosmo"), one architecture.
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=/path/to/cosmoext/toolchains/cosmocc.cmake
#         [-DCOSMOCC_ROOT=/opt/cosmocc] [-DCOSMOEXT_ARCH=aarch64]
#
# COSMOCC_ROOT (or $COSMOCC) is the folder holding bin/cosmocc; else cosmocc
# is looked up on PATH.  The compilers are cosmocc's per-architecture ones
# (x86_64-unknown-cosmo-cc ...), which add Cosmopolitan's flags (TLS through
# tlscc or x28, patchable entries, -ffixed-x18/x28); their objects are
# non-PIC, so cosmoext_add_module() defaults to NO_PIC.  The Python headers
# come from the Cosmopolitan CPython build named by $COSMO_PYTHON (cosmoext's
# cosmo-python setting).  One configure makes one architecture's image; for a
# fat file use `cosmoext build-ext --arch x86_64,aarch64` or the backend.
# CMake never links an executable or shared library for a .cosmoext (cosmoext
# does the linking), so try_compile only builds static libraries.

set(COSMOCC_ROOT "$ENV{COSMOCC}" CACHE PATH "cosmocc toolchain folder (holds bin/cosmocc)")
if(NOT COSMOCC_ROOT)
  find_program(_cx_cosmocc cosmocc REQUIRED)
  get_filename_component(_cx_cosmocc "${_cx_cosmocc}" REALPATH)
  get_filename_component(_cx_bin "${_cx_cosmocc}" DIRECTORY)
  get_filename_component(_cx_root "${_cx_bin}" DIRECTORY)
  set(COSMOCC_ROOT "${_cx_root}" CACHE PATH "cosmocc toolchain folder (holds bin/cosmocc)" FORCE)
endif()
set(COSMOEXT_ARCH x86_64 CACHE STRING "architecture of the .cosmoext image (x86_64, aarch64)")
set(_cx_bin "${COSMOCC_ROOT}/bin/${COSMOEXT_ARCH}")

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR ${COSMOEXT_ARCH})
set(CMAKE_C_COMPILER "${_cx_bin}-unknown-cosmo-cc")
set(CMAKE_CXX_COMPILER "${_cx_bin}-unknown-cosmo-c++")
set(CMAKE_ASM_COMPILER "${_cx_bin}-unknown-cosmo-cc")
set(CMAKE_AR "${_cx_bin}-linux-cosmo-ar" CACHE FILEPATH "archiver")
set(CMAKE_RANLIB "${_cx_bin}-linux-cosmo-ranlib" CACHE FILEPATH "ranlib")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(COSMOEXT_TOOLCHAIN cosmocc CACHE STRING "cosmoext toolchain (gnu, clang, cosmocc)")
set(COSMOEXT_TARGET cosmo CACHE STRING "target recorded in the .cosmoext image")
set(COSMOEXT_LD "${_cx_bin}-linux-cosmo-ld" CACHE STRING
    "binutils ld used by cosmoext link to merge objects")

# Toolchain.flags() for cosmocc: own sections per function and object.
set(CMAKE_C_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_POSITION_INDEPENDENT_CODE OFF CACHE BOOL "default for cosmoext_add_module (non-PIC)")
