// A comm::Store in one process's memory, for tests of what meets over a store: the ranks of a job
// are threads sharing one MemoryStore. Scripted failures: after FailAfter(n) operations every
// further one is Unavailable ("the store went away"); Describe names it "memory://<name>".
#ifndef NMESH_TESTS_COMM_MEMORY_STORE_H_
#define NMESH_TESTS_COMM_MEMORY_STORE_H_

#include <condition_variable>
#include <cstdint>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nmesh/comm/store.h"

namespace nmesh::testing {

class MemoryStore : public comm::Store {
 public:
  explicit MemoryStore(std::string name = "test") : name_(std::move(name)) {}

  absl::Status Set(std::string_view key, std::string_view value) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = CountLocked(); !s.ok()) return s;
    values_[std::string(key)] = std::string(value);
    changed_.notify_all();
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> Get(std::string_view key, absl::Time deadline) override {
    const std::string keys[] = {std::string(key)};
    if (absl::Status s = Wait(keys, deadline); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu_);
    return values_.at(std::string(key));
  }

  absl::Status Wait(absl::Span<const std::string> keys, absl::Time deadline) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (absl::Status s = CountLocked(); !s.ok()) return s;
    for (;;) {
      if (failing_) return Gone();
      std::vector<std::string> missing;
      for (const std::string& key : keys) {
        if (!values_.contains(key)) missing.push_back(key);
      }
      if (missing.empty()) return absl::OkStatus();
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(Describe(), ": keys never set: ", absl::StrJoin(missing, ", ")));
      }
      changed_.wait_until(
          lock, absl::ToChronoTime(std::min(deadline, absl::Now() + absl::Milliseconds(50))));
    }
  }

  absl::StatusOr<int64_t> Add(std::string_view key, int64_t delta) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = CountLocked(); !s.ok()) return s;
    std::string& value = values_[std::string(key)];
    int64_t number = 0;
    if (!value.empty() && !absl::SimpleAtoi(value, &number)) {
      return absl::InvalidArgumentError(absl::StrCat("not a counter: ", std::string(key)));
    }
    number += delta;
    value = absl::StrCat(number);
    changed_.notify_all();
    return number;
  }

  absl::StatusOr<bool> Check(std::string_view key) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = CountLocked(); !s.ok()) return s;
    return values_.contains(std::string(key));
  }

  std::string Describe() const override { return absl::StrCat("memory://", name_); }

  // Every operation after the next `operations` fails with Unavailable, waits included.
  void FailAfter(int64_t operations) {
    std::lock_guard<std::mutex> lock(mu_);
    budget_ = operations;
    if (budget_ <= 0) failing_ = true;
    changed_.notify_all();
  }
  // The store goes away now: every operation fails, waits in progress included.
  void GoAway() { FailAfter(0); }
  int64_t operations() const {
    std::lock_guard<std::mutex> lock(mu_);
    return operations_;
  }
  bool Has(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    return values_.contains(key);
  }

 private:
  absl::Status Gone() const {
    return absl::UnavailableError(absl::StrCat("cannot reach the store ", Describe()));
  }
  absl::Status CountLocked() {
    ++operations_;
    if (budget_ <= 0) failing_ = true;
    --budget_;
    return failing_ ? Gone() : absl::OkStatus();
  }

  const std::string name_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, std::string, std::less<>> values_;
  int64_t operations_ = 0;
  int64_t budget_ = std::numeric_limits<int64_t>::max();
  bool failing_ = false;
};

}  // namespace nmesh::testing

#endif  // NMESH_TESTS_COMM_MEMORY_STORE_H_
