#include "nmesh/comm/mpi/side_channel.h"

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/clock.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/comm/mpi/session_native.h"
#include "nmesh/comm/watch/diagnosis.h"
#include "nmesh/comm/watch/flight_recorder.h"
#include "nmesh/comm/watch/record_codec.h"

namespace nmesh::comm::mpi {
namespace {

namespace ci = ::nmesh::comm::internal;

// The separate channel of one communicator (comm/watch/watchdog.h): a duplicate of it, used by the
// watchdog thread only, over which ranks ask each other for their flight records. A request is one
// int (the asking rank) with kRequestTag, sent synchronously (MPI_Issend): it completes once the
// peer's MPI has matched it against one of the receives the peer keeps posted, which MPI's
// progress does whatever the peer's threads do (its main thread blocked in a collective drives it),
// so a completed request shows that the peer's process is alive even while its watchdog thread
// has not been scheduled yet; a stopped or dead process never completes it. The answer, with
// kReplyTag, is its records and state as comm/watch/record_codec.h encodes them.
//
// Revocation notices (kNoticeTag): a Notice (the group's fingerprint, so that a notice meant for a
// communicator that no longer exists here is never taken for another one's, and the cause), sent
// to every other rank when this rank's communicator is revoked, and taken off the channel by Serve
// (the watchdog thread) or CheckNotices (the communicator's own thread).
class SideChannelImpl final : public MpiSideChannel {
 public:
  static constexpr int kRequestTag = 1;
  static constexpr int kReplyTag = 2;
  static constexpr int kNoticeTag = 3;
  // Receives kept posted for requests: so many askers are matched (shown alive) at once; the
  // others when the watchdog serves the first ones.
  static constexpr int kPostedRequests = 8;

  // Takes ownership of `side`, a duplicate of `comm` (named `name`).
  SideChannelImpl(MPI_Comm comm, MPI_Comm side, std::string_view name) : side_(side) {
    MPI_Comm_rank(side_, &rank_);
    MPI_Comm_size(side_, &size_);
    MPI_Group group = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
    MPI_Comm_group(comm, &group);
    MPI_Comm_group(MPI_COMM_WORLD, &world);
    std::vector<int> ranks(static_cast<size_t>(size_)), global(ranks.size(), MPI_UNDEFINED);
    for (int r = 0; r < size_; ++r) ranks[static_cast<size_t>(r)] = r;
    MPI_Group_translate_ranks(group, size_, ranks.data(), world, global.data());
    MPI_Group_free(&group);
    MPI_Group_free(&world);
    const size_t posted = static_cast<size_t>(std::clamp(size_ - 1, 1, kPostedRequests));
    requests_.assign(posted, MPI_REQUEST_NULL);
    askers_.assign(posted, 0);
    global_.assign(global.begin(), global.end());
    for (int64_t& g : global_) {
      if (g == MPI_UNDEFINED) g = -1;
    }
    Fingerprint fingerprint;
    fingerprint.Add(name);
    for (int64_t g : global_) fingerprint.Add(g);
    group_ = fingerprint.value();
  }

  ~SideChannelImpl() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || side_ == MPI_COMM_NULL) return;
    for (MPI_Request& request : requests_) {
      if (request == MPI_REQUEST_NULL) continue;
      MPI_Cancel(&request);
      MPI_Wait(&request, MPI_STATUS_IGNORE);
    }
    for (Reply& reply : replies_) {
      // A peer that never receives it: let MPI finish (or drop) the send on its own.
      MPI_Request_free(&reply.request);
      static std::mutex mu;
      static auto* kept = new std::vector<std::vector<std::byte>>();
      std::lock_guard<std::mutex> lock(mu);
      kept->push_back(std::move(reply.bytes));
    }
    MPI_Comm_free(&side_);
  }

