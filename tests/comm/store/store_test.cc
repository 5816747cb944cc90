// The stores (comm/store): the same behaviour over a directory and a Redis server (started here
// on a free loopback port; the Redis cases skip visibly without redis-server), counters and waits
// across processes, URL errors, and untrusted contents (links, oversized values, non-integers).
#include "nmesh/comm/store/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/testing/status_matchers.h"
#include "nmesh/comm/store/file_store.h"
#include "nmesh/comm/store/redis_store.h"
#include "redis_server.h"

namespace nmesh::comm::store {
namespace {

using ::nmesh::testing::IsOk;
using ::nmesh::testing::RedisServer;
using ::nmesh::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

// A fresh directory under the system's temporary directory, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string path = (fs::temp_directory_path() / "nmesh_store_XXXXXX").string();
    NMESH_CHECK(mkdtemp(path.data()) != nullptr);
    path_ = path;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

enum class Kind { kFile, kRedis };

class StoreTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::kRedis) {
      absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
      if (absl::IsNotFound(server.status())) GTEST_SKIP() << server.status();
      ASSERT_THAT(server, IsOk());
      server_ = std::move(*server);
      url_ = server_->url();
    } else {
      dir_ = std::make_unique<TempDir>();
      url_ = "file://" + dir_->path();
    }
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }
  // A new connection to the same store (what another process would open).
  std::shared_ptr<Store> Open(StoreOptions options = {}) {
    absl::StatusOr<std::shared_ptr<Store>> store = OpenStore(url_, options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *store : nullptr;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<TempDir> dir_;
  std::string url_;
  std::shared_ptr<Store> store_;
};

std::string AllBytes() {
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  return value + value;
}

TEST_P(StoreTest, SetThenGetIsBinarySafe) {
  const std::string value = AllBytes();
  ASSERT_THAT(store_->Set("rank0/addr", value), IsOk());
  ASSERT_OK_AND_ASSIGN(std::string got, Open()->Get("rank0/addr", absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(got, value);
  ASSERT_THAT(store_->Set("empty", ""), IsOk());
  ASSERT_OK_AND_ASSIGN(std::string empty, store_->Get("empty", absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(empty, "");
  ASSERT_OK_AND_ASSIGN(bool set, store_->Check("empty"));
  EXPECT_TRUE(set);
}

TEST_P(StoreTest, KeysWithAwkwardBytesStayDistinct) {
  const std::vector<std::string> keys = {"a/b", "a%2Fb", "a.b", "..", "../x", "a b", "a\nb", "A/B"};
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_THAT(store_->Set(keys[i], absl::StrCat(i)), IsOk()) << keys[i];
  }
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_OK_AND_ASSIGN(std::string got, store_->Get(keys[i], absl::Now() + absl::Seconds(5)));
    EXPECT_EQ(got, absl::StrCat(i)) << keys[i];
  }
}

TEST_P(StoreTest, GetOfAMissingKeyTimesOutNamingTheKeyAndTheStore) {
  const absl::Time start = absl::Now();
  EXPECT_THAT(store_->Get("rank7/addr", start + absl::Milliseconds(200)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr("'rank7/addr'"), HasSubstr(store_->Describe()))));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  ASSERT_OK_AND_ASSIGN(bool set, store_->Check("rank7/addr"));
  EXPECT_FALSE(set);
}

TEST_P(StoreTest, WaitNamesOnlyTheMissingKeys) {
  ASSERT_THAT(store_->Set("rank0", "x"), IsOk());
  ASSERT_THAT(store_->Set("rank2", "x"), IsOk());
  const std::vector<std::string> keys = {"rank0", "rank1", "rank2", "rank3"};
  absl::Status status = store_->Wait(keys, absl::Now() + absl::Milliseconds(100));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDeadlineExceeded,
                               AllOf(HasSubstr("'rank1', 'rank3'"), Not(HasSubstr("rank0")),
                                     Not(HasSubstr("rank2")))));
  ASSERT_THAT(store_->Set("rank1", "x"), IsOk());
  ASSERT_THAT(store_->Set("rank3", "x"), IsOk());
  EXPECT_THAT(store_->Wait(keys, absl::Now() + absl::Seconds(5)), IsOk());
}

