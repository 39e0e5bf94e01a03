# cosmoext CMake package: build Python extension modules as .cosmoext images.
#
#   find_package(cosmoext CONFIG REQUIRED)     # after project(... LANGUAGES C [CXX])
#   cosmoext_add_module(spam [PIC|NO_PIC] spam.c helper.cpp)
#   cosmoext_install_module(spam DESTINATION mypkg)
#
# Found through CMAKE_PREFIX_PATH (scikit-build-core adds this directory via
# cosmoext's "cmake.prefix" entry point) or -Dcosmoext_DIR=$(python3 -m cosmoext.cmake).
#
# cosmoext_add_module(<name> [PIC | NO_PIC] [CXX] [MODULE_NAME <pyname>]
#                     [OUTPUT_DIRECTORY <dir>] [LIBRARIES <archive-or-target>...]
#                     [SOURCES] <source>...)
#   Compiles the sources into an OBJECT library target <name> with the flags
#   of cosmoext/toolchain.py (-ffunction-sections -fdata-sections, -fPIC or
#   -fno-pic -fno-pie [-mcmodel=small], -ffixed-x18 -ffixed-x28 on aarch64)
#   and the Python headers, then runs
#     ${Python_EXECUTABLE} -m cosmoext link --name <pyname> <objects> <libraries>
#         -o <dir>/<pyname>.cosmoext --toolchain .. --arch .. [--target ..] [--ld ..] [--cxx]
#   in the target <name>_cosmoext (built by `all`).  <name> is an ordinary
#   target: use target_compile_definitions / target_include_directories /
#   target_compile_features on it.  C++ sources (or CXX) add the static C++
#   runtime archives (libstdc++.a, libgcc.a, ...) to the image, as
#   `cosmoext build-ext` does.  LIBRARIES are static archives, or static
#   library targets, linked into the image; compile them with
#   cosmoext_apply_flags() so they have the same shape.
#   PIC / NO_PIC default: CMAKE_POSITION_INDEPENDENT_CODE if set (the cosmoext
#   toolchain files set it), else PIC for host targets and NO_PIC for cosmo.
#   The target property COSMOEXT_FILE holds the path of the .cosmoext file.
#
# cosmoext_apply_flags(<target> [PIC | NO_PIC])
#   Gives any target the compile flags of a cosmoext image.
#
# cosmoext_install_module(<name> DESTINATION <dir> [COMPONENT <component>])
#   install(FILES <the .cosmoext>); with scikit-build-core, DESTINATION is
#   relative to the wheel's platlib, e.g. DESTINATION mypkg.
#
# Settings (cache variables, normally set by a toolchain file in toolchains/):
#   COSMOEXT_TOOLCHAIN  gnu | clang | cosmocc  (default: from CMAKE_C_COMPILER_ID)
#   COSMOEXT_ARCH       x86_64 | aarch64       (default: from CMAKE_SYSTEM_PROCESSOR)
#   COSMOEXT_TARGET     cosmo | linux-gnu ...   (default: cosmo for cosmocc, else the host's)
#   COSMOEXT_LD         ld to merge objects     (default: the toolchain's)
#   COSMOEXT_CXX_RUNTIME static | shared        (default: static; the setting cxx-runtime)
#   COSMOEXT_PYTHON_INCLUDE_DIRS                (default: what build-ext uses for the arch)

include_guard(GLOBAL)

get_filename_component(_cosmoext_pkg_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
get_filename_component(_cosmoext_site_dir "${_cosmoext_pkg_dir}/.." ABSOLUTE)
set(COSMOEXT_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")
set(COSMOEXT_SUFFIX ".cosmoext")

if(NOT Python_EXECUTABLE)
  include(CMakeFindDependencyMacro)
  find_dependency(Python 3 COMPONENTS Interpreter)
endif()

# The link step runs `python -m cosmoext link` with the interpreter the
# extension is built for (its ABI is recorded in the image).  That interpreter
# normally imports cosmoext itself (pip --no-build-isolation, or cosmoext in
# the build requirements); if not, point PYTHONPATH at this copy.
set(_cosmoext_probe "import cosmoext, os, sys; print(cosmoext.__version__); print(os.path.dirname(os.path.abspath(cosmoext.__file__)))")
# Probe from the build directory: the link step runs there, and `python -c`
# / `-m` put the working directory first on sys.path.
execute_process(COMMAND "${Python_EXECUTABLE}" -c "${_cosmoext_probe}"
                WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}"
                RESULT_VARIABLE _cosmoext_rc OUTPUT_VARIABLE _cosmoext_out ERROR_VARIABLE _cosmoext_err
                OUTPUT_STRIP_TRAILING_WHITESPACE)
set(COSMOEXT_COMMAND_ENV "")
if(NOT _cosmoext_rc EQUAL 0)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${_cosmoext_site_dir}"
                          "${Python_EXECUTABLE}" -c "${_cosmoext_probe}"
                  WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}"
                  RESULT_VARIABLE _cosmoext_rc OUTPUT_VARIABLE _cosmoext_out ERROR_VARIABLE _cosmoext_err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  set(COSMOEXT_COMMAND_ENV "${CMAKE_COMMAND}" -E env "PYTHONPATH=${_cosmoext_site_dir}")
