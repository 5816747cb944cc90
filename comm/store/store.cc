#include "nmesh/comm/store/store.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/store/file_store.h"
#include "nmesh/comm/store/poll.h"
#include "nmesh/comm/store/redis_store.h"

namespace nmesh::comm::store {
namespace {

class PrefixStore final : public Store {
 public:
  PrefixStore(std::shared_ptr<Store> base, std::string prefix)
      : base_(std::move(base)), prefix_(std::move(prefix)) {}

  absl::Status Set(std::string_view key, std::string_view value) override {
    return base_->Set(Key(key), value);
  }
  absl::StatusOr<std::string> Get(std::string_view key, absl::Time deadline) override {
    absl::StatusOr<std::string> value = base_->Get(Key(key), deadline);
    if (absl::IsDeadlineExceeded(value.status())) {
      return internal::MissingKeys(Describe(), {std::string(key)});
    }
    return value;
  }
  absl::Status Wait(absl::Span<const std::string> keys, absl::Time deadline) override {
    std::vector<std::string> full;
    full.reserve(keys.size());
    for (const std::string& key : keys) full.push_back(Key(key));
    absl::Status status = base_->Wait(full, deadline);
    if (!absl::IsDeadlineExceeded(status)) return status;
    // Name the keys as this store's callers know them.
    std::vector<std::string> missing;
    for (const std::string& key : keys) {
      absl::StatusOr<bool> set = base_->Check(Key(key));
      if (!set.ok() || !*set) missing.push_back(key);
    }
    if (missing.empty()) return absl::OkStatus();  // arrived meanwhile
    return internal::MissingKeys(Describe(), missing);
  }
  absl::StatusOr<int64_t> Add(std::string_view key, int64_t delta) override {
    return base_->Add(Key(key), delta);
  }
  absl::StatusOr<bool> Check(std::string_view key) override { return base_->Check(Key(key)); }
  std::string Describe() const override { return absl::StrCat(base_->Describe(), "/", prefix_); }

 private:
  std::string Key(std::string_view key) const {
    return absl::StrCat(prefix_, "/", absl::string_view(key.data(), key.size()));
  }

  std::shared_ptr<Store> base_;
  std::string prefix_;
};

constexpr char kForms[] = "expected redis://HOST:PORT[/PREFIX] or file:///ABSOLUTE/DIR";

absl::Status BadUrl(std::string_view url, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("store URL '%s': %s", internal::Escape(url), why));
}

bool Printable(std::string_view text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

absl::StatusOr<std::shared_ptr<Store>> OpenRedis(std::string_view url, std::string_view rest,
                                                 const StoreOptions& options) {
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view prefix = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  if (authority.find('@') != std::string_view::npos) {
    // Never repeat what may be a password.
    return absl::InvalidArgumentError(
        absl::StrFormat("store URL 'redis://***@%s': credentials are not supported (%s)",
                        internal::Escape(authority.substr(authority.rfind('@') + 1)), kForms));
  }
  std::string host;
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return BadUrl(url, "unterminated '[' in the host");
    host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (after.empty() || after.front() != ':') {
      return BadUrl(url, absl::StrCat("missing port (", kForms, ")"));
    }
    port_text = after.substr(1);
  } else {
    const size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) {
      return BadUrl(url, absl::StrCat("missing port (", kForms, ")"));
    }
    host = std::string(authority.substr(0, colon));
    port_text = authority.substr(colon + 1);
  }
  if (host.empty()) return BadUrl(url, absl::StrCat("missing host (", kForms, ")"));
  int port = 0;
  bool digits = !port_text.empty() && port_text.size() <= 5;
  for (char c : port_text) digits = digits && c >= '0' && c <= '9';
  if (!digits || !absl::SimpleAtoi(absl::string_view(port_text.data(), port_text.size()), &port) ||
      port < 1 || port > 65535) {
    return BadUrl(url, absl::StrFormat("bad port '%s' (a number from 1 to 65535)",
                                       internal::Escape(port_text)));
  }
  NMESH_ASSIGN_OR_RETURN(std::unique_ptr<RedisStore> redis,
                         RedisStore::Connect(host, port, options));
  std::shared_ptr<Store> store = std::move(redis);
  if (prefix.empty()) return store;
  return WithPrefix(std::move(store), prefix);
}

}  // namespace

absl::StatusOr<std::shared_ptr<Store>> WithPrefix(std::shared_ptr<Store> base,
                                                  std::string_view prefix) {
  if (prefix.empty() || !Printable(prefix)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("store prefix '%s' must be non-empty printable ASCII without spaces",
                        internal::Escape(prefix)));
  }
  return std::make_shared<PrefixStore>(std::move(base), std::string(prefix));
}

absl::StatusOr<std::shared_ptr<Store>> OpenStore(std::string_view url, StoreOptions options) {
  if (url.empty()) return BadUrl(url, absl::StrCat("empty (", kForms, ")"));
  if (!Printable(url)) {
    return BadUrl(url, "contains spaces, control characters or bytes outside ASCII");
  }
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) return BadUrl(url, absl::StrCat("no scheme (", kForms, ")"));
  const std::string_view scheme = url.substr(0, sep);
  const std::string_view rest = url.substr(sep + 3);
  if (scheme == "redis") return OpenRedis(url, rest, options);
  if (scheme == "file") {
    if (rest.empty() || rest.front() != '/') {
      const std::string_view host = rest.substr(0, rest.find('/'));
      return BadUrl(
          url, absl::StrFormat("a file URL names an absolute local directory, file:///DIR (three "
                               "slashes); got '%s' where the path should start",
                               internal::Escape(host)));
    }
    std::string_view path = rest;
    while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
    if (path == "/") return BadUrl(url, "the directory must not be the root directory");
    NMESH_ASSIGN_OR_RETURN(std::unique_ptr<FileStore> file,
                           FileStore::Open(std::string(path), options));
    return std::shared_ptr<Store>(std::move(file));
  }
  return BadUrl(url,
                absl::StrFormat("unsupported scheme '%s' (%s)", internal::Escape(scheme), kForms));
}

}  // namespace nmesh::comm::store