TEST_P(StoreTest, AddCountsFromZero) {
  ASSERT_OK_AND_ASSIGN(int64_t a, store_->Add("arrived", 1));
  EXPECT_EQ(a, 1);
  ASSERT_OK_AND_ASSIGN(int64_t b, Open()->Add("arrived", 5));
  EXPECT_EQ(b, 6);
  ASSERT_OK_AND_ASSIGN(int64_t c, store_->Add("arrived", -10));
  EXPECT_EQ(c, -4);
}

TEST_P(StoreTest, AddOnANonIntegerIsDataLoss) {
  ASSERT_THAT(store_->Set("counter", "twelve"), IsOk());
  EXPECT_THAT(store_->Add("counter", 1),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'counter'")));
}

TEST_P(StoreTest, OversizedValuesAreRefused) {
  ASSERT_THAT(store_->Set("big", std::string(1000, 'x')), IsOk());
  ASSERT_THAT(store_->Set("fits", std::string(100, 'x')), IsOk());
  std::shared_ptr<Store> small = Open({.max_value_bytes = 100});
  EXPECT_THAT(small->Get("big", absl::Now() + absl::Seconds(5)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("'big'")));
  ASSERT_OK_AND_ASSIGN(std::string fits, small->Get("fits", absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(fits.size(), 100u);
}

TEST_P(StoreTest, PrefixesSeparateJobs) {
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> job1, WithPrefix(store_, "job1"));
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> job2, WithPrefix(Open(), "job2"));
  ASSERT_THAT(job1->Set("rank0", "one"), IsOk());
  ASSERT_THAT(job2->Set("rank0", "two"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::string one, job1->Get("rank0", absl::Now() + absl::Seconds(5)));
  ASSERT_OK_AND_ASSIGN(std::string two, job2->Get("rank0", absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(one, "one");
  EXPECT_EQ(two, "two");
  ASSERT_OK_AND_ASSIGN(int64_t n1, job1->Add("n", 1));
  ASSERT_OK_AND_ASSIGN(int64_t n2, job2->Add("n", 1));
  EXPECT_EQ(n1, 1);
  EXPECT_EQ(n2, 1);
  ASSERT_OK_AND_ASSIGN(bool unprefixed, store_->Check("rank0"));
  EXPECT_FALSE(unprefixed);
  ASSERT_OK_AND_ASSIGN(std::string through_base,
                       store_->Get("job1/rank0", absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(through_base, "one");
  EXPECT_EQ(job1->Describe(), store_->Describe() + "/job1");
  EXPECT_THAT(job1->Wait({"rank0", "rank5"}, absl::Now() + absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr(job1->Describe()), HasSubstr("key 'rank5'"))));
  EXPECT_THAT(WithPrefix(store_, ""), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(WithPrefix(store_, "a b"),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

// Forked processes (each with its own connection) increment one counter; every value they get
// back is distinct and the last is the total.
TEST_P(StoreTest, AddIsAtomicAcrossProcesses) {
  constexpr int kProcesses = 4;
  constexpr int kAdds = 50;
  std::vector<std::pair<pid_t, int>> children;
  for (int p = 0; p < kProcesses; ++p) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      absl::StatusOr<std::shared_ptr<Store>> mine = OpenStore(url_);
      if (!mine.ok()) _exit(3);
      for (int i = 0; i < kAdds; ++i) {
        absl::StatusOr<int64_t> v = (*mine)->Add("counter", 1);
        if (!v.ok()) _exit(4);
        if (write(fds[1], &*v, sizeof(int64_t)) != sizeof(int64_t)) _exit(5);
      }
      _exit(0);
    }
    close(fds[1]);
    children.emplace_back(pid, fds[0]);
  }
  std::multiset<int64_t> seen;
  for (auto [pid, fd] : children) {
    int64_t v;
    while (read(fd, &v, sizeof(v)) == sizeof(v)) seen.insert(v);
    close(fd);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  std::multiset<int64_t> expected;
  for (int64_t v = 1; v <= kProcesses * kAdds; ++v) expected.insert(v);
  EXPECT_EQ(seen, expected);
  ASSERT_OK_AND_ASSIGN(int64_t total, store_->Add("counter", 0));
  EXPECT_EQ(total, kProcesses * kAdds);
}

// A rendezvous: each process sets its key and waits for everyone's, then reads them all.
TEST_P(StoreTest, ProcessesMeetThroughWait) {
  constexpr int kProcesses = 4;
  std::vector<std::string> keys;
  for (int p = 0; p < kProcesses; ++p) keys.push_back(absl::StrCat("rank", p));
  std::vector<pid_t> children;
  for (int p = 1; p < kProcesses; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      absl::StatusOr<std::shared_ptr<Store>> mine = OpenStore(url_);
      if (!mine.ok()) _exit(3);
      usleep(20000 * p);
      if (!(*mine)->Set(keys[p], absl::StrCat("value", p)).ok()) _exit(4);
      if (!(*mine)->Wait(keys, absl::Now() + absl::Seconds(20)).ok()) _exit(5);
      for (int q = 0; q < kProcesses; ++q) {
        absl::StatusOr<std::string> v = (*mine)->Get(keys[q], absl::Now() + absl::Seconds(5));
        if (!v.ok() || *v != absl::StrCat("value", q)) _exit(6);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  ASSERT_THAT(store_->Set(keys[0], "value0"), IsOk());
  EXPECT_THAT(store_->Wait(keys, absl::Now() + absl::Seconds(20)), IsOk());
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, ::testing::Values(Kind::kFile, Kind::kRedis),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           return info.param == Kind::kFile ? "file" : "redis";
                         });

// ---- The file store's directory -----------------------------------------------------------------

TEST(FileStoreTest, KeysNeverNameAPathOutsideTheDirectory) {
  TempDir dir;
  const std::string inner = dir.path() + "/store";
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileStore> store, FileStore::Open(inner));
  ASSERT_THAT(store->Set("../escaped", "x"), IsOk());
  ASSERT_THAT(store->Set("/abs/key", "x"), IsOk());
  EXPECT_FALSE(fs::exists(dir.path() + "/escaped"));
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(inner)) {
    EXPECT_TRUE(entry.is_regular_file()) << entry.path();
    ++files;
  }
  EXPECT_EQ(files, 2u);
  EXPECT_EQ(fs::directory_iterator(dir.path())->path(), inner);  // nothing beside it
}

TEST(FileStoreTest, LinksAreNeverFollowed) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileStore> store, FileStore::Open(dir.path() + "/s"));
  const std::string victim = dir.path() + "/victim";
  { std::ofstream(victim) << "secret"; }
  // A link planted where key "k" lives: Get refuses it instead of reading the victim.
  ASSERT_EQ(symlink(victim.c_str(), (dir.path() + "/s/k").c_str()), 0);
  EXPECT_THAT(store->Get("k", absl::Now() + absl::Seconds(1)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("symbolic link")));
  EXPECT_THAT(store->Check("k"), StatusIs(absl::StatusCode::kDataLoss, ::testing::_));
  // Set replaces the link itself; the victim keeps its contents.
  ASSERT_THAT(store->Set("k", "mine"), IsOk());
  std::string contents;
  std::getline(std::ifstream(victim), contents);
  EXPECT_EQ(contents, "secret");
  ASSERT_OK_AND_ASSIGN(std::string got, store->Get("k", absl::Now() + absl::Seconds(1)));
  EXPECT_EQ(got, "mine");
  // A link at the lock file of a counter: Add refuses it.
  ASSERT_EQ(symlink(victim.c_str(), (dir.path() + "/s/.lock.n").c_str()), 0);
  EXPECT_THAT(store->Add("n", 1), Not(IsOk()));
  std::getline(std::ifstream(victim), contents);
  EXPECT_EQ(contents, "secret");
}

TEST(FileStoreTest, ADirectoryAtAKeyIsAnErrorNotAHang) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileStore> store, FileStore::Open(dir.path()));
  ASSERT_EQ(mkdir((dir.path() + "/k").c_str(), 0700), 0);
  EXPECT_THAT(store->Get("k", absl::Now() + absl::Seconds(1)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not a regular file")));
}

TEST(FileStoreTest, RelativeDirectoryIsInvalid) {
  EXPECT_THAT(FileStore::Open("relative/dir"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
}

TEST(FileStoreTest, UncreatableDirectoryIsUnavailableNamingIt) {
  TempDir dir;
  { std::ofstream(dir.path() + "/file") << "x"; }
  EXPECT_THAT(OpenStore("file://" + dir.path() + "/file/sub"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(dir.path() + "/file/sub")));
}

// ---- URLs ---------------------------------------------------------------------------------------

TEST(OpenStoreTest, BadUrlsAreInvalidArgumentNamingTheUrl) {
  for (const char* url :
       {"", "http://127.0.0.1:80", "127.0.0.1:6379", "redis://127.0.0.1", "redis://:6379",
        "redis://127.0.0.1:0", "redis://127.0.0.1:65536", "redis://127.0.0.1:12ab",
        "redis://127.0.0.1:-1", "redis://[::1", "file://relative/dir", "file:relative",
        "file://host/dir", "file:///", "redis://127.0.0.1:6379/job 1", "file:///tmp/a\x01"}) {
    absl::StatusOr<std::shared_ptr<Store>> store = OpenStore(url);
    EXPECT_THAT(store, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store URL"))) << url;
    if (*url != '\0' && std::string(url).find('\x01') == std::string::npos) {
      EXPECT_THAT(store.status().message(), HasSubstr(url)) << url;
    }
  }
}

TEST(OpenStoreTest, CredentialsAreRefusedWithoutRepeatingThem) {
  absl::StatusOr<std::shared_ptr<Store>> store = OpenStore("redis://user:hunter2@127.0.0.1:6379");
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kInvalidArgument,
                              AllOf(HasSubstr("credentials"), Not(HasSubstr("hunter2")))));
}

TEST(OpenStoreTest, UnreachableRedisIsUnavailableNamingTheUrl) {
  const int port = RedisServer::FreePort();
  ASSERT_GT(port, 0);
  const std::string url = absl::StrCat("redis://127.0.0.1:", port, "/job1");
  EXPECT_THAT(OpenStore(url, {.connect_timeout = absl::Seconds(2)}),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("redis://127.0.0.1:", port))));
}

TEST(OpenStoreTest, RedisUrlWithPrefixScopesKeys) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
  if (absl::IsNotFound(server.status())) GTEST_SKIP() << server.status();
  ASSERT_THAT(server, IsOk());
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> job, OpenStore((*server)->url() + "/job1/"));
  EXPECT_EQ(job->Describe(), (*server)->url() + "/job1");
  ASSERT_THAT(job->Set("k", "v"), IsOk());
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> root, OpenStore((*server)->url()));
  ASSERT_OK_AND_ASSIGN(std::string v, root->Get("job1/k", absl::Now() + absl::Seconds(5)));
  EXPECT_EQ(v, "v");
}

// A server that goes away: calls fail (Unavailable), they do not hang.
TEST(OpenStoreTest, RedisThatDiesIsUnavailable) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
  if (absl::IsNotFound(server.status())) GTEST_SKIP() << server.status();
  ASSERT_THAT(server, IsOk());
  ASSERT_OK_AND_ASSIGN(std::shared_ptr<Store> store,
                       OpenStore((*server)->url(), {.connect_timeout = absl::Seconds(2)}));
  ASSERT_THAT(store->Set("k", "v"), IsOk());
  const std::string url = (*server)->url();
  server->reset();
  EXPECT_THAT(store->Set("k", "v"), StatusIs(absl::StatusCode::kUnavailable, HasSubstr(url)));
  EXPECT_THAT(store->Get("k", absl::Now() + absl::Seconds(1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr(url)));
}

}  // namespace
}  // namespace nmesh::comm::store