endif()
if(NOT _cosmoext_rc EQUAL 0)
  set(cosmoext_FOUND FALSE)
  set(cosmoext_NOT_FOUND_MESSAGE
      "${Python_EXECUTABLE} cannot import cosmoext (tried also with PYTHONPATH=${_cosmoext_site_dir}): ${_cosmoext_err}. Install cosmoext into that Python (pip install cosmoext) or set Python_EXECUTABLE.")
  return()
endif()
string(REPLACE "\n" ";" _cosmoext_out "${_cosmoext_out}")
list(GET _cosmoext_out 0 COSMOEXT_VERSION)
list(GET _cosmoext_out 1 COSMOEXT_PACKAGE_DIR)
message(STATUS "Found cosmoext ${COSMOEXT_VERSION}: ${COSMOEXT_PACKAGE_DIR} (link with ${Python_EXECUTABLE})")

# Resolve the settings: explicit cache variables win, then what the compilers say.
function(_cosmoext_settings out_tc out_arch out_target)
  if(COSMOEXT_TOOLCHAIN)
    set(tc "${COSMOEXT_TOOLCHAIN}")
  else()
    set(id "${CMAKE_C_COMPILER_ID}")
    if(NOT id)
      set(id "${CMAKE_CXX_COMPILER_ID}")
    endif()
    if(id MATCHES "Clang")
      set(tc clang)
    elseif(id STREQUAL "GNU")
      set(tc gnu)
    elseif(NOT id)
      message(FATAL_ERROR "cosmoext: no compiler is enabled: call find_package(cosmoext) after "
                          "project(... LANGUAGES C [CXX])")
    else()
      message(FATAL_ERROR "cosmoext: compiler '${id}' is not a cosmoext toolchain; use "
                          "gcc, clang or cosmocc (e.g. -DCMAKE_TOOLCHAIN_FILE=toolchains/gnu-x86_64.cmake)")
    endif()
  endif()
  if(NOT tc MATCHES "^(gnu|clang|cosmocc)$")
    message(FATAL_ERROR "cosmoext: COSMOEXT_TOOLCHAIN='${tc}' (choose gnu, clang or cosmocc)")
  endif()
  if(COSMOEXT_ARCH)
    set(arch "${COSMOEXT_ARCH}")
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set(arch x86_64)
  elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
    set(arch aarch64)
  else()
    message(FATAL_ERROR "cosmoext: unsupported processor '${CMAKE_SYSTEM_PROCESSOR}' "
                        "(set COSMOEXT_ARCH to x86_64 or aarch64)")
  endif()
  if(NOT arch MATCHES "^(x86_64|aarch64)$")
    message(FATAL_ERROR "cosmoext: COSMOEXT_ARCH='${arch}' (choose x86_64 or aarch64)")
  endif()
  if(COSMOEXT_TARGET)
    set(target "${COSMOEXT_TARGET}")
  elseif(tc STREQUAL "cosmocc")
    set(target cosmo)
  else()
    set(target "")  # cosmoext link: the host's (e.g. linux-gnu)
  endif()
  set(${out_tc} "${tc}" PARENT_SCOPE)
  set(${out_arch} "${arch}" PARENT_SCOPE)
  set(${out_target} "${target}" PARENT_SCOPE)
endfunction()

