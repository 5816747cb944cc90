# Helpers that keep nmesh's target declarations short. Modelled on Abseil's absl_cc_library.

# nmesh_cc_library(NAME <name> [HDRS ...] [SRCS ...] [DEPS ...] [PRIVATE_DEPS ...]
#                  [INSTALL_DIR <dir under include/nmesh>] [NO_INSTALL])
# Declares target nmesh_<name> with alias nmesh::<name>. Headers install under
# include/nmesh/<INSTALL_DIR> (default: the current folder relative to the source root).
function(nmesh_cc_library)
  cmake_parse_arguments(ARG "NO_INSTALL" "NAME;INSTALL_DIR" "HDRS;SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target nmesh_${ARG_NAME})
  if(ARG_SRCS)
    add_library(${target} ${ARG_SRCS} ${ARG_HDRS})
    set(scope PUBLIC)
    # A header-only library used inside nmesh's sources (nlohmann-json) is no dependency of the
    # installed package, even for static archives.
    list(TRANSFORM ARG_PRIVATE_DEPS REPLACE "^(nlohmann_json::.*)$" "$<BUILD_INTERFACE:\\1>"
         OUTPUT_VARIABLE private_deps)
    target_link_libraries(${target} PRIVATE ${private_deps})
  else()
    add_library(${target} INTERFACE)
    set(scope INTERFACE)
  endif()
  add_library(nmesh::${ARG_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${ARG_NAME})
  target_include_directories(${target} ${scope}
    "$<BUILD_INTERFACE:${NMESH_BUILD_INCLUDE_DIRS}>"
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${target} ${scope} ${ARG_DEPS})
  # nmesh's headers are C++20: a consumer compiling them under its compiler's default standard
  # gets C++20 through the target.
  target_compile_features(${target} ${scope} cxx_std_20)
  # The same for nvcc in a consumer's .cu files, as a flag: CMake 3.25 knows no C++20 flag for
  # nvcc (the feature cuda_std_20 is an error there, CUDA_STANDARD 20 adds nothing). Left out where
  # the consumer asks for a later CUDA standard; nvcc takes a repeated identical -std silently.
  target_compile_options(${target} ${scope}
    "$<$<AND:$<COMPILE_LANG_AND_ID:CUDA,NVIDIA>,$<NOT:$<VERSION_GREATER:$<TARGET_PROPERTY:CUDA_STANDARD>,20>>>:-std=c++20>")
  if(ARG_SRCS)
    target_compile_options(${target} PRIVATE ${NMESH_WARNING_FLAGS})
    # Shared builds: an installed library finds the nmesh libraries it needs beside itself, wherever
    # the installed tree was moved.
    set_target_properties(${target} PROPERTIES INSTALL_RPATH "$ORIGIN")
  endif()
  if(NOT ARG_NO_INSTALL)
    if(NOT ARG_INSTALL_DIR)
      file(RELATIVE_PATH ARG_INSTALL_DIR "${PROJECT_SOURCE_DIR}" "${CMAKE_CURRENT_SOURCE_DIR}")
    endif()
    install(TARGETS ${target} EXPORT nmeshTargets
            ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
            LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
            RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
    set_property(GLOBAL APPEND PROPERTY NMESH_INSTALLED_LIBS ${target})
    # Each installed header and the path a consumer includes it by (tests/header_examples).
    # A header in a sub-folder of the target's folder (comm/watch/) keeps it when installed.
    foreach(header IN LISTS ARG_HDRS)
      get_filename_component(header_path "${header}" ABSOLUTE)
      file(RELATIVE_PATH header_name "${CMAKE_CURRENT_SOURCE_DIR}" "${header_path}")
      if(header_name MATCHES "^\\.\\./")  # generated elsewhere (base/build_config.h)
        get_filename_component(header_name "${header}" NAME)
      endif()
      get_filename_component(header_subdir "${header_name}" DIRECTORY)
      install(FILES ${header}
              DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/nmesh/${ARG_INSTALL_DIR}/${header_subdir})
      set_property(GLOBAL APPEND PROPERTY NMESH_INSTALLED_HEADERS "${header_path}")
      set_property(GLOBAL APPEND PROPERTY NMESH_INSTALLED_HEADER_INCLUDES
                   "nmesh/${ARG_INSTALL_DIR}/${header_name}")
    endforeach()
    set_property(GLOBAL APPEND PROPERTY NMESH_INSTALLED_DEPS ${ARG_DEPS})
    set_property(GLOBAL APPEND PROPERTY NMESH_INSTALLED_PRIVATE_DEPS ${ARG_PRIVATE_DEPS})
  endif()
endfunction()

set(NMESH_WARNING_FLAGS -Wall -Wextra -Wno-unused-parameter)

# nmesh_cc_test(NAME <name> SRCS ... [DEPS ...] [TIMEOUT s] [LABELS ...])
# A single-process GoogleTest binary, registered with ctest as <name> (run through
# tests/run_gtest.sh, below).
function(nmesh_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  target_compile_options(${ARG_NAME} PRIVATE ${NMESH_WARNING_FLAGS})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_test(NAME ${ARG_NAME}
           COMMAND ${PROJECT_SOURCE_DIR}/tests/run_gtest.sh
                   ${NMESH_GTEST_COUNTS_DIR}/${ARG_NAME}.txt $<TARGET_FILE:${ARG_NAME}>)
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "unit;${ARG_LABELS}"
                       SKIP_RETURN_CODE 77)
endfunction()

# Where tests/run_gtest.sh, through which every GoogleTest entry runs, writes each entry's case
# counts (scripts/test.sh adds them up); an entry whose cases all skipped exits 77, its
# SKIP_RETURN_CODE, and ctest reports it as skipped.
set(NMESH_GTEST_COUNTS_DIR ${PROJECT_BINARY_DIR}/Testing/gtest_cases)

# nmesh_mpi_test(NAME <name> SRCS ... [DEPS ...] [NP 1 2 4 8] [TIMEOUT s])
# A GoogleTest binary run under `mpirun -np N` for each N (through the project's mpirun wrapper and
# tests/run_gtest.sh), registered as <name>.npN. It links the MPI GoogleTest main
# (comm/mpi/testing), which reduces every verdict across ranks.
function(nmesh_mpi_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;NP;LABELS" ${ARGN})
  if(NOT ARG_NP)
    set(ARG_NP 1 2 4 8)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 180)
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} nmesh::mpi_gtest_main GTest::gmock)
  target_compile_options(${ARG_NAME} PRIVATE ${NMESH_WARNING_FLAGS})
  foreach(np IN LISTS ARG_NP)
    set(name ${ARG_NAME}.np${np})
    add_test(NAME ${name}
             COMMAND ${PROJECT_SOURCE_DIR}/tests/run_gtest.sh ${NMESH_GTEST_COUNTS_DIR}/${name}.txt
                     ${PROJECT_SOURCE_DIR}/scripts/mpirun.sh -np ${np} $<TARGET_FILE:${ARG_NAME}>)
    set_tests_properties(${name} PROPERTIES TIMEOUT ${ARG_TIMEOUT} PROCESSORS ${np}
                         LABELS "mpi;${ARG_LABELS}" SKIP_RETURN_CODE 77
                         ENVIRONMENT "NMESH_MPIEXEC=${MPIEXEC_EXECUTABLE}")
  endforeach()
endfunction()

# nmesh_add_mpi_test_command(<test name> <np> <timeout> <command...>)
# Registers a ctest entry that runs <command> under the project's mpirun wrapper, which adds the
# flags the MPI flavour needs (Open MPI: --oversubscribe, and --allow-run-as-root as root).
function(nmesh_add_mpi_test_command name np timeout)
  add_test(NAME ${name}
           COMMAND ${PROJECT_SOURCE_DIR}/scripts/mpirun.sh -np ${np} ${ARGN})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${timeout} PROCESSORS ${np}
                       ENVIRONMENT "NMESH_MPIEXEC=${MPIEXEC_EXECUTABLE}")
