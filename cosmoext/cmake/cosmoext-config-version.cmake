# Version file for find_package(cosmoext <version> CONFIG): the version is
# read from the package's __init__.py so there is one place to change it.
# Compatibility: same major version (0.x: same minor), at least the version asked.
file(STRINGS "${CMAKE_CURRENT_LIST_DIR}/../__init__.py" _cx_line
     REGEX "^__version__ = \"[^\"]+\"")
string(REGEX REPLACE "^__version__ = \"([^\"]+)\".*" "\\1" PACKAGE_VERSION "${_cx_line}")
unset(_cx_line)

set(PACKAGE_VERSION_COMPATIBLE FALSE)
set(PACKAGE_VERSION_EXACT FALSE)
if(PACKAGE_FIND_VERSION)
  string(REGEX MATCH "^[0-9]+\\.[0-9]+" _cx_have_mm "${PACKAGE_VERSION}")
  string(REGEX MATCH "^[0-9]+\\.[0-9]+" _cx_want_mm "${PACKAGE_FIND_VERSION}")
  string(REGEX MATCH "^[0-9]+" _cx_have_major "${PACKAGE_VERSION}")
  if(PACKAGE_VERSION VERSION_GREATER_EQUAL PACKAGE_FIND_VERSION
     AND PACKAGE_FIND_VERSION_MAJOR EQUAL _cx_have_major
     AND (NOT _cx_have_major EQUAL 0 OR _cx_have_mm VERSION_EQUAL _cx_want_mm))
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
  if(PACKAGE_VERSION VERSION_EQUAL PACKAGE_FIND_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
  unset(_cx_have_mm)
  unset(_cx_want_mm)
  unset(_cx_have_major)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
