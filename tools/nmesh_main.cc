// The `nmesh` executable. Everything lives in RunCli (tools/cli.h).
#include <iostream>
#include <string>
#include <vector>

#include "nmesh/tools/cli.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  return nmesh::tools::RunCli(args, std::cout, std::cerr);
}
