// Prints the nmesh version; exits non-zero if the installed headers and library disagree.
#include <nmesh/nmesh.h>

#include <iostream>

int main() {
  std::string version = nmesh::VersionString();
  std::cout << "consumer linked nmesh " << version << "\n";
  return version == NMESH_VERSION_STRING ? 0 : 1;
}
