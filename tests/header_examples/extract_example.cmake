# Writes a C++ file that compiles every example block of one installed header:
#   cmake -DHEADER=<path> -DINCLUDE=<nmesh/dir/name.h> -DNAMESPACE=<nmesh::dir> -DFUNCTION=<name>
#         [-DGIVENS=<file>] [-DSYSTEM_INCLUDES=a.h|b.h] -DOUTPUT=<file.cc> -P extract_example.cmake
#
# An example block, anywhere in the header (its leading comment, the comment above a class or a
# function, indented or not):
#   - a comment line is a line whose first non-blank characters are "//"; it is empty when only
#     blanks follow the "//", code when at least three spaces follow it ("//   code"), prose
#     otherwise;
#   - a block starts at a code line that follows an empty comment line ("//") or a line that is not
#     a comment (the start of the comment);
#   - it goes on over code lines and empty comment lines, and ends before the first line that is
#     neither (empty comment lines at its end are not part of it).
# A code line that follows a prose line is prose: the continuation of a list item or a quoted
# message ("//   - ..." after "// Fails with"), as are the code lines after it up to the next
# empty comment line or non-code line. So prose indented by three spaces or more must directly
# follow a line of prose, and an example must follow an empty comment line (or open the comment).
#
# Each block becomes the body of its own function `absl::Status FUNCTION_<n>(int argc, char**
# argv)` (n = 1, 2, ... in the header's order) inside NAMESPACE, after the header's own include,
# a few standard ones and GIVENS (declarations of what the examples take as given, e.g. a world
# communicator; one file per header, shared by all its blocks). The block sits in a scope of its
# own inside the function, so it may redeclare a given. A "#line" directive maps the block's lines
# to the header's, so a compiler error names the header and the line of the broken example.
# Nothing runs: the examples only compile.
cmake_minimum_required(VERSION 3.20)  # quoted strings are not variables (CMP0054)
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

# The blocks: block_<n>_first (the header line of its first line) and block_<n>_body (its lines,
# "//   " taken off, with an empty line for each empty comment line inside it).
set(count 0)
set(previous "none")  # the kind of the previous line: none, empty, prose or code
set(in_block FALSE)
set(pending "")       # empty comment lines seen inside a block, emitted if code follows
set(number 0)
foreach(line IN LISTS lines)
  math(EXPR number "${number} + 1")
  set(code_text "")
  if(line MATCHES "^[ \t]*//(.*)$")
    set(rest "${CMAKE_MATCH_1}")
    if(rest MATCHES "^[ \t]*$")
      set(kind "empty")
    elseif(rest MATCHES "^   (.*)$")
      set(kind "code")
      set(code_text "${CMAKE_MATCH_1}")
    else()
      set(kind "prose")
    endif()
  else()
    set(kind "none")
  endif()

  if(in_block)
    if(kind STREQUAL "code")
      string(APPEND block_${count}_body "${pending}  ${code_text}\n")
      set(pending "")
      set(block_${count}_last ${number})
    elseif(kind STREQUAL "empty")
      string(APPEND pending "\n")
    else()
      set(in_block FALSE)
      set(pending "")
    endif()
  elseif(kind STREQUAL "code")
    if(previous STREQUAL "none" OR previous STREQUAL "empty")
      math(EXPR count "${count} + 1")
      set(in_block TRUE)
      set(block_${count}_first ${number})
      set(block_${count}_last ${number})
      set(block_${count}_body "  ${code_text}\n")
    else()
      set(kind "prose")  # a continuation of prose; so are the code lines after it
    endif()
  endif()
  set(previous "${kind}")
endforeach()

# A givens file's "#include" lines go before the functions (e.g. the header that declares what a
# given is), the rest into each function's body.
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

set(content "// Generated from ${INCLUDE}'s example blocks by extract_example.cmake.
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
")
if(count EQUAL 0)
  string(APPEND content "\n// (this header has no example block)\n")
else()
  foreach(n RANGE 1 ${count})
    # After the block, the lines are the generated file's again: count them to say which.
    string(APPEND content "
// ${INCLUDE}, example block ${n} of ${count} (lines ${block_${n}_first}-${block_${n}_last}).
absl::Status ${FUNCTION}_${n}(int argc, char** argv) {
${givens}  {
#line ${block_${n}_first} \"${HEADER}\"
${block_${n}_body}")
    string(REGEX MATCHALL "\n" newlines "${content}")
    list(LENGTH newlines lines_so_far)
    math(EXPR next "${lines_so_far} + 2")
    string(APPEND content "#line ${next} \"${OUTPUT}\"
  }
  return absl::OkStatus();
}
")
  endforeach()
endif()
string(APPEND content "
}  // namespace ${NAMESPACE}
")
string(REPLACE "@SEMICOLON@" ";" content "${content}")
string(REPLACE "@LBRACKET@" "[" content "${content}")
string(REPLACE "@RBRACKET@" "]" content "${content}")

file(WRITE "${OUTPUT}.tmp" "${content}")
# Only touch the output when it changes, so that an unchanged header rebuilds nothing.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