  int Serve(const FlightRecorder& recorder,
            const std::function<ci::ProcessState()>& state) override {
    std::lock_guard<std::recursive_mutex> lock(MpiUseMutex());
    int answered = 0;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || MpiFinalizing() || side_ == MPI_COMM_NULL) return answered;
    ExchangeNoticesLocked();
    std::erase_if(replies_, [](Reply& reply) {
      int done = 0;
      MPI_Test(&reply.request, &done, MPI_STATUS_IGNORE);
      return done != 0;
    });
    for (bool served = true; served;) {
      served = false;
      for (size_t i = 0; i < requests_.size(); ++i) {
        if (requests_[i] == MPI_REQUEST_NULL &&
            MPI_Irecv(&askers_[i], 1, MPI_INT, MPI_ANY_SOURCE, kRequestTag, side_, &requests_[i]) !=
                MPI_SUCCESS) {
          return answered;
        }
        int done = 0;
        MPI_Status status;
        if (MPI_Test(&requests_[i], &done, &status) != MPI_SUCCESS || !done) continue;
        requests_[i] = MPI_REQUEST_NULL;
        served = true;
        ++answered;
        Reply reply;
        reply.bytes = Encode(recorder, state());
        if (MPI_Isend(reply.bytes.data(), static_cast<int>(reply.bytes.size()), MPI_BYTE,
                      status.MPI_SOURCE, kReplyTag, side_, &reply.request) == MPI_SUCCESS) {
          replies_.push_back(std::move(reply));
        }
      }
    }
    return answered;
  }

  void SetOnNotice(std::function<void(const std::string&)> on_notice) override {
    std::lock_guard<std::mutex> lock(notice_mu_);
    on_notice_ = std::move(on_notice);
  }

  void Revoke(std::string_view cause) override {
    std::lock_guard<std::mutex> lock(notice_mu_);
    if (revoked_) return;
    revoked_ = true;
    outgoing_ = std::string(cause.substr(0, sizeof(Notice::cause) - 1));
  }

  bool revoked() const override {
    std::lock_guard<std::mutex> lock(notice_mu_);
    return revoked_;
  }

  void CheckNotices() override {
    std::unique_lock<std::recursive_mutex> lock(MpiUseMutex(), std::try_to_lock);
    if (!lock.owns_lock() || MpiFinalizing() || side_ == MPI_COMM_NULL) return;
    ExchangeNoticesLocked();
  }

  MPI_Comm Retire() override {
    std::lock_guard<std::recursive_mutex> lock(MpiUseMutex());
    int finalized = 0;
    MPI_Finalized(&finalized);
    MPI_Comm side = side_;
    side_ = MPI_COMM_NULL;
    if (finalized || side == MPI_COMM_NULL) return MPI_COMM_NULL;
    for (MPI_Request& request : requests_) {
      if (request == MPI_REQUEST_NULL) continue;
      MPI_Cancel(&request);
      MPI_Wait(&request, MPI_STATUS_IGNORE);
    }
    // The sends complete on their own (the communicator is never freed); their bytes stay.
    static std::mutex mu;
    static auto* kept = new std::vector<std::vector<std::byte>>();
    std::lock_guard<std::mutex> kept_lock(mu);
    for (std::vector<Reply>* sends : {&replies_, &notices_}) {
      for (Reply& reply : *sends) {
        MPI_Request_free(&reply.request);
        kept->push_back(std::move(reply.bytes));
      }
      sends->clear();
    }
    return side;
  }

  std::vector<RankRecords> Exchange(const FlightRecorder& recorder,
                                    const ci::ExchangeDeadlines& deadlines,
                                    const std::function<void()>& serve) override {
    std::lock_guard<std::recursive_mutex> lock(MpiUseMutex());
    std::vector<RankRecords> all(static_cast<size_t>(size_));
    const bool gone = MpiFinalizing();  // then every other rank stays unanswered
    // Per rank: the request (null once it completed: the rank's process is alive) and whether it
    // completed.
    std::vector<MPI_Request> asks(all.size(), MPI_REQUEST_NULL);
    std::vector<char> alive(all.size(), 0);
    for (int r = 0; r < size_; ++r) {
      RankRecords& entry = all[static_cast<size_t>(r)];
      entry.rank = r;
      entry.global_rank = global_[static_cast<size_t>(r)];
      if (r == rank_) {
        entry.answered = true;
        entry.now_ns = absl::GetCurrentTimeNanos();
        entry.records = recorder.Snapshot();
        continue;
      }
      if (!gone)
        MPI_Issend(&rank_, 1, MPI_INT, r, kRequestTag, side_, &asks[static_cast<size_t>(r)]);
    }
    int missing = size_ - 1;
    while (!gone && missing > 0) {
      // Wait on while a rank that has not answered may still: before the silent deadline any
      // rank, after it (until the alive deadline) only a rank shown to be alive.
      const absl::Time now = absl::Now();
      bool waiting = false;
      for (int r = 0; r < size_; ++r) {
        const size_t ur = static_cast<size_t>(r);
        if (r == rank_ || all[ur].answered) continue;
        if (!alive[ur] && asks[ur] != MPI_REQUEST_NULL) {
          int done = 0;
          if (MPI_Test(&asks[ur], &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && done) alive[ur] = 1;
        }
        if (now < deadlines.silent || (alive[ur] && now < deadlines.alive)) waiting = true;
      }
      if (!waiting) break;
      serve();
      for (int r = 0; r < size_; ++r) {
        RankRecords& entry = all[static_cast<size_t>(r)];
        if (r == rank_ || entry.answered) continue;
        int flag = 0;
        MPI_Status status;
        if (MPI_Iprobe(r, kReplyTag, side_, &flag, &status) != MPI_SUCCESS || !flag) continue;
        int bytes = 0;
        MPI_Get_count(&status, MPI_BYTE, &bytes);
        std::vector<std::byte> buffer(static_cast<size_t>(std::max(bytes, 0)));
        if (MPI_Recv(buffer.data(), bytes, MPI_BYTE, r, kReplyTag, side_, MPI_STATUS_IGNORE) !=
            MPI_SUCCESS) {
          continue;
        }
        ci::DecodeRecords(
            std::string_view(reinterpret_cast<const char*>(buffer.data()), buffer.size()), &entry);
        --missing;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    for (MPI_Request& ask : asks) {
      if (ask != MPI_REQUEST_NULL) MPI_Request_free(&ask);
    }
    return all;
  }

  int64_t GlobalRank(int rank) const override {
    return rank >= 0 && rank < size_ ? global_[static_cast<size_t>(rank)] : -1;
  }

  [[noreturn]] void AbortJob(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  // A revocation notice. `group`: the fingerprint of the communicator's name and members' global
  // ranks; `cause`: NUL-terminated, cut to fit.
  struct Notice {
    uint64_t group;
    char cause[1024];
  };

  // Sends this rank's pending notice to every other rank, completes earlier sends, and takes the
  // notices that have arrived; calls the notice callback with the first cause (outside
  // notice_mu_). The caller holds MpiUseMutex.
  void ExchangeNoticesLocked() {
    std::string outgoing;
    {
      std::lock_guard<std::mutex> lock(notice_mu_);
      outgoing.swap(outgoing_);
    }
    if (!outgoing.empty()) {
      Notice notice{group_, {}};
      CopyText(outgoing, notice.cause);
      for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        Reply send;
        Append(send.bytes, &notice, sizeof(notice));
        if (MPI_Isend(send.bytes.data(), static_cast<int>(send.bytes.size()), MPI_BYTE, r,
                      kNoticeTag, side_, &send.request) == MPI_SUCCESS) {
          notices_.push_back(std::move(send));
        }
      }
    }
    std::erase_if(notices_, [](Reply& send) {
      int done = 0;
      MPI_Test(&send.request, &done, MPI_STATUS_IGNORE);
      return done != 0;
    });
    std::optional<std::string> cause;
    while (true) {
      int flag = 0;
      MPI_Status status;
      if (MPI_Iprobe(MPI_ANY_SOURCE, kNoticeTag, side_, &flag, &status) != MPI_SUCCESS || !flag) {
        break;
      }
      Notice notice{};
      int bytes = 0;
      MPI_Get_count(&status, MPI_BYTE, &bytes);
      std::vector<std::byte> buffer(static_cast<size_t>(std::max(bytes, 0)));
      if (MPI_Recv(buffer.data(), bytes, MPI_BYTE, status.MPI_SOURCE, kNoticeTag, side_,
                   MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        break;
      }
      if (buffer.size() != sizeof(Notice)) continue;  // not a notice of this build: ignored
      std::memcpy(&notice, buffer.data(), sizeof(notice));
      notice.cause[sizeof(notice.cause) - 1] = '\0';
      if (notice.group != group_ || cause.has_value()) continue;
      cause = notice.cause;
    }
    if (!cause.has_value()) return;
    std::function<void(const std::string&)> on_notice;
    {
      std::lock_guard<std::mutex> lock(notice_mu_);
      if (revoked_) return;  // this rank knew already (and told the others itself)
      revoked_ = true;       // the sender told every rank: nothing to pass on over this channel
      on_notice = on_notice_;
    }
    // Last: the callback may end this channel's communicator's use of it.
    if (on_notice) on_notice(*cause);
  }

  struct Reply {
    MPI_Request request = MPI_REQUEST_NULL;
    std::vector<std::byte> bytes;
  };

  template <size_t N>
  static void CopyText(const std::string& text, char (&out)[N]) {
    const size_t n = std::min(text.size(), N - 1);
    std::memcpy(out, text.data(), n);
    out[n] = '\0';
  }

  static void Append(std::vector<std::byte>& bytes, const void* data, size_t size) {
    const auto* begin = static_cast<const std::byte*>(data);
    bytes.insert(bytes.end(), begin, begin + size);
  }

  // This rank's records and state as the bytes of a reply (comm/watch/record_codec.h).
  static std::vector<std::byte> Encode(const FlightRecorder& recorder,
                                       const ci::ProcessState& state) {
    const std::string text =
        ci::EncodeRecords(recorder.Snapshot(), state, absl::GetCurrentTimeNanos());
    const auto* begin = reinterpret_cast<const std::byte*>(text.data());
    return std::vector<std::byte>(begin, begin + text.size());
  }

  MPI_Comm side_;  // MPI_COMM_NULL once retired
  uint64_t group_ = 0;
  int rank_ = 0;
  int size_ = 1;
  std::vector<int64_t> global_;
  // The receives kept posted for requests, and the asking ranks they receive.
  std::vector<MPI_Request> requests_;
  std::vector<int> askers_;
  std::vector<Reply> replies_;
  std::vector<Reply> notices_;  // notices sent, not yet seen to complete

  mutable std::mutex notice_mu_;
  bool revoked_ = false;                               // guarded by notice_mu_
  std::string outgoing_;                               // guarded by notice_mu_: a notice to send
  std::function<void(const std::string&)> on_notice_;  // guarded by notice_mu_
};

// Whether MPI grants the "multiple" thread level, which the watchdog's separate channel needs.
bool ThreadMultiple() {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided == MPI_THREAD_MULTIPLE;
}

// A separate channel for `comm` (collective over it: every rank must call this together), or null
// when MPI does not grant the "multiple" thread level or the duplicate fails.
}  // namespace

std::unique_ptr<MpiSideChannel> MakeSideChannel(MPI_Comm comm, std::string_view name) {
  if (!ThreadMultiple()) return nullptr;
  MPI_Comm side = MPI_COMM_NULL;
  if (MPI_Comm_dup(comm, &side) != MPI_SUCCESS) return nullptr;
  MPI_Comm_set_errhandler(side, MPI_ERRORS_RETURN);
  return std::make_unique<SideChannelImpl>(comm, side, name);
}

}  // namespace nmesh::comm::mpi
