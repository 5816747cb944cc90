# The package test. Installs the nmesh build at NMESH_BUILD_DIR, moves the installed tree to another
# folder (the package must be relocatable), then builds the consumer project (tests/consumer)
# against it three ways and runs it under mpirun -np 4:
#   1. CMake, `project(... LANGUAGES CXX)`: find_package(nmesh), no C++ standard set;
#   2. CMake, `LANGUAGES CXX CUDA` (configure and build only; where nvcc is found);
#   3. nothing but `c++ main.cc $(pkg-config --cflags --libs nmesh)`.
# Inputs: NMESH_BUILD_DIR, NMESH_CONSUMER_SOURCE, NMESH_WORK_DIR, NMESH_CXX_COMPILER,
# NMESH_SANITIZE, NMESH_MPIRUN (scripts/mpirun.sh), NMESH_RECIPE (a recipe for 4 ranks with its
# tp and cp in NMESH_RECIPE_TP, NMESH_RECIPE_CP).
set(staging "${NMESH_WORK_DIR}/staging")
set(prefix "${NMESH_WORK_DIR}/moved/prefix")
file(REMOVE_RECURSE "${NMESH_WORK_DIR}")

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${what}:\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc})")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

# Runs a consumer binary at np 4 and checks every rank's verdict line.
function(run_consumer what binary)
  run_step("${what}" ${NMESH_MPIRUN} -np 4 "${binary}" "${NMESH_RECIPE}" ${NMESH_RECIPE_TP}
           ${NMESH_RECIPE_CP})
  foreach(rank RANGE 3)
    if(NOT last_output MATCHES "consumer: rank ${rank}: 8 groups verified")
      message(FATAL_ERROR "${what}: rank ${rank} did not verify its 8 groups:\n${last_output}")
    endif()
  endforeach()
endfunction()

run_step("install" ${CMAKE_COMMAND} --install "${NMESH_BUILD_DIR}" --prefix "${staging}")
get_filename_component(moved_dir "${prefix}" DIRECTORY)
file(MAKE_DIRECTORY "${moved_dir}")
file(RENAME "${staging}" "${prefix}")

# The consumer uses nmesh's compiler; a sanitized nmesh needs the sanitizer runtimes at link time.
set(consumer_flags "-DCMAKE_CXX_COMPILER=${NMESH_CXX_COMPILER}")
set(link_flags "")
if(NMESH_SANITIZE)
  set(link_flags "-fsanitize=${NMESH_SANITIZE}")
  list(APPEND consumer_flags "-DCMAKE_EXE_LINKER_FLAGS=${link_flags}")
endif()

# 1. CMake, C++ only.
run_step("configure consumer (LANGUAGES CXX)" ${CMAKE_COMMAND} -S "${NMESH_CONSUMER_SOURCE}"
         -B "${NMESH_WORK_DIR}/cxx" -G Ninja "-DCMAKE_PREFIX_PATH=${prefix}" ${consumer_flags})
run_step("build consumer (LANGUAGES CXX)" ${CMAKE_COMMAND} --build "${NMESH_WORK_DIR}/cxx")
run_consumer("run consumer (LANGUAGES CXX)" "${NMESH_WORK_DIR}/cxx/consumer")

# 2. CMake, C++ and CUDA.
find_program(NVCC nvcc HINTS /usr/local/cuda/bin)
if(NVCC)
  run_step("configure consumer (LANGUAGES CXX CUDA)" ${CMAKE_COMMAND} -S "${NMESH_CONSUMER_SOURCE}"
           -B "${NMESH_WORK_DIR}/cuda" -G Ninja "-DCMAKE_PREFIX_PATH=${prefix}"
           -DCONSUMER_WITH_CUDA=ON "-DCMAKE_CUDA_COMPILER=${NVCC}" ${consumer_flags})
  run_step("build consumer (LANGUAGES CXX CUDA)" ${CMAKE_COMMAND} --build "${NMESH_WORK_DIR}/cuda")
else()
  message(STATUS "SKIPPED: the CXX CUDA consumer (no nvcc found)")
endif()

# 3. pkg-config alone.
find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB pc_file "${prefix}/lib*/pkgconfig/nmesh.pc" "${prefix}/lib/*/pkgconfig/nmesh.pc")
if(NOT pc_file)
  message(FATAL_ERROR "no nmesh.pc under ${prefix}")
endif()
get_filename_component(pc_dir "${pc_file}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
run_step("pkg-config --modversion nmesh" ${PKG_CONFIG} --modversion nmesh)
run_step("pkg-config --cflags --libs nmesh" ${PKG_CONFIG} --cflags --libs nmesh)
string(STRIP "${last_output}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
# A shared nmesh outside the loader's paths needs the usual run path to its libdir.
run_step("pkg-config --variable=libdir nmesh" ${PKG_CONFIG} --variable=libdir nmesh)
string(STRIP "${last_output}" pc_libdir)
list(APPEND pc_flags "-Wl,-rpath,${pc_libdir}")
run_step("build consumer (pkg-config)" ${NMESH_CXX_COMPILER} "${NMESH_CONSUMER_SOURCE}/main.cc"
         -I "${NMESH_CONSUMER_SOURCE}/engine_include" ${pc_flags} ${link_flags}
         -o "${NMESH_WORK_DIR}/consumer_pc")
run_consumer("run consumer (pkg-config)" "${NMESH_WORK_DIR}/consumer_pc")
