// libFuzzer target: `nmesh plan` arguments (one per line or NUL-separated) through tools::RunCli.
#include <cstddef>
#include <cstdint>

#include "nmesh/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nmesh::fuzz::CheckPlanArgsInput(nmesh::fuzz::AsText(data, size));
  return 0;
}
