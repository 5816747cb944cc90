// Shared pieces of the programs that run an nmesh command and check its output (run_json_check,
// bench_json_check): a failure count and a string splitter. Header-only; one checker per program.
#ifndef NMESH_TESTS_CLI_CHECKER_H_
#define NMESH_TESTS_CLI_CHECKER_H_

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace nmesh::tools::testing {

// The program's name, prefixed to every failure (set it first thing in main).
inline std::string checker_name = "checker";
// The number of failures reported so far; the program exits 1 when it is not 0.
inline int failures = 0;

// Prints "<checker_name>: <what>" on stderr and counts it.
inline void Fail(const std::string& what) {
  std::cerr << checker_name << ": " << what << "\n";
  ++failures;
}

// `text` cut at each `sep` (an empty text gives no parts).
inline std::vector<std::string> Split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, sep);) parts.push_back(part);
  return parts;
}

}  // namespace nmesh::tools::testing

#endif  // NMESH_TESTS_CLI_CHECKER_H_
