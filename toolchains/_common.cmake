# Shared body of the cosmoext toolchain files in this directory; not a
# toolchain file itself.  Each toolchain file sets _cx_toolchain (gnu | clang)
# and _cx_arch (x86_64 | aarch64) and includes this.
#
# It mirrors cosmoext/toolchain.py: get_toolchain() for the compilers and ld,
# Toolchain.flags() for the flags.  cosmoext_add_module() (find_package(cosmoext))
# reads the cache variables set here:
#   COSMOEXT_TOOLCHAIN  gnu | clang | cosmocc   (`cosmoext link --toolchain`)
#   COSMOEXT_ARCH       x86_64 | aarch64        (`cosmoext link --arch`)
#   COSMOEXT_TARGET     linux-gnu | cosmo       (`cosmoext link --target`)
#   COSMOEXT_LD         the binutils ld that merges the objects (`--ld`)
# CMAKE_POSITION_INDEPENDENT_CODE is the default of cosmoext_add_module's
# PIC / NO_PIC (ON here: host targets; cosmocc.cmake sets OFF).

set(COSMOEXT_TOOLCHAIN "${_cx_toolchain}" CACHE STRING "cosmoext toolchain (gnu, clang, cosmocc)")
set(COSMOEXT_ARCH "${_cx_arch}" CACHE STRING "architecture of the .cosmoext image")
set(COSMOEXT_TARGET "linux-gnu" CACHE STRING "target recorded in the .cosmoext image (cosmo or a host target)")

if(CMAKE_HOST_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(_cx_host_arch x86_64)
elseif(CMAKE_HOST_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  set(_cx_host_arch aarch64)
else()
  set(_cx_host_arch "${CMAKE_HOST_SYSTEM_PROCESSOR}")
endif()

if(NOT _cx_arch STREQUAL _cx_host_arch)
  # Cross build: objects only.  The images are linked by cosmoext, not by
  # CMake, so try_compile need not link an executable (no target libc needed).
  set(CMAKE_SYSTEM_NAME Linux)
  set(CMAKE_SYSTEM_PROCESSOR "${_cx_arch}")
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
  set(_cx_ld "${_cx_arch}-linux-gnu-ld")
  set(_cx_prefix "${_cx_arch}-linux-gnu-")
else()
  set(_cx_ld ld)
  set(_cx_prefix "")
endif()

if(_cx_toolchain STREQUAL "gnu")
  set(CMAKE_C_COMPILER "${_cx_prefix}gcc")
  set(CMAKE_CXX_COMPILER "${_cx_prefix}g++")
  set(CMAKE_ASM_COMPILER "${_cx_prefix}gcc")
elseif(_cx_toolchain STREQUAL "clang")
  set(CMAKE_C_COMPILER clang)
  set(CMAKE_CXX_COMPILER clang++)
  set(CMAKE_ASM_COMPILER clang)
  if(_cx_prefix)
    # clang --target=aarch64-linux-gnu; CMake adds the --target flag itself.
    set(CMAKE_C_COMPILER_TARGET "${_cx_arch}-linux-gnu")
    set(CMAKE_CXX_COMPILER_TARGET "${_cx_arch}-linux-gnu")
    set(CMAKE_ASM_COMPILER_TARGET "${_cx_arch}-linux-gnu")
  endif()
else()
  message(FATAL_ERROR "cosmoext toolchains/_common.cmake: unknown toolchain '${_cx_toolchain}'")
endif()
set(COSMOEXT_LD "${_cx_ld}" CACHE STRING "binutils ld used by cosmoext link to merge objects")

# Toolchain.flags(): every object gets its own sections; aarch64 reserves
# x18 and x28 as cosmocc does (x28 is its thread pointer).  -O2 / -fPIC /
# -fno-pic -fno-pie come from the build type and cosmoext_add_module.
set(_cx_flags "-ffunction-sections -fdata-sections")
if(_cx_arch STREQUAL "aarch64")
  string(APPEND _cx_flags " -ffixed-x18 -ffixed-x28")
endif()
set(CMAKE_C_FLAGS_INIT "${_cx_flags}")
set(CMAKE_CXX_FLAGS_INIT "${_cx_flags}")
set(CMAKE_ASM_FLAGS_INIT "${_cx_flags}")

# Host targets default to PIC images (what an ordinary CPython loads).
set(CMAKE_POSITION_INDEPENDENT_CODE ON CACHE BOOL "default for cosmoext_add_module (PIC)")