# The Python headers build-ext uses for ARCH (the cross headers for a cross build).
function(_cosmoext_python_includes tc arch out)
  if(COSMOEXT_PYTHON_INCLUDE_DIRS)
    set(${out} "${COSMOEXT_PYTHON_INCLUDE_DIRS}" PARENT_SCOPE)
    return()
  endif()
  get_property(cached GLOBAL PROPERTY _cosmoext_python_includes_${tc}_${arch})
  if(cached)
    set(${out} "${cached}" PARENT_SCOPE)
    return()
  endif()
  set(code [=[
import sys, sysconfig
try:
    from cosmoext.pipeline import python_include_dirs
    from cosmoext.settings import Settings
    dirs = python_include_dirs(sys.argv[1], Settings(toolchain=sys.argv[2],
                                                     cosmocc=sys.argv[3] or None))
except ImportError:
    dirs = [sysconfig.get_paths()["include"]]
print(";".join(dirs))
]=])
  execute_process(COMMAND ${COSMOEXT_COMMAND_ENV} "${Python_EXECUTABLE}" -c "${code}" "${arch}"
                          "${tc}" "${COSMOCC_ROOT}"
                  WORKING_DIRECTORY "${CMAKE_BINARY_DIR}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE dirs ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0 OR NOT dirs)
    message(FATAL_ERROR "cosmoext: cannot find the Python headers for ${arch}: ${err}")
  endif()
  set_property(GLOBAL PROPERTY _cosmoext_python_includes_${tc}_${arch} "${dirs}")
  set(${out} "${dirs}" PARENT_SCOPE)
endfunction()

function(_cosmoext_apply target pic tc arch)
  # Section and register flags, unless the toolchain file already put them
  # in CMAKE_<LANG>_FLAGS (then they would appear twice on every command).
  set(want -ffunction-sections -fdata-sections)
  if(arch STREQUAL "aarch64")
    list(APPEND want -ffixed-x18 -ffixed-x28)
  endif()
  set(opts "")
  foreach(lang C CXX ASM)
    separate_arguments(have UNIX_COMMAND "${CMAKE_${lang}_FLAGS}")
    foreach(flag IN LISTS want)
      if(NOT flag IN_LIST have)
        list(APPEND opts "$<$<COMPILE_LANGUAGE:${lang}>:${flag}>")
      endif()
    endforeach()
  endforeach()
  if(pic)
    set_property(TARGET ${target} PROPERTY POSITION_INDEPENDENT_CODE ON)  # -fPIC
  else()
    set_property(TARGET ${target} PROPERTY POSITION_INDEPENDENT_CODE OFF)
    list(APPEND opts -fno-pic -fno-pie)
    if(NOT tc STREQUAL "cosmocc")
      list(APPEND opts -mcmodel=small)
    endif()
  endif()
  # build-ext compiles with -O2; keep that when no build type chooses.
  if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
    list(APPEND opts -O2)
  endif()
  target_compile_options(${target} PRIVATE ${opts})
endfunction()

function(_cosmoext_pic_default target out)
  if(DEFINED CMAKE_POSITION_INDEPENDENT_CODE)
    set(pic ${CMAKE_POSITION_INDEPENDENT_CODE})
  elseif(target STREQUAL "cosmo")
    set(pic OFF)
  else()
    set(pic ON)
  endif()
  set(${out} ${pic} PARENT_SCOPE)
endfunction()

function(cosmoext_apply_flags target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "PIC;NO_PIC" "" "")
  if(ARG_PIC AND ARG_NO_PIC)
    message(FATAL_ERROR "cosmoext_apply_flags(${target}): PIC and NO_PIC are exclusive")
  endif()
  _cosmoext_settings(tc arch cx_target)
  if(ARG_PIC)
    set(pic ON)
  elseif(ARG_NO_PIC)
    set(pic OFF)
  else()
    _cosmoext_pic_default("${cx_target}" pic)
  endif()
  _cosmoext_apply(${target} ${pic} ${tc} ${arch})
endfunction()

function(cosmoext_add_module name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "PIC;NO_PIC;CXX" "MODULE_NAME;OUTPUT_DIRECTORY"
                        "SOURCES;LIBRARIES")
  set(sources ${ARG_UNPARSED_ARGUMENTS} ${ARG_SOURCES})
  if(NOT sources)
    message(FATAL_ERROR "cosmoext_add_module(${name}): no sources")
  endif()
  if(ARG_PIC AND ARG_NO_PIC)
    message(FATAL_ERROR "cosmoext_add_module(${name}): PIC and NO_PIC are exclusive")
  endif()
  set(modname "${name}")
  if(ARG_MODULE_NAME)
    set(modname "${ARG_MODULE_NAME}")
  endif()
  if(NOT modname MATCHES "^[A-Za-z_][A-Za-z0-9_]*$")
    message(FATAL_ERROR "cosmoext_add_module(${name}): module name '${modname}' is not an "
                        "identifier (use the last component, e.g. MODULE_NAME sub for pkg.sub)")
  endif()
  set(outdir "${CMAKE_CURRENT_BINARY_DIR}")
  if(ARG_OUTPUT_DIRECTORY)
    get_filename_component(outdir "${ARG_OUTPUT_DIRECTORY}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  set(out "${outdir}/${modname}${COSMOEXT_SUFFIX}")

  _cosmoext_settings(tc arch cx_target)
  if(ARG_PIC)
    set(pic ON)
  elseif(ARG_NO_PIC)
    set(pic OFF)
  else()
    _cosmoext_pic_default("${cx_target}" pic)
  endif()

  set(cxx ${ARG_CXX})
  foreach(src IN LISTS sources)
    get_source_file_property(lang "${src}" LANGUAGE)
    if(src MATCHES "\\.(cc|cpp|cxx|c\\+\\+|C)$" OR lang STREQUAL "CXX")
      set(cxx ON)
    endif()
  endforeach()

  add_library(${name} OBJECT ${sources})
  _cosmoext_apply(${name} ${pic} ${tc} ${arch})
  _cosmoext_python_includes(${tc} ${arch} py_includes)
  target_include_directories(${name} PRIVATE ${py_includes})

  set(libs "")
  set(lib_deps "")
  foreach(lib IN LISTS ARG_LIBRARIES)
    if(TARGET ${lib})
      list(APPEND libs "$<TARGET_FILE:${lib}>")
      list(APPEND lib_deps ${lib} "$<TARGET_FILE:${lib}>")
    else()
      get_filename_component(lib "${lib}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
      list(APPEND libs "${lib}")
      list(APPEND lib_deps "${lib}")
    endif()
  endforeach()

  set(link_args --name ${modname} -o "${out}" --toolchain ${tc} --arch ${arch})
  if(cx_target)
    list(APPEND link_args --target ${cx_target})
  endif()
  if(COSMOEXT_LD)
    list(APPEND link_args --ld "${COSMOEXT_LD}")
  endif()
  if(tc STREQUAL "cosmocc" AND COSMOCC_ROOT)
    list(APPEND link_args --cosmocc "${COSMOCC_ROOT}")
  endif()
  if(cxx)
    if(NOT CMAKE_CXX_COMPILER)
      message(FATAL_ERROR "cosmoext_add_module(${name}): C++ sources need CXX in project(... LANGUAGES C CXX)")
    endif()
    list(APPEND link_args --cxx --cxx-compiler "${CMAKE_CXX_COMPILER}")
    if(COSMOEXT_CXX_RUNTIME)
      list(APPEND link_args --cxx-runtime "${COSMOEXT_CXX_RUNTIME}")
    endif()
  endif()

  file(MAKE_DIRECTORY "${outdir}")
  add_custom_command(
    OUTPUT "${out}"
    WORKING_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}"
    COMMAND ${COSMOEXT_COMMAND_ENV} "${Python_EXECUTABLE}" -m cosmoext link ${link_args}
            "$<TARGET_OBJECTS:${name}>" ${libs}
    DEPENDS ${name} "$<TARGET_OBJECTS:${name}>" ${lib_deps}
    COMMENT "Linking ${modname}${COSMOEXT_SUFFIX} (${tc}, ${arch})"
    COMMAND_EXPAND_LISTS VERBATIM)
  add_custom_target(${name}_cosmoext ALL DEPENDS "${out}")
  set_target_properties(${name} PROPERTIES COSMOEXT_FILE "${out}" COSMOEXT_MODULE_NAME "${modname}")
endfunction()

function(cosmoext_install_module name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "DESTINATION;COMPONENT" "")
  if(NOT ARG_DESTINATION)
    message(FATAL_ERROR "cosmoext_install_module(${name}): DESTINATION is required")
  endif()
  get_target_property(file ${name} COSMOEXT_FILE)
  if(NOT file)
    message(FATAL_ERROR "cosmoext_install_module(${name}): not a cosmoext_add_module() target")
  endif()
  if(ARG_COMPONENT)
    install(FILES "${file}" DESTINATION "${ARG_DESTINATION}" COMPONENT "${ARG_COMPONENT}")
  else()
    install(FILES "${file}" DESTINATION "${ARG_DESTINATION}")
  endif()
endfunction()

set(cosmoext_FOUND TRUE)
