# FindHiredis
# -----------
# Finds hiredis, the C client of Redis (Debian libhiredis-dev), which the store rendezvous
# (comm/store) uses for redis:// stores.
#
# Result variables: Hiredis_FOUND, HIREDIS_INCLUDE_DIR (the directory holding hiredis/hiredis.h),
# HIREDIS_LIBRARY. Imported target: hiredis::hiredis.

find_path(HIREDIS_INCLUDE_DIR hiredis/hiredis.h HINTS ${HIREDIS_ROOT} $ENV{HIREDIS_ROOT}
          PATH_SUFFIXES include)
find_library(HIREDIS_LIBRARY NAMES hiredis HINTS ${HIREDIS_ROOT} $ENV{HIREDIS_ROOT}
             PATH_SUFFIXES lib lib64)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Hiredis REQUIRED_VARS HIREDIS_LIBRARY HIREDIS_INCLUDE_DIR)

if(Hiredis_FOUND AND NOT TARGET hiredis::hiredis)
  add_library(hiredis::hiredis UNKNOWN IMPORTED)
  set_target_properties(hiredis::hiredis PROPERTIES
    IMPORTED_LOCATION "${HIREDIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${HIREDIS_INCLUDE_DIR}")
endif()
mark_as_advanced(HIREDIS_INCLUDE_DIR HIREDIS_LIBRARY)
