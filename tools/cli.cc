#include "tools/cli.h"

#include <exception>
#include <sstream>

#include "CLI/CLI.hpp"
#include "base/build_config.h"
#include "base/version.h"
#if NMESH_HAVE_NCCL
#include "comm/nccl/runtime.h"
#endif

namespace nmesh::tools {
namespace {

std::string VersionText() {
  std::ostringstream text;
  text << "nmesh " << VersionString() << "\n";
#if NMESH_HAVE_NCCL
  text << "backends: mpi, nccl (NCCL " << comm::nccl::LinkedNcclVersion() << ")\n";
#else
  text << "backends: mpi\n";
#endif
  return text.str();
}

}  // namespace

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"nmesh: n-dimensional device meshes over NCCL and MPI communicators", "nmesh"};
  app.require_subcommand(0, 1);
  bool show_version = false;
  app.add_flag("--version", show_version, "Print the version and the backends built, then exit");

  std::vector<std::string> rest(args.rbegin(), args.rend() - (args.empty() ? 0 : 1));
  try {
    app.parse(rest);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    err << "nmesh: error: " << e.what() << "\n";
    return kExitUsage;
  }
  if (show_version) {
    out << VersionText();
    return kExitOk;
  }
  out << app.help();
  return kExitUsage;
}

}  // namespace nmesh::tools
