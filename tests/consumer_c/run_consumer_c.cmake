# The C-interface package test. Installs the nmesh build at NMESH_BUILD_DIR into a fresh prefix,
# moves it elsewhere, then, with a C compiler alone and `pkg-config nmesh-c`:
#   1. checks that the compile and link line names nothing but nmesh's include and library
#      directories and -lnmesh_c (no Abseil, no MPI, no C++ standard);
#   2. checks that libnmesh_c exports only nmesh_* symbols (no C++ or Abseil symbol is its ABI);
#   3. compiles nmesh/c/nmesh.h as C11 and as C++ with every warning an error;
#   4. builds tests/consumer_c/main.c and runs it under mpirun -np 4 over NMESH_RECIPE;
#   5. runs it over a missing recipe: exit 2 on every rank, the message naming the file.
# Inputs: NMESH_BUILD_DIR, NMESH_CONSUMER_SOURCE, NMESH_WORK_DIR, NMESH_C_COMPILER,
# NMESH_CXX_COMPILER, NMESH_SANITIZE, NMESH_MPIRUN, NMESH_RECIPE.
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

run_step("install" ${CMAKE_COMMAND} --install "${NMESH_BUILD_DIR}" --prefix "${staging}")
get_filename_component(moved_dir "${prefix}" DIRECTORY)
file(MAKE_DIRECTORY "${moved_dir}")
file(RENAME "${staging}" "${prefix}")

find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB pc_file "${prefix}/lib*/pkgconfig/nmesh-c.pc" "${prefix}/lib/*/pkgconfig/nmesh-c.pc")
if(NOT pc_file)
  message(FATAL_ERROR "no nmesh-c.pc under ${prefix}")
endif()
get_filename_component(pc_dir "${pc_file}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
run_step("pkg-config --cflags --libs nmesh-c" ${PKG_CONFIG} --cflags --libs nmesh-c)
string(STRIP "${last_output}" pc_line)
# 1. Only nmesh's directories and library.
separate_arguments(pc_flags UNIX_COMMAND "${pc_line}")
foreach(flag IN LISTS pc_flags)
  if(NOT (flag MATCHES "^-[IL](.*)$" AND CMAKE_MATCH_1 MATCHES "^${prefix}/") AND
     NOT flag STREQUAL "-lnmesh_c")
    message(FATAL_ERROR "nmesh-c.pc asks a C consumer for '${flag}', more than nmesh: '${pc_line}'")
  endif()
endforeach()
run_step("pkg-config --variable=libdir nmesh-c" ${PKG_CONFIG} --variable=libdir nmesh-c)
string(STRIP "${last_output}" libdir)

# 2. The exported symbols: nmesh_* only.
find_program(NM nm REQUIRED)
file(GLOB library "${libdir}/libnmesh_c.so")
if(NOT library)
  message(FATAL_ERROR "no libnmesh_c.so in ${libdir}")
endif()
run_step("nm -D --defined-only libnmesh_c.so" ${NM} -D --defined-only "${library}")
string(REPLACE "\n" ";" symbols "${last_output}")
set(exported 0)
foreach(line IN LISTS symbols)
  if(line MATCHES "^[0-9a-f]+ [A-Za-z] (.+)$")
    set(symbol "${CMAKE_MATCH_1}")
    if(NOT symbol MATCHES "^nmesh_" AND NOT symbol MATCHES "^(_init|_fini|_edata|_end|__bss_start)$"
       AND NOT symbol MATCHES "@")
      message(FATAL_ERROR "libnmesh_c.so exports '${symbol}', which is not part of the C ABI")
    endif()
    if(symbol MATCHES "^nmesh_")
      math(EXPR exported "${exported} + 1")
    endif()
  endif()
endforeach()
if(exported LESS 40)
  message(FATAL_ERROR "libnmesh_c.so exports ${exported} nmesh_* functions, expected the C ABI")
endif()

set(link_flags "")
if(NMESH_SANITIZE)
  set(link_flags "-fsanitize=${NMESH_SANITIZE}")
endif()
# 3. The header alone, as C11 and C++.
file(WRITE "${NMESH_WORK_DIR}/header_only.c" "#include \"nmesh/c/nmesh.h\"\nint main(void) { return nmesh_version() == 0; }\n")
run_step("nmesh.h as C11" ${NMESH_C_COMPILER} -std=c11 -pedantic -Wall -Wextra -Werror
         -fsyntax-only ${pc_flags} "${NMESH_WORK_DIR}/header_only.c")
run_step("nmesh.h as C++" ${NMESH_CXX_COMPILER} -x c++ -std=c++11 -pedantic -Wall -Wextra -Werror
         -fsyntax-only ${pc_flags} "${NMESH_WORK_DIR}/header_only.c")

# 4. Build with the C compiler and run at np 4.
run_step("build consumer_c" ${NMESH_C_COMPILER} -std=c11 -Wall -Wextra -Werror
         "${NMESH_CONSUMER_SOURCE}/main.c" ${pc_flags} "-Wl,-rpath,${libdir}" ${link_flags}
         -o "${NMESH_WORK_DIR}/consumer_c")
run_step("run consumer_c" ${NMESH_MPIRUN} -np 4 "${NMESH_WORK_DIR}/consumer_c" "${NMESH_RECIPE}")
foreach(rank RANGE 3)
  if(NOT last_output MATCHES "consumer_c: rank ${rank}: ok")
    message(FATAL_ERROR "consumer_c: rank ${rank} printed no verdict:\n${last_output}")
  endif()
endforeach()

# 5. A bad recipe: every rank gets the same error (agreed), exits 2 in order, nothing crashes.
execute_process(COMMAND ${NMESH_MPIRUN} -np 4 "${NMESH_WORK_DIR}/consumer_c"
                        "${NMESH_WORK_DIR}/no_such_recipe.yaml"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "run consumer_c on a missing recipe (${rc}):\n${out}${err}")
if(NOT rc EQUAL 2 OR NOT err MATCHES "consumer_c: [^\n]*no_such_recipe.yaml")
  message(FATAL_ERROR "a missing recipe should end every rank with exit 2 and a message naming it")
endif()
