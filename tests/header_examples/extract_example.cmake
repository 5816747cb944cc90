# Writes a C++ file that compiles the example of one installed header:
#   cmake -DHEADER=<path> -DINCLUDE=<nmesh/dir/name.h> -DNAMESPACE=<nmesh::dir> -DFUNCTION=<name>
#         [-DGIVENS=<file>] [-DSYSTEM_INCLUDES=a.h|b.h] -DOUTPUT=<file.cc> -P extract_example.cmake
# The example is the first block of lines of the header's leading comment (before its include
# guard) indented by at least three spaces ("//   code"), blank comment lines included; it ends at
# the first line of prose (indented less) after it. Its lines become the body of a function
# `absl::Status FUNCTION(int argc, char** argv)` inside NAMESPACE, after the header's own include,
# a few standard ones and GIVENS (declarations of what the example takes as given, e.g. a world
# communicator). Nothing runs: the example only compiles.
foreach(var HEADER INCLUDE NAMESPACE FUNCTION OUTPUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "extract_example.cmake needs -D${var}=...")
  endif()
endforeach()

file(READ "${HEADER}" text)
# CMake lists split on ';' and treat '[' ']' specially: hide them while working line by line.
string(REPLACE ";" "@SEMICOLON@" text "${text}")
string(REPLACE "[" "@LBRACKET@" text "${text}")
string(REPLACE "]" "@RBRACKET@" text "${text}")
string(REPLACE "\n" ";" lines "${text}")
set(body "")
set(count 0)
foreach(line IN LISTS lines)
  if(line MATCHES "^#")
    break()
  endif()
  if(line MATCHES "^//   (.*)$")
    string(APPEND body "  ${CMAKE_MATCH_1}\n")
    math(EXPR count "${count} + 1")
  elseif(count GREATER 0 AND NOT line MATCHES "^// *$")
    break()  # the prose after the example
  endif()
endforeach()
string(REPLACE "@SEMICOLON@" ";" body "${body}")
string(REPLACE "@LBRACKET@" "[" body "${body}")
string(REPLACE "@RBRACKET@" "]" body "${body}")

# A givens file's "#include" lines go before the function (e.g. the header that declares what a
# given is), the rest into its body.
set(givens "")
set(given_includes "")
if(GIVENS AND EXISTS "${GIVENS}")
  file(STRINGS "${GIVENS}" given_lines)
  foreach(line IN LISTS given_lines)
    if(line MATCHES "^#include")
      string(APPEND given_includes "${line}\n")
    else()
      string(APPEND givens "${line}\n")
    endif()
  endforeach()
endif()
set(system_includes "")
if(SYSTEM_INCLUDES)
  string(REPLACE "|" ";" system_list "${SYSTEM_INCLUDES}")
  foreach(name IN LISTS system_list)
    string(APPEND system_includes "#include <${name}>\n")
  endforeach()
endif()
set(note "")
if(count EQUAL 0)
  set(note "  // (this header's comment has no example)\n")
endif()

file(WRITE "${OUTPUT}.tmp" "// Generated from ${INCLUDE}'s leading comment by extract_example.cmake.
#include \"${INCLUDE}\"

${system_includes}#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include \"absl/status/status.h\"
#include \"absl/status/statusor.h\"
#include \"absl/time/time.h\"
#include \"absl/types/span.h\"
#include \"nmesh/base/status_macros.h\"
${given_includes}
namespace ${NAMESPACE} {

// Something an example takes as given; declared only (the examples are compiled, never run).
template <typename T>
T& Given();

absl::Status ${FUNCTION}(int argc, char** argv) {
${givens}${note}${body}  return absl::OkStatus();
}

}  // namespace ${NAMESPACE}
")
# Only touch the output when it changes, so that an unchanged header rebuilds nothing.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
