# The package tests. Each installs the nmesh build at NMESH_BUILD_DIR into a fresh prefix, moves the
# installed tree to another folder (the package must be relocatable), then builds and runs one kind
# of consumer (NMESH_CONSUMER_KIND) against it:
#   cmake_cxx   CMake, `project(... LANGUAGES CXX)`: find_package(nmesh), no C++ standard set; run
#               at np 4; its ldd shows no libnccl, libcudart or libmpi_cxx; the version check
#               accepts 0.1 and refuses 0.0, 0.2 and 1.0; a consumer finding the other MPI
#               (Open MPI or MPICH, where both are installed) is refused;
#   cmake_cuda  CMake, `LANGUAGES CXX CUDA`: a .cu file including every installed header, compiled
#               by nvcc with only the targets' flags; run where a GPU exists (SKIPPED otherwise, and
#               SKIPPED without nvcc);
#   pkgconfig   a Makefile that knows nmesh only through pkg-config; the .pc's flags checked; run
#               at np 4;
#   relocated   the installed tree copied elsewhere and the original removed; no package file names
#               the build, source or install folder; the CMake and pkg-config consumers build from
#               the copy and the CMake one runs at np 4;
#   cpu_only    the CMake consumer and the installed `nmesh` run at np 4 with the CUDA runtime and
#               NCCL hidden from the loader (ld.so --inhibit-cache --inhibit-rpath :): the auto
#               backend falls back to MPI, saying why; --backend nccl fails cleanly.
# Inputs: NMESH_CONSUMER_KIND, NMESH_BUILD_DIR, NMESH_SOURCE_DIR, NMESH_CONSUMER_SOURCE,
# NMESH_WORK_DIR, NMESH_CXX_COMPILER, NMESH_SANITIZE, NMESH_MPIRUN (scripts/mpirun.sh),
# NMESH_RECIPE (a recipe for 4 ranks with its tp and cp in NMESH_RECIPE_TP, NMESH_RECIPE_CP),
# NMESH_HAVE_NCCL, NMESH_MPI_IMPLEMENTATION (openmpi or mpich).
set(staging "${NMESH_WORK_DIR}/staging")
set(prefix "${NMESH_WORK_DIR}/moved/prefix")
file(REMOVE_RECURSE "${NMESH_WORK_DIR}")

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${what}:\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc})")
  endif()
  set(last_output "${out}${err}" PARENT_SCOPE)
endfunction()

# Runs a consumer binary at np 4 (through `launcher`, a list: empty, or the hidden-runtime loader)
# and checks every rank's verdict line; `backend` is passed on.
function(run_consumer what binary backend)
  run_step("${what}" ${NMESH_MPIRUN} -np 4 ${launcher} "${binary}" "${NMESH_RECIPE}"
           ${NMESH_RECIPE_TP} ${NMESH_RECIPE_CP} ${backend})
  foreach(rank RANGE 3)
    if(NOT last_output MATCHES "consumer: rank ${rank}: 8 groups verified")
      message(FATAL_ERROR "${what}: rank ${rank} did not verify its 8 groups:\n${last_output}")
    endif()
  endforeach()
  set(last_output "${last_output}" PARENT_SCOPE)
endfunction()

# Fails when `binary` (or a library it loads at start) needs one of the libraries in ARGN.
function(check_not_needed binary)
  find_program(LDD ldd REQUIRED)
  run_step("ldd ${binary}" ${LDD} "${binary}")
  foreach(library IN LISTS ARGN)
    if(last_output MATCHES "${library}")
      message(FATAL_ERROR "${binary} needs ${library} at load time:\n${last_output}")
    endif()
  endforeach()
endfunction()

function(configure_cmake_consumer dir)
  run_step("configure consumer (${dir})" ${CMAKE_COMMAND} -S "${NMESH_CONSUMER_SOURCE}"
           -B "${NMESH_WORK_DIR}/${dir}" -G Ninja "-DCMAKE_PREFIX_PATH=${prefix}"
           ${consumer_flags} ${ARGN})
  run_step("build consumer (${dir})" ${CMAKE_COMMAND} --build "${NMESH_WORK_DIR}/${dir}" -v)
  set(last_output "${last_output}" PARENT_SCOPE)
endfunction()

