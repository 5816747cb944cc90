# Installs the nmesh build at NMESH_BUILD_DIR into a temporary prefix, then configures, builds and
# runs the consumer project against it, and checks pkg-config answers for the installed nmesh.pc.
set(prefix "${NMESH_WORK_DIR}/prefix")
set(build "${NMESH_WORK_DIR}/build")
file(REMOVE_RECURSE "${NMESH_WORK_DIR}")

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${what}:\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc})")
  endif()
  set(last_output "${out}" PARENT_SCOPE)
endfunction()

run_step("install" ${CMAKE_COMMAND} --install "${NMESH_BUILD_DIR}" --prefix "${prefix}")
# The consumer uses nmesh's compiler; a sanitized nmesh needs the sanitizer runtimes at link time.
set(consumer_flags "-DCMAKE_CXX_COMPILER=${NMESH_CXX_COMPILER}")
if(NMESH_SANITIZE)
  list(APPEND consumer_flags "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${NMESH_SANITIZE}")
endif()
run_step("configure consumer" ${CMAKE_COMMAND} -S "${NMESH_CONSUMER_SOURCE}" -B "${build}"
         -G Ninja "-DCMAKE_PREFIX_PATH=${prefix}" ${consumer_flags})
run_step("build consumer" ${CMAKE_COMMAND} --build "${build}")
run_step("run consumer" "${build}/consumer")
if(NOT last_output MATCHES "consumer linked nmesh [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "consumer printed an unexpected line: ${last_output}")
endif()

find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${prefix}/lib/pkgconfig")
run_step("pkg-config --modversion nmesh" ${PKG_CONFIG} --modversion nmesh)
run_step("pkg-config --cflags --libs nmesh" ${PKG_CONFIG} --cflags --libs nmesh)
if(NOT last_output MATCHES "-lnmesh_mesh")
  message(FATAL_ERROR "nmesh.pc does not list the libraries: ${last_output}")
endif()
