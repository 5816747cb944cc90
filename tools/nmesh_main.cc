// The `nmesh` executable. Everything lives in RunCli (tools/cli.h); here the process's standard
// streams are made safe to use and stdout's write errors are reported.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "nmesh/tools/cli.h"

namespace {

// A standard descriptor closed by the caller (`nmesh plan >&-`) would be taken by the next file
// nmesh opens, which would then receive the output. /dev/null opened read-only keeps the number
// taken, and every write to it fails (EBADF), which is reported at the end.
void HoldClosedStandardDescriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int held = ::open("/dev/null", O_RDONLY);
    if (held >= 0 && held != fd) ::close(held);
  }
}

// Flushes and closes stdout. A full disk, a closed or broken stdout: "nmesh: error: cannot write
// to stdout: <reason>" and exit 1 (an earlier failure's code is kept), rather than exit 0 with the
// output lost.
int FinishStdout(int code) {
  // std::cout writes through stdout (synchronised with stdio): its flush is stdout's, and the
  // errno of a failed write is the reason.
  errno = 0;
  std::cout.flush();
  int error = errno;
  const bool flushed = std::fflush(stdout) == 0;
  if (!flushed && error == 0) error = errno;
  const bool failed = !flushed || std::ferror(stdout) != 0 || !std::cout.good();
  if (failed && error == 0 && ::write(STDOUT_FILENO, "\n", 1) < 0) {
    error = errno;  // an earlier write's errno is gone: one more byte gives the reason again
  }
  errno = 0;
  const bool closed = std::fclose(stdout) == 0;
  if (!closed && error == 0) error = errno;
  if (!failed && closed) return code;
  const std::string reason = error != 0 ? std::strerror(error) : "a write failed";
  std::fprintf(stderr, "nmesh: error: cannot write to stdout: %s\n", reason.c_str());
  return code == nmesh::tools::kExitOk ? nmesh::tools::kExitRuntimeFailure : code;
}

}  // namespace

int main(int argc, char** argv) {
  HoldClosedStandardDescriptors();
  std::vector<std::string> args(argv, argv + argc);
  const int code = nmesh::tools::RunCli(args, std::cout, std::cerr);
  return FinishStdout(code);
}
