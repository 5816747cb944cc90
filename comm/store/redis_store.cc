#include "nmesh/comm/store/redis_store.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/store/poll.h"

namespace nmesh::comm::store {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval SocketTimeout(absl::Duration d) {
  if (d < absl::Milliseconds(1)) d = absl::Milliseconds(1);
  return absl::ToTimeval(d);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisStore>> RedisStore::Connect(std::string host, int port,
                                                                StoreOptions options) {
  std::unique_ptr<RedisStore> store(new RedisStore(std::move(host), port, options));
  std::lock_guard<std::mutex> lock(store->mu_);
  NMESH_RETURN_IF_ERROR(store->ConnectLocked());
  return store;
}

RedisStore::RedisStore(std::string host, int port, StoreOptions options)
    : host_(std::move(host)), port_(port), options_(options) {}

RedisStore::~RedisStore() {
  if (context_ != nullptr) redisFree(context_);
}

std::string RedisStore::Describe() const {
  const bool v6 = host_.find(':') != std::string::npos;
  return absl::StrCat("redis://", v6 ? "[" : "", host_, v6 ? "]" : "", ":", port_);
}

absl::Status RedisStore::ConnectLocked() {
  if (context_ != nullptr && context_->err == 0) return absl::OkStatus();
  if (context_ != nullptr) {
    redisFree(context_);
    context_ = nullptr;
  }
  redisContext* c =
      redisConnectWithTimeout(host_.c_str(), port_, SocketTimeout(options_.connect_timeout));
  if (c == nullptr || c->err != 0) {
    std::string why = c == nullptr ? "out of memory" : std::string(c->errstr);
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError(absl::StrFormat(
        "store %s: cannot connect: %s", internal::Escape(Describe()), internal::Escape(why)));
  }
  if (redisSetTimeout(c, SocketTimeout(options_.connect_timeout)) != REDIS_OK) {
    redisFree(c);
    return absl::UnavailableError(
        absl::StrFormat("store %s: cannot set the socket timeout", internal::Escape(Describe())));
  }
  context_ = c;
  return absl::OkStatus();
}

namespace {

// Sends one command (argument vector) and reads its reply; Unavailable naming the store when the
// connection fails, Internal for a Redis error reply.
absl::StatusOr<Reply> Command(redisContext* c, const std::string& store,
                              std::vector<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  Reply reply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
  if (reply == nullptr) {
    return absl::UnavailableError(absl::StrFormat("store %s: %s failed: %s",
                                                  internal::Escape(store), std::string(args[0]),
                                                  internal::Escape(c->errstr)));
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    return absl::InternalError(
        absl::StrFormat("store %s: %s failed: %s", internal::Escape(store), std::string(args[0]),
                        internal::Escape(std::string_view(reply->str, reply->len))));
  }
  return reply;
}

}  // namespace

absl::Status RedisStore::Set(std::string_view key, std::string_view value) {
  std::lock_guard<std::mutex> lock(mu_);
  NMESH_RETURN_IF_ERROR(ConnectLocked());
  NMESH_ASSIGN_OR_RETURN(Reply reply, Command(context_, Describe(), {"SET", key, value}));
  return absl::OkStatus();
}

absl::StatusOr<bool> RedisStore::ExistsLocked(std::string_view key) {
  NMESH_RETURN_IF_ERROR(ConnectLocked());
  NMESH_ASSIGN_OR_RETURN(Reply reply, Command(context_, Describe(), {"EXISTS", key}));
  if (reply->type != REDIS_REPLY_INTEGER) {
    return absl::DataLossError(absl::StrFormat("store %s: EXISTS '%s' did not answer an integer",
                                               internal::Escape(Describe()),
                                               internal::Escape(key)));
  }
  return reply->integer != 0;
}

absl::StatusOr<std::string> RedisStore::TryGetLocked(std::string_view key) {
  NMESH_ASSIGN_OR_RETURN(bool exists, ExistsLocked(key));
  if (!exists) return absl::NotFoundError("");
  // At most one byte past the limit comes back, whatever the server holds.
  const std::string last = absl::StrCat(options_.max_value_bytes);
  NMESH_ASSIGN_OR_RETURN(Reply reply, Command(context_, Describe(), {"GETRANGE", key, "0", last}));
  if (reply->type != REDIS_REPLY_STRING) {
    return absl::DataLossError(absl::StrFormat("store %s: key '%s' does not hold a string",
                                               internal::Escape(Describe()),
                                               internal::Escape(key)));
  }
  if (reply->len > options_.max_value_bytes) {
    return absl::DataLossError(absl::StrFormat(
        "store %s: key '%s' holds more than the %d bytes a value may have",
        internal::Escape(Describe()), internal::Escape(key), options_.max_value_bytes));
  }
  return std::string(reply->str, reply->len);
}

absl::StatusOr<std::string> RedisStore::Get(std::string_view key, absl::Time deadline) {
  internal::Backoff backoff;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      absl::StatusOr<std::string> value = TryGetLocked(key);
      if (!absl::IsNotFound(value.status())) return value;
    }
    if (!backoff.Sleep(deadline)) return internal::MissingKeys(Describe(), {std::string(key)});
  }
}

absl::StatusOr<bool> RedisStore::Check(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  return ExistsLocked(key);
}

absl::Status RedisStore::Wait(absl::Span<const std::string> keys, absl::Time deadline) {
  std::vector<std::string> missing(keys.begin(), keys.end());
  internal::Backoff backoff;
  while (true) {
    std::vector<std::string> still;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const std::string& key : missing) {
        NMESH_ASSIGN_OR_RETURN(bool set, ExistsLocked(key));
        if (!set) still.push_back(key);
      }
    }
    if (still.empty()) return absl::OkStatus();
    missing = std::move(still);
    if (!backoff.Sleep(deadline)) return internal::MissingKeys(Describe(), missing);
  }
}

absl::StatusOr<int64_t> RedisStore::Add(std::string_view key, int64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  NMESH_RETURN_IF_ERROR(ConnectLocked());
  const std::string by = absl::StrCat(delta);
  absl::StatusOr<Reply> reply = Command(context_, Describe(), {"INCRBY", key, by});
  if (absl::IsInternal(reply.status())) {
    // "value is not an integer or out of range": the counter holds something else.
    return absl::DataLossError(absl::StrFormat("store %s: counter '%s': %s",
                                               internal::Escape(Describe()), internal::Escape(key),
                                               reply.status().message()));
  }
  NMESH_RETURN_IF_ERROR(reply.status());
  if ((*reply)->type != REDIS_REPLY_INTEGER) {
    return absl::DataLossError(absl::StrFormat("store %s: INCRBY '%s' did not answer an integer",
                                               internal::Escape(Describe()),
                                               internal::Escape(key)));
  }
  return static_cast<int64_t>((*reply)->integer);
}

}  // namespace nmesh::comm::store
