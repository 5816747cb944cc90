#include "nmesh/comm/nccl/library.h"

#include <dlfcn.h>

#include <atomic>
#include <string>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "nmesh/base/status_macros.h"

// The table resolves the functions by their plain names; per-thread default-stream builds rename
// some of them (cudaStreamQuery_ptsz) and would need other symbols.
#if defined(__CUDART_API_PER_THREAD_DEFAULT_STREAM)
#error "comm/nccl resolves the legacy default-stream CUDA runtime functions"
#endif

// The fault-tolerance entries are typed by hand (library.h): the same types and flags as the
// header's, where the header has them.
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 28, 0)
static_assert(
    std::is_same_v<nmesh::comm::nccl::NcclCommRevokeFunction, decltype(&::ncclCommRevoke)>);
static_assert(
    std::is_same_v<nmesh::comm::nccl::NcclCommShrinkFunction, decltype(&::ncclCommShrink)>);
static_assert(nmesh::comm::nccl::kNcclShrinkDefault == NCCL_SHRINK_DEFAULT);
static_assert(nmesh::comm::nccl::kNcclShrinkAbort == NCCL_SHRINK_ABORT);
static_assert(nmesh::comm::nccl::kNcclRevokeDefault == NCCL_REVOKE_DEFAULT);
#endif

namespace nmesh::comm::nccl {
namespace {

// dlopen's message, which names the library and why it was not loaded.
std::string LoaderError() {
  const char* error = dlerror();
  return error != nullptr ? error : "unknown error";
}

template <typename Function>
bool Resolve(void* handle, const char* name, Function& slot) {
  slot = reinterpret_cast<Function>(dlsym(handle, name));
  return slot != nullptr;
}

// The table SetLibraryForTesting installed, if any.
std::atomic<const Library*> scripted_library{nullptr};

absl::StatusOr<const Library*> Open() {
  // RTLD_LOCAL: the symbols serve this table only and never interpose on the program's own.
  const std::string cudart_soname = CudaRuntimeSoname();
  const std::string nccl_soname = NcclSoname();
  void* cudart = dlopen(cudart_soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (cudart == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the CUDA runtime: ", LoaderError()));
  }
  void* nccl = dlopen(nccl_soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (nccl == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("cannot load NCCL: ", LoaderError()));
  }
  // Never freed: the library stays loaded for the process, as a linked one would.
  auto* lib = new Library();
#define NMESH_NCCL_RESOLVE(handle, soname, name)                                           \
  if (!Resolve(handle, #name, lib->name)) {                                                \
    return absl::FailedPreconditionError(absl::StrCat(soname, " has no function " #name)); \
  }
#define NMESH_NCCL_RESOLVE_CUDART(name) NMESH_NCCL_RESOLVE(cudart, cudart_soname, name)
#define NMESH_NCCL_RESOLVE_NCCL(name) NMESH_NCCL_RESOLVE(nccl, nccl_soname, name)
  NMESH_CUDART_FUNCTIONS(NMESH_NCCL_RESOLVE_CUDART)
  NMESH_NCCL_FUNCTIONS(NMESH_NCCL_RESOLVE_NCCL)
  NMESH_NCCL_RESOLVE_CUDART(cudaMalloc)
#undef NMESH_NCCL_RESOLVE_NCCL
#undef NMESH_NCCL_RESOLVE_CUDART
#undef NMESH_NCCL_RESOLVE
#define NMESH_NCCL_RESOLVE_OPTIONAL(name) Resolve(nccl, #name, lib->name);
  NMESH_NCCL_OPTIONAL_FUNCTIONS(NMESH_NCCL_RESOLVE_OPTIONAL)
  NMESH_NCCL_RESOLVE_OPTIONAL(ncclCommRevoke)
  NMESH_NCCL_RESOLVE_OPTIONAL(ncclCommShrink)
#undef NMESH_NCCL_RESOLVE_OPTIONAL
  return lib;
}

}  // namespace

// CUDART_VERSION counts 1000 per major (13000 for 13.0); NCCL's library major is NCCL_MAJOR.
std::string CudaRuntimeSoname() { return absl::StrCat("libcudart.so.", CUDART_VERSION / 1000); }
std::string NcclSoname() { return absl::StrCat("libnccl.so.", NCCL_MAJOR); }

absl::StatusOr<const Library*> OpenLibrary() {
  if (const Library* scripted = scripted_library.load(std::memory_order_acquire)) return scripted;
  static const auto* const opened = new absl::StatusOr<const Library*>(Open());
  return *opened;
}

void SetLibraryForTesting(const Library* library) {
  scripted_library.store(library, std::memory_order_release);
}

const Library& Lib() {
  if (const Library* scripted = scripted_library.load(std::memory_order_acquire)) return *scripted;
  const absl::StatusOr<const Library*>& opened = OpenLibrary();
  NMESH_CHECK(opened.ok()) << "comm/nccl used before NCCL was loaded: " << opened.status();
  return **opened;
}

}  // namespace nmesh::comm::nccl