endfunction()

# Chooses the MPI flavour (NMESH_MPI_FLAVOR=openmpi|mpich) by pointing FindMPI at its wrappers.
macro(nmesh_find_mpi)
  if(NMESH_MPI_FLAVOR STREQUAL "openmpi")
    set(MPI_C_COMPILER mpicc.openmpi)
    set(MPIEXEC_EXECUTABLE /usr/bin/mpirun.openmpi)
  elseif(NMESH_MPI_FLAVOR STREQUAL "mpich")
    set(MPI_C_COMPILER mpicc.mpich)
    set(MPIEXEC_EXECUTABLE /usr/bin/mpiexec.mpich)
  elseif(NOT NMESH_MPI_FLAVOR STREQUAL "")
    message(FATAL_ERROR "NMESH_MPI_FLAVOR must be empty, openmpi or mpich, got '${NMESH_MPI_FLAVOR}'")
  endif()
  find_package(MPI REQUIRED COMPONENTS C)
  # nmesh uses the C API only; keep mpi.h from dragging in the deprecated C++ bindings.
  set_property(TARGET MPI::MPI_C APPEND PROPERTY
               INTERFACE_COMPILE_DEFINITIONS OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
  # The implementation, recorded in the installed package, which hands its consumers the same one:
  # openmpi or mpich, read from mpi.h.
  nmesh_mpi_implementation("${MPI_C_HEADER_DIR}" NMESH_MPI_IMPLEMENTATION)
  if(NOT NMESH_MPI_IMPLEMENTATION)
    message(FATAL_ERROR "nmesh: the MPI at ${MPI_C_HEADER_DIR} is neither Open MPI nor MPICH")
  endif()
  # Its compiler wrappers by absolute path (Debian names them mpicc.openmpi, mpicxx.mpich), for
  # consumers of the installed package (nmeshConfig.cmake).
  find_program(_nmesh_mpicc NAMES "${MPI_C_COMPILER}" NO_CACHE REQUIRED)
  get_filename_component(_nmesh_mpi_bin "${_nmesh_mpicc}" DIRECTORY)
  find_program(NMESH_MPI_C_WRAPPER NAMES mpicc.${NMESH_MPI_IMPLEMENTATION} mpicc
               HINTS "${_nmesh_mpi_bin}" NO_DEFAULT_PATH NO_CACHE)
  find_program(NMESH_MPI_CXX_WRAPPER NAMES mpicxx.${NMESH_MPI_IMPLEMENTATION} mpicxx mpic++
               HINTS "${_nmesh_mpi_bin}" NO_DEFAULT_PATH NO_CACHE)
  if(NOT NMESH_MPI_C_WRAPPER)
    set(NMESH_MPI_C_WRAPPER "${_nmesh_mpicc}")
  endif()
  message(STATUS "nmesh: MPI ${MPI_C_VERSION} (${NMESH_MPI_IMPLEMENTATION}, ${NMESH_MPI_C_WRAPPER}), "
                 "launcher ${MPIEXEC_EXECUTABLE}")
endmacro()

# nmesh_mpi_implementation(<mpi.h directory> <out>): openmpi or mpich, from the macros their mpi.h
# defines; empty for another implementation. nmeshConfig.cmake has the same test for the MPI a
# consumer finds.
function(nmesh_mpi_implementation header_dir out)
  set(implementation "")
  if(EXISTS "${header_dir}/mpi.h")
    file(STRINGS "${header_dir}/mpi.h" lines REGEX "#define (OMPI_MAJOR_VERSION|MPICH_VERSION)")
    if(lines MATCHES "OMPI_MAJOR_VERSION")
      set(implementation openmpi)
    elseif(lines MATCHES "MPICH_VERSION")
      set(implementation mpich)
    endif()
  endif()
  set(${out} "${implementation}" PARENT_SCOPE)
endfunction()

# NMESH_SANITIZE=address,undefined | thread applies to every target of the build.
macro(nmesh_configure_sanitizers)
  if(NMESH_SANITIZE)
    if(NOT NMESH_SANITIZE MATCHES "^(address|undefined|address,undefined|undefined,address|thread)$")
      message(FATAL_ERROR "NMESH_SANITIZE must be address,undefined or thread, got '${NMESH_SANITIZE}'")
    endif()
    add_compile_options(-fsanitize=${NMESH_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
    add_link_options(-fsanitize=${NMESH_SANITIZE})
    message(STATUS "nmesh: sanitizers ${NMESH_SANITIZE}")
  endif()
endmacro()

# NMESH_BUILD_FUZZERS=ON: every target gets libFuzzer coverage instrumentation plus ASan and UBSan
# (fuzz/ links the fuzzers with -fsanitize=fuzzer). clang only; use a separate build directory
# (scripts/fuzz.sh configures build-fuzz/ with CC=clang CXX=clang++).
macro(nmesh_configure_fuzzers)
  if(NMESH_BUILD_FUZZERS)
    if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
      message(FATAL_ERROR "NMESH_BUILD_FUZZERS needs clang (libFuzzer), got ${CMAKE_CXX_COMPILER_ID}: "
                          "configure a separate build directory with CC=clang CXX=clang++")
    endif()
    if(NMESH_SANITIZE)
      message(FATAL_ERROR "NMESH_BUILD_FUZZERS brings its own sanitizers (address,undefined); "
                          "leave NMESH_SANITIZE empty")
    endif()
    add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                        -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined)
    message(STATUS "nmesh: fuzzers ON (libFuzzer, address,undefined)")
  endif()
endmacro()

# Maps CMake dependencies to pkg-config modules (out_modules), or, where the dependency ships no
# .pc file, to linker flags (out_libs) and compiler flags (out_cflags).
function(nmesh_pkgconfig_modules deps out_modules out_libs out_cflags)
  set(modules "")
  set(libs "")
  set(cflags "")
  foreach(dep IN LISTS deps)
    if(dep MATCHES "^nmesh::")
      continue()
    elseif(dep MATCHES "^absl::(.+)$")
      list(APPEND modules "absl_${CMAKE_MATCH_1}")
    elseif(dep MATCHES "^yaml-cpp")
      list(APPEND modules yaml-cpp)
    elseif(dep STREQUAL "MPI::MPI_C")
      # The flavour's module (Open MPI ships ompi-c.pc; MPICH mpich.pc), without the C++ bindings
      # mpi.h would otherwise declare for C++ and leave unlinked.
      if(NMESH_MPI_IMPLEMENTATION STREQUAL "mpich")
        list(APPEND modules mpich)
        list(APPEND cflags -DMPICH_SKIP_MPICXX)
      else()
        list(APPEND modules ompi-c)
        list(APPEND cflags -DOMPI_SKIP_MPICXX)
      endif()
    elseif(dep STREQUAL "CUDA::toolkit" OR dep STREQUAL "NCCL::headers")
      # Headers only (native.h), from where they were found; the libraries are loaded at run time.
      get_target_property(dirs ${dep} INTERFACE_INCLUDE_DIRECTORIES)
      foreach(dir IN LISTS dirs)
        if(NOT dir STREQUAL "/usr/include")
          list(APPEND cflags "-I${dir}")
        endif()
      endforeach()
    elseif(dep STREQUAL "${CMAKE_DL_LIBS}")
      list(APPEND libs "-l${dep}")
    elseif(dep STREQUAL "gloo")
      # Debian's gloo ships a CMake package but no .pc file.
      get_target_property(gloo_lib gloo IMPORTED_LOCATION_RELWITHDEBINFO)
      if(gloo_lib)
        get_filename_component(gloo_dir "${gloo_lib}" DIRECTORY)
        list(APPEND libs "-L${gloo_dir}")
      endif()
      list(APPEND libs -lgloo)
    elseif(dep STREQUAL "hiredis::hiredis")
      list(APPEND modules hiredis)
    elseif(dep MATCHES "^nlohmann_json")
      # Header-only and used only inside nmesh's sources: nothing for a consumer to link.
    else()
      message(FATAL_ERROR "nmesh_write_pkgconfig: no pkg-config mapping for dependency '${dep}'")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES modules)
  list(REMOVE_DUPLICATES libs)
  list(REMOVE_DUPLICATES cflags)
  set(${out_modules} "${modules}" PARENT_SCOPE)
  set(${out_libs} "${libs}" PARENT_SCOPE)
  set(${out_cflags} "${cflags}" PARENT_SCOPE)
endfunction()

# Writes nmesh.pc from the libraries installed by nmesh_cc_library and what they link.
#
# The file is relocatable (prefix from ${pcfiledir}) and complete: `pkg-config --cflags --libs nmesh`
# alone builds and links a program. With static archives (the default) a consumer's link line needs
# every dependency, so they go in Requires/Libs; with BUILD_SHARED_LIBS the libraries carry their
# own dependencies and they go in Requires.private/Libs.private (used by `pkg-config --static`).
function(nmesh_write_pkgconfig)
  get_property(libs GLOBAL PROPERTY NMESH_INSTALLED_LIBS)
  get_property(deps GLOBAL PROPERTY NMESH_INSTALLED_DEPS)
  # Static archives need dependants before dependencies: reverse the declaration order.
  list(REVERSE libs)
  set(NMESH_PC_LIBS "")
  foreach(lib IN LISTS libs)
    string(APPEND NMESH_PC_LIBS " -l${lib}")
  endforeach()

  get_property(private_deps GLOBAL PROPERTY NMESH_INSTALLED_PRIVATE_DEPS)
  nmesh_pkgconfig_modules("${deps}" public_modules public_libs public_cflags)
  nmesh_pkgconfig_modules("${private_deps}" private_modules private_libs private_cflags)
  if(BUILD_SHARED_LIBS)
    # Public dependencies appear in nmesh's headers (Abseil's types, MPI through native.h): a
    # consumer compiles and links against them itself. Private ones only the libraries need.
    foreach(item IN LISTS public_modules)
      list(REMOVE_ITEM private_modules "${item}")
    endforeach()
    list(JOIN public_modules " " NMESH_PC_REQUIRES)
    list(JOIN private_modules " " NMESH_PC_REQUIRES_PRIVATE)
    list(JOIN private_libs " " NMESH_PC_LIBS_PRIVATE)
    list(JOIN public_libs " " libs)
  else()
    set(modules ${public_modules} ${private_modules})
    set(libs ${public_libs} ${private_libs})
    list(REMOVE_DUPLICATES modules)
    list(REMOVE_DUPLICATES libs)
    list(JOIN modules " " NMESH_PC_REQUIRES)
    set(NMESH_PC_REQUIRES_PRIVATE "")
    set(NMESH_PC_LIBS_PRIVATE "")
    list(JOIN libs " " libs)
  endif()
  string(APPEND NMESH_PC_LIBS " ${libs}")
  string(STRIP "${NMESH_PC_LIBS}" NMESH_PC_LIBS)
  # Only a consumer's compile of nmesh's headers needs these: the definitions that keep mpi.h's
  # C++ bindings out, and the CUDA and NCCL include directories for native.h. No -std: the
  # headers need C++20 or later (the variable cxx_std says so), and the consumer chooses which.
  set(cflags ${public_cflags} ${private_cflags})
  list(REMOVE_DUPLICATES cflags)
  list(JOIN cflags " " NMESH_PC_CFLAGS)

  set(pc_dir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
  if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
    set(NMESH_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  else()
    file(RELATIVE_PATH up "/${pc_dir}" "/")
    string(REGEX REPLACE "/$" "" up "${up}")
    set(NMESH_PC_PREFIX "\${pcfiledir}/${up}")
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/cmake/nmesh.pc.in ${PROJECT_BINARY_DIR}/nmesh.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/nmesh.pc DESTINATION ${pc_dir})
endfunction()
