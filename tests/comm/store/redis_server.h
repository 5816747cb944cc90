// A redis-server for tests: started on a free 127.0.0.1 port in a fresh temporary directory, with
// no persistence (--save '' --appendonly no), and stopped by its PID (SIGTERM, then SIGKILL) when
// the object goes. Start() is NotFound when no redis-server is on PATH (tests skip visibly).
//
//   absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
//   if (absl::IsNotFound(server.status())) GTEST_SKIP() << server.status();
//   std::string url = (*server)->url();  // "redis://127.0.0.1:PORT"
#ifndef NMESH_TESTS_COMM_STORE_REDIS_SERVER_H_
#define NMESH_TESTS_COMM_STORE_REDIS_SERVER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace nmesh::testing {

class RedisServer {
 public:
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start() {
    const std::string binary = FindOnPath("redis-server");
    if (binary.empty()) return absl::NotFoundError("no redis-server on PATH");
    for (int attempt = 0; attempt < 5; ++attempt) {
      const int port = FreePort();
      if (port <= 0) return absl::UnavailableError("no free loopback port");
      std::string dir_template = (std::filesystem::temp_directory_path() / "nmesh_redis_XXXXXX");
      if (mkdtemp(dir_template.data()) == nullptr) return absl::InternalError("mkdtemp failed");
      std::unique_ptr<RedisServer> server(new RedisServer(dir_template, port));
      const std::string port_text = std::to_string(port);
      std::vector<std::string> args = {binary,
                                       "--port",
                                       port_text,
                                       "--bind",
                                       "127.0.0.1",
                                       "--save",
                                       "",
                                       "--appendonly",
                                       "no",
                                       "--dir",
                                       dir_template,
                                       "--daemonize",
                                       "no",
                                       "--loglevel",
                                       "warning",
                                       "--logfile",
                                       dir_template + "/redis.log"};
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      const pid_t pid = fork();
      if (pid < 0) return absl::InternalError("fork failed");
      if (pid == 0) {
        execv(binary.c_str(), argv.data());
        _exit(127);
      }
      server->pid_ = pid;
      if (server->WaitUntilListening()) return server;
      // The port was taken meanwhile, or the server failed: try another.
    }
    return absl::UnavailableError("redis-server did not start listening");
  }

  ~RedisServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      for (int i = 0; i < 200; ++i) {
        if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  int port() const { return port_; }
  std::string url() const { return absl::StrCat("redis://127.0.0.1:", port_); }
  pid_t pid() const { return pid_; }

  // A loopback port nothing listens on (a moment ago).
  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

 private:
  RedisServer(std::string dir, int port) : dir_(std::move(dir)), port_(port) {}

  static std::string FindOnPath(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string paths = path != nullptr ? path : "/usr/bin:/bin";
    size_t start = 0;
    while (start <= paths.size()) {
      size_t end = paths.find(':', start);
      if (end == std::string::npos) end = paths.size();
      const std::string candidate = paths.substr(start, end - start) + "/" + name;
      if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
    return "";
  }

  bool WaitUntilListening() {
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(port_));
      const bool up = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
      close(fd);
      if (up) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

}  // namespace nmesh::testing

#endif  // NMESH_TESTS_COMM_STORE_REDIS_SERVER_H_