function(build_pkgconfig_consumer)
  find_program(PKG_CONFIG pkg-config REQUIRED)
  find_program(MAKE_PROGRAM NAMES make gmake REQUIRED)
  file(GLOB pc_file "${prefix}/lib*/pkgconfig/nmesh.pc" "${prefix}/lib/*/pkgconfig/nmesh.pc")
  if(NOT pc_file)
    message(FATAL_ERROR "no nmesh.pc under ${prefix}")
  endif()
  get_filename_component(pc_dir "${pc_file}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
  run_step("pkg-config --cflags --libs nmesh" ${PKG_CONFIG} --cflags --libs nmesh)
  set(pc_flags "${last_output}")
  run_step("build consumer (pkg-config Makefile)" ${MAKE_PROGRAM} -f
           "${NMESH_CONSUMER_SOURCE}/Makefile" "SRC=${NMESH_CONSUMER_SOURCE}"
           "OUT=${NMESH_WORK_DIR}/consumer_pc" "CXX=${NMESH_CXX_COMPILER}"
           "LDFLAGS=${link_flags}")
  set(pc_flags "${pc_flags}" PARENT_SCOPE)
endfunction()

if(NMESH_CONSUMER_KIND STREQUAL "relocated")
  # Installed, then copied elsewhere and the original removed.
  run_step("install" ${CMAKE_COMMAND} --install "${NMESH_BUILD_DIR}" --prefix "${staging}")
  file(MAKE_DIRECTORY "${prefix}")
  file(COPY "${staging}/" DESTINATION "${prefix}")
  file(REMOVE_RECURSE "${staging}")
  file(GLOB_RECURSE package_files "${prefix}/lib*/cmake/nmesh/*" "${prefix}/lib*/pkgconfig/*.pc")
  if(NOT package_files)
    message(FATAL_ERROR "no package files under ${prefix}")
  endif()
  foreach(file IN LISTS package_files)
    file(READ "${file}" text)
    foreach(path IN ITEMS "${NMESH_BUILD_DIR}" "${NMESH_SOURCE_DIR}" "${staging}"
                          "${NMESH_WORK_DIR}")
      string(FIND "${text}" "${path}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "${file} names the folder ${path}: the package is not relocatable")
      endif()
    endforeach()
  endforeach()
  list(LENGTH package_files count)
  message(STATUS "${count} package files name no build, source or install folder")
else()
  run_step("install" ${CMAKE_COMMAND} --install "${NMESH_BUILD_DIR}" --prefix "${staging}")
  get_filename_component(moved_dir "${prefix}" DIRECTORY)
  file(MAKE_DIRECTORY "${moved_dir}")
  file(RENAME "${staging}" "${prefix}")
endif()

# The consumer uses nmesh's compiler; a sanitized nmesh needs the sanitizer runtimes at link time.
set(consumer_flags "-DCMAKE_CXX_COMPILER=${NMESH_CXX_COMPILER}")
set(link_flags "")
if(NMESH_SANITIZE)
  set(link_flags "-fsanitize=${NMESH_SANITIZE}")
  list(APPEND consumer_flags "-DCMAKE_EXE_LINKER_FLAGS=${link_flags}")
endif()
set(launcher "")
set(cuda_libraries "libnccl[.]so" "libcudart[.]so")

if(NMESH_CONSUMER_KIND STREQUAL "cmake_cxx")
  configure_cmake_consumer(cxx)
  check_not_needed("${NMESH_WORK_DIR}/cxx/consumer" ${cuda_libraries} "lib(mpi_cxx|mpichcxx)[.]so")
  run_consumer("run consumer (LANGUAGES CXX)" "${NMESH_WORK_DIR}/cxx/consumer" mpi)
  # The version check: 0.1 is this version; another 0.y (older too) or 1.0 may have another API.
  foreach(requested IN ITEMS 0.1 0.0 0.2 1.0)
    set(dir "${NMESH_WORK_DIR}/version_${requested}")
    file(WRITE "${dir}/CMakeLists.txt"
         "cmake_minimum_required(VERSION 3.25)\nproject(v LANGUAGES CXX)\n"
         "find_package(nmesh ${requested} CONFIG)\nmessage(STATUS \"found=\${nmesh_FOUND}\")\n")
    run_step("find_package(nmesh ${requested})" ${CMAKE_COMMAND} -S "${dir}" -B "${dir}/build"
             "-DCMAKE_PREFIX_PATH=${prefix}" ${consumer_flags})
    if(requested STREQUAL "0.1" AND NOT last_output MATCHES "found=1")
      message(FATAL_ERROR "find_package(nmesh 0.1) did not accept this nmesh")
    elseif(NOT requested STREQUAL "0.1" AND last_output MATCHES "found=1")
      message(FATAL_ERROR "find_package(nmesh ${requested}) accepted this nmesh")
    endif()
  endforeach()

  # The MPI check: a consumer pointed at the other implementation's wrapper is refused, naming both.
  if(NMESH_MPI_IMPLEMENTATION STREQUAL "mpich")
    set(other openmpi)
  else()
    set(other mpich)
  endif()
  find_program(other_wrapper NAMES mpicxx.${other} NO_CACHE)
  if(other_wrapper)
    set(dir "${NMESH_WORK_DIR}/other_mpi")
    file(WRITE "${dir}/CMakeLists.txt"
         "cmake_minimum_required(VERSION 3.25)\nproject(m LANGUAGES CXX)\n"
         "find_package(nmesh 0.1 CONFIG)\nmessage(STATUS \"found=\${nmesh_FOUND}\")\n")
    run_step("find_package(nmesh) with ${other}" ${CMAKE_COMMAND} -S "${dir}" -B "${dir}/build"
             "-DCMAKE_PREFIX_PATH=${prefix}" "-DMPI_CXX_COMPILER=${other_wrapper}" ${consumer_flags})
    if(last_output MATCHES "found=1" OR NOT last_output MATCHES
       "nmesh was built against ${NMESH_MPI_IMPLEMENTATION}, but the MPI found is[ \n]+'${other}'")
      message(FATAL_ERROR "find_package(nmesh) did not refuse ${other}:\n${last_output}")
    endif()
  else()
    message(STATUS "the check against another MPI not run: no mpicxx.${other} here")
  endif()

elseif(NMESH_CONSUMER_KIND STREQUAL "cmake_cuda")
  find_program(NVCC nvcc HINTS /usr/local/cuda/bin)
  if(NOT NVCC)
    message(STATUS "SKIPPED: the CXX CUDA consumer (no nvcc found)")
    return()
  endif()
  # Every installed header, in one file the .cu includes.
  file(GLOB_RECURSE headers RELATIVE "${prefix}/include" "${prefix}/include/nmesh/*.h")
  list(SORT headers)
  set(text "// Every header of the installed nmesh.\n")
  foreach(header IN LISTS headers)
    string(APPEND text "#include \"${header}\"\n")
  endforeach()
  file(WRITE "${NMESH_WORK_DIR}/generated/nmesh_all_headers.h" "${text}")
  list(LENGTH headers count)
  configure_cmake_consumer(cuda -DCONSUMER_WITH_CUDA=ON "-DCMAKE_CUDA_COMPILER=${NVCC}"
                           "-DCONSUMER_GENERATED_DIR=${NMESH_WORK_DIR}/generated")
  message(STATUS "nvcc compiled the ${count} installed headers with the targets' flags")
  run_step("run cuda_consumer (np 1)" ${NMESH_MPIRUN} -np 1 "${NMESH_WORK_DIR}/cuda/cuda_consumer")
  if(NOT last_output MATCHES "SKIPPED: no CUDA device" AND
     NOT last_output MATCHES "cuda_consumer: rank 0: all_reduce of [0-9]+ floats")
    message(FATAL_ERROR "cuda_consumer gave no verdict:\n${last_output}")
  endif()

elseif(NMESH_CONSUMER_KIND STREQUAL "pkgconfig")
  build_pkgconfig_consumer()
  # Exactly what a consumer needs: MPI's C++ bindings kept out, no forced standard, no CUDA or
  # NCCL library to link (nmesh loads them at run time).
  if(NOT pc_flags MATCHES "-D(OMPI|MPICH)_SKIP_MPICXX")
    message(FATAL_ERROR "nmesh.pc does not keep MPI's C++ bindings out: ${pc_flags}")
  endif()
  foreach(unwanted IN ITEMS "-std=" "-lnccl" "-lcudart" "-lmpi_cxx")
    string(FIND "${pc_flags}" "${unwanted}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "nmesh.pc gives ${unwanted}: ${pc_flags}")
    endif()
  endforeach()
  check_not_needed("${NMESH_WORK_DIR}/consumer_pc" ${cuda_libraries} "lib(mpi_cxx|mpichcxx)[.]so")
  run_consumer("run consumer (pkg-config)" "${NMESH_WORK_DIR}/consumer_pc" mpi)

elseif(NMESH_CONSUMER_KIND STREQUAL "relocated")
  configure_cmake_consumer(cxx)
  run_consumer("run consumer (relocated prefix)" "${NMESH_WORK_DIR}/cxx/consumer" mpi)
  build_pkgconfig_consumer()

elseif(NMESH_CONSUMER_KIND STREQUAL "cpu_only")
  configure_cmake_consumer(cxx)
  set(consumer "${NMESH_WORK_DIR}/cxx/consumer")
  set(nmesh_tool "${prefix}/bin/nmesh")
  check_not_needed("${consumer}" ${cuda_libraries})
  check_not_needed("${nmesh_tool}" ${cuda_libraries})
  # The program's own loader, told to skip ld.so.cache and the programs' run paths: only
  # LD_LIBRARY_PATH-like paths given here and the system directories remain.
  find_program(READELF readelf REQUIRED)
  execute_process(COMMAND ${READELF} -l "${consumer}" OUTPUT_VARIABLE headers)
  if(NOT headers MATCHES "program interpreter: ([^]]+)]")
    message(FATAL_ERROR "no program interpreter in ${consumer}")
  endif()
  set(loader "${CMAKE_MATCH_1}")
  file(GLOB libdirs LIST_DIRECTORIES true "${prefix}/lib*")
  list(JOIN libdirs ":" libdirs)
  # The main program's name for --inhibit-rpath is empty: ":" is a list of empty names. A script,
  # because mpirun would read the loader's options as its own.
  set(launcher "${NMESH_WORK_DIR}/hidden_runtime.sh")
  file(WRITE "${launcher}" "#!/bin/sh\nexec '${loader}' --inhibit-cache --inhibit-rpath : "
                           "--library-path '${libdirs}' \"$@\"\n")
  file(CHMOD "${launcher}" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE)
  run_step("nmesh --version (CUDA hidden)" ${launcher} "${nmesh_tool}" --version)
  if(NOT NMESH_HAVE_NCCL)
    message(STATUS "nmesh built without NCCL: nothing to hide")
  elseif(NOT last_output MATCHES "not usable here: cannot load")
    message(STATUS "SKIPPED: cannot hide the CUDA runtime or NCCL from the loader (in a system "
                   "directory?):\n${last_output}")
    return()
  endif()
  run_consumer("run consumer, backend auto (CUDA hidden)" "${consumer}" auto)
  foreach(rank RANGE 3)
    if(NMESH_HAVE_NCCL AND NOT last_output MATCHES
       "consumer: rank ${rank}: backend mpi [(]auto: [^\n]*cannot load")
      message(FATAL_ERROR "rank ${rank} did not fall back to MPI saying why:\n${last_output}")
    endif()
  endforeach()
  run_step("nmesh run --backend auto (CUDA hidden)" ${NMESH_MPIRUN} -np 4 ${launcher}
           "${nmesh_tool}" run --tp 2 --backend auto)
  if(NOT last_output MATCHES "verified +yes")
    message(FATAL_ERROR "nmesh run did not verify its groups:\n${last_output}")
  endif()
  if(NMESH_HAVE_NCCL)
    execute_process(COMMAND ${NMESH_MPIRUN} -np 4 ${launcher} "${nmesh_tool}" run --tp 2
                            --backend nccl
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    message(STATUS "nmesh run --backend nccl (CUDA hidden): exit ${rc}\n${out}${err}")
    if(NOT rc EQUAL 1 OR NOT "${out}${err}" MATCHES "cannot load")
      message(FATAL_ERROR "--backend nccl without NCCL: expected exit 1 naming the library")
    endif()
  endif()

else()
  message(FATAL_ERROR "NMESH_CONSUMER_KIND must be cmake_cxx, cmake_cuda, pkgconfig, relocated or "
                      "cpu_only, got '${NMESH_CONSUMER_KIND}'")
endif()
