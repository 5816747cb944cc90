// libFuzzer target: a whole job's input, recipe text and flags, through `nmesh plan --config`.
#include <cstddef>
#include <cstdint>

#include "nmesh/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nmesh::fuzz::CheckJobInput(nmesh::fuzz::AsText(data, size));
  return 0;
}
