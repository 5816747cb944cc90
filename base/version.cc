#include "nmesh/base/version.h"

#include "nmesh/base/build_config.h"

namespace nmesh {

std::string VersionString() { return NMESH_VERSION_STRING; }

bool HaveNccl() { return NMESH_HAVE_NCCL != 0; }

}  // namespace nmesh
