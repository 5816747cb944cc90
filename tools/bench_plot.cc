#include "nmesh/tools/bench_plot.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/file.h"
#include "nmesh/base/status_macros.h"

extern char** environ;

namespace nmesh::tools {
namespace {

using perf::BenchAxis;
using perf::BenchRow;

// A gnuplot string literal: single-quoted, quotes doubled.
std::string GnuplotQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') quoted += '\'';
    quoted += c;
  }
  return quoted + "'";
}

// Runs `program script` in `dir` with stdout into `out` (a descriptor) and stderr into `log`;
// returns its exit status.
absl::StatusOr<int> RunProgram(const std::string& program, const std::string& dir,
                               const std::string& script, int out, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out, STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  // In the private directory, the script names its files relatively: no path from outside (the
  // output's, TMPDIR's) ever appears in it.
  posix_spawn_file_actions_addchdir_np(&actions, dir.c_str());
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(script.c_str()),
                             nullptr};
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("cannot run '%s': %s (install gnuplot: scripts/install_deps.sh, or set "
                        "NMESH_GNUPLOT)",
                        program, std::strerror(rc)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrFormat("waiting for '%s' failed: %s", program, std::strerror(errno)));
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::Status PlotBench(const perf::BenchReport& report, const std::string& path) {
  const char* env = std::getenv("NMESH_GNUPLOT");
  const std::string program = env != nullptr && *env != '\0' ? env : "gnuplot";
  const char* tmp = std::getenv("TMPDIR");
  std::string dir_template =
      absl::StrFormat("%s/nmesh-plot-XXXXXX", tmp != nullptr && *tmp != '\0' ? tmp : "/tmp");
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrFormat("--plot: cannot create a temporary directory '%s': %s", dir_template,
                        std::strerror(errno)));
  }
  const std::filesystem::path dir(dir_template);
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{dir};

  // One data block per axis (gnuplot's "index"), separated by two blank lines.
  const std::string data = "busbw.dat";  // relative to `dir`, where gnuplot runs
  {
    std::ofstream file(dir / data);
    for (const BenchAxis& axis : report.axes) {
      file << "# " << axis.name << "\n";
      for (const BenchRow& row : axis.rows) {
        file << absl::StrFormat("%d %.9g\n", row.size, row.busbw);
      }
      file << "\n\n";
    }
  }
  std::vector<std::string> plots;
  for (size_t i = 0; i < report.axes.size(); ++i) {
    const BenchAxis& axis = report.axes[i];
    if (axis.rows.empty()) continue;
    plots.push_back(absl::StrFormat(
        "%s index %d using 1:2 with linespoints lw 2 pt 7 title %s", GnuplotQuote(data), i,
        GnuplotQuote(absl::StrFormat("%s (%d ranks)", axis.name, axis.group_size))));
  }
  if (plots.empty()) {
    return absl::FailedPreconditionError("--plot: no rows to plot (every size was too small)");
  }
  const std::string script = "plot.gp";
  {
    std::ofstream file(dir / script);
    file << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
         << "  set terminal pngcairo size 900,540 noenhanced font ',10'\n"
         << "} else {\n"
         << "  set terminal png size 900,540 noenhanced\n"
         << "}\n"
         << "set output\n"  // stdout, which nmesh opened on `path`: the path is never in the script
         << "set title "
         << GnuplotQuote(absl::StrFormat("nmesh bench: %s (float32), backend %s, %d ranks",
                                         perf::BenchOpName(report.op), report.backend,
                                         report.world_size))
         << "\n"
         << "set xlabel 'message size (bytes)'\n"
         << "set ylabel 'bus bandwidth (GB/s)'\n"
         << "set logscale x 2\n"
         << "set format x '%.0b%B'\n"
         << "set yrange [0:*]\n"
         << "set grid\n"
         << "set key left top\n"
         << "plot " << absl::StrJoin(plots, ", \\\n     ") << "\n"
         << "unset output\n";
  }
  const std::string log = (dir / "gnuplot.log").string();
  // The image goes where `path` names, into a file nmesh creates: never through a link placed
  // there, never over an existing file.
  absl::StatusOr<int> created = CreateNewFile(path);
  if (!created.ok()) {
    return absl::FailedPreconditionError(absl::StrFormat("--plot: %s", created.status().message()));
  }
  const int out = *created;
  const std::string quoted = Abbreviate(path, kMaxQuotedPathBytes);
  absl::StatusOr<int> exit_code = RunProgram(program, dir.string(), script, out, log);
  struct stat written {};
  const bool sized = ::fstat(out, &written) == 0;
  const bool closed = ::close(out) == 0;
  if (!exit_code.ok() || *exit_code != 0 || !sized || written.st_size == 0 || !closed) {
    ::unlink(path.c_str());  // what was written there is not an image
  }
  NMESH_RETURN_IF_ERROR(exit_code.status());
  if (*exit_code != 0) {
    std::string output = ReadFile(log);
    if (output.size() > 2000) output = output.substr(0, 2000) + "...";
    return absl::FailedPreconditionError(
        absl::StrFormat("--plot: %s exited with status %d while drawing '%s': %s", program,
                        *exit_code, quoted, output));
  }
  if (!sized || written.st_size == 0 || !closed) {
    return absl::FailedPreconditionError(
        absl::StrFormat("--plot: %s wrote no image to '%s'", program, quoted));
  }
  return absl::OkStatus();
}

absl::Status CheckPlotWritable(const std::string& path) {
  // Bad input, like a bad flag: a usage error (exit 2), found before the sweep. An existing file
  // (or link) there is one too: nmesh never overwrites a file.
  absl::StatusOr<int> created = CreateNewFile(path);
  if (!created.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("--plot: %s", created.status().message()));
  }
  ::close(*created);
  ::unlink(path.c_str());
  return absl::OkStatus();
}

}  // namespace nmesh::tools
