// libFuzzer target: recipe text into config::ParseRecipe, both sections and with overrides.
#include <cstddef>
#include <cstdint>

#include "nmesh/fuzz/harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nmesh::fuzz::CheckRecipeInput(nmesh::fuzz::AsText(data, size));
  return 0;
}
