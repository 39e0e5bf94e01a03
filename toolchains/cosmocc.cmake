# cosmoext toolchain: Cosmopolitan's cosmocc / cosmoc++ (target "cosmo").
#
#   cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=/path/to/cosmoext/toolchains/cosmocc.cmake
#         [-DCOSMOCC_ROOT=/opt/cosmocc]      # else cosmocc must be on PATH
#
# NOT VERIFIED: cosmocc is not available on the machines this project is
# tested on, so this file has never been run.  It follows cosmoext/toolchain.py
# (get_toolchain("cosmocc")) and the facts in the design brief:
#  - cosmocc rejects -shared/-r/-pie, drops -fPIC and always adds -fno-pie:
#    its objects (and its libcxx.a) are non-PIC, small code model, so
#    CMAKE_POSITION_INDEPENDENT_CODE is OFF and cosmoext_add_module()
#    defaults to NO_PIC;
#  - cosmocc writes fat objects: x.o for x86_64 and .aarch64/x.o beside it.
#    cosmoext_add_module() links the image for COSMOEXT_ARCH (x86_64 unless
#    set) only; the aarch64 objects are not linked by this route yet;
#  - the objects are merged with cosmocc's own x86_64-linux-cosmo-ld.
# CMake never links an executable or shared library for a .cosmoext (cosmoext
# does the linking), so try_compile only builds static libraries.

set(COSMOCC_ROOT "$ENV{COSMOCC_ROOT}" CACHE PATH "cosmocc install root (holds bin/cosmocc)")
if(COSMOCC_ROOT)
  set(_cx_bin "${COSMOCC_ROOT}/bin/")
else()
  set(_cx_bin "")
endif()

set(CMAKE_C_COMPILER "${_cx_bin}cosmocc")
set(CMAKE_CXX_COMPILER "${_cx_bin}cosmoc++")
set(CMAKE_ASM_COMPILER "${_cx_bin}cosmocc")
set(CMAKE_AR "${_cx_bin}cosmoar" CACHE FILEPATH "archiver")
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(COSMOEXT_TOOLCHAIN cosmocc CACHE STRING "cosmoext toolchain (gnu, clang, cosmocc)")
set(COSMOEXT_ARCH x86_64 CACHE STRING "architecture of the .cosmoext image")
set(COSMOEXT_TARGET cosmo CACHE STRING "target recorded in the .cosmoext image")
set(COSMOEXT_LD "${_cx_bin}${COSMOEXT_ARCH}-linux-cosmo-ld" CACHE STRING
    "binutils ld used by cosmoext link to merge objects")

# Toolchain.flags("cosmocc", pic=False): own sections per function and
# object; -fno-pic -fno-pie are cosmocc's defaults (cosmoext_add_module adds
# them explicitly too); no -mcmodel (cosmocc picks the small model).
set(CMAKE_C_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_CXX_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_ASM_FLAGS_INIT "-ffunction-sections -fdata-sections")
set(CMAKE_POSITION_INDEPENDENT_CODE OFF CACHE BOOL "default for cosmoext_add_module (non-PIC)")
