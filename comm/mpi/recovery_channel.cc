#include "nmesh/comm/mpi/recovery_channel.h"

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/comm/mpi/quarantine.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {
namespace {

constexpr int kAnnounceTag = 1;
constexpr int kArriveTag = 2;
constexpr int kVerdictTag = 3;
constexpr size_t kMaxCause = 1024;
// How long a rank waits for the coordinator's verdict beyond the meeting's deadline.
constexpr absl::Duration kVerdictGrace = absl::Seconds(5);
// The deadline of a meeting whose options give none (a deadline in the past).
constexpr absl::Duration kDefaultMeetWait = absl::Seconds(60);

// An announcement or an arrival: the epoch, then the cause (no terminator; at most kMaxCause).
std::vector<std::byte> EpochAndText(int64_t epoch, std::string_view text) {
  text = text.substr(0, kMaxCause);
  std::vector<std::byte> bytes(sizeof(epoch) + text.size());
  std::memcpy(bytes.data(), &epoch, sizeof(epoch));
  if (!text.empty()) std::memcpy(bytes.data() + sizeof(epoch), text.data(), text.size());
  return bytes;
}

bool ParseEpochAndText(const std::vector<std::byte>& bytes, int64_t* epoch, std::string* text) {
  if (bytes.size() < sizeof(*epoch) || bytes.size() > sizeof(*epoch) + kMaxCause) return false;
  std::memcpy(epoch, bytes.data(), sizeof(*epoch));
  text->assign(reinterpret_cast<const char*>(bytes.data()) + sizeof(*epoch),
               bytes.size() - sizeof(*epoch));
  return true;
}

// The verdict's codes.
enum : int64_t { kAgreed = 0, kMissing = 1, kLate = 2 };

struct VerdictHeader {
  int64_t epoch;
  int64_t code;
  int64_t survivors;
  int64_t dead;
  int64_t text;  // bytes of the cause (kAgreed) or of the error
};

std::vector<std::byte> EncodeVerdict(int64_t code, const RecoveryVerdict& v,
                                     std::string_view text) {
  const VerdictHeader h{v.epoch, code, static_cast<int64_t>(v.survivors.size()),
                        static_cast<int64_t>(v.dead.size()), static_cast<int64_t>(text.size())};
  std::vector<std::byte> bytes(sizeof(h) + (v.survivors.size() + v.dead.size()) * sizeof(int64_t) +
                               text.size());
  std::byte* at = bytes.data();
  std::memcpy(at, &h, sizeof(h));
  at += sizeof(h);
  for (const std::vector<int64_t>* list : {&v.survivors, &v.dead}) {
    if (!list->empty()) std::memcpy(at, list->data(), list->size() * sizeof(int64_t));
    at += list->size() * sizeof(int64_t);
  }
  if (!text.empty()) std::memcpy(at, text.data(), text.size());
  return bytes;
}

bool DecodeVerdict(const std::vector<std::byte>& bytes, int64_t* code, RecoveryVerdict* v,
                   std::string* text) {
  VerdictHeader h;
  if (bytes.size() < sizeof(h)) return false;
  std::memcpy(&h, bytes.data(), sizeof(h));
  if (h.survivors < 0 || h.dead < 0 || h.text < 0 ||
      bytes.size() != sizeof(h) + static_cast<size_t>(h.survivors + h.dead) * sizeof(int64_t) +
                          static_cast<size_t>(h.text)) {
    return false;
  }
  const std::byte* at = bytes.data() + sizeof(h);
  v->epoch = h.epoch;
  *code = h.code;
  v->survivors.resize(static_cast<size_t>(h.survivors));
  v->dead.resize(static_cast<size_t>(h.dead));
  for (std::vector<int64_t>* list : {&v->survivors, &v->dead}) {
    if (!list->empty()) std::memcpy(list->data(), at, list->size() * sizeof(int64_t));
    at += list->size() * sizeof(int64_t);
  }
  text->assign(reinterpret_cast<const char*>(at), static_cast<size_t>(h.text));
  return true;
}

std::string RankList(const std::vector<int64_t>& ranks) {
  return absl::StrCat("[", absl::StrJoin(ranks, ", "), "]");
}

}  // namespace

struct MpiRecoveryChannel::Native {
  MPI_Comm comm = MPI_COMM_NULL;
  struct Send {
    MPI_Request request = MPI_REQUEST_NULL;
    std::shared_ptr<std::vector<std::byte>> bytes;
  };
  std::vector<Send> sends;  // guarded by the channel's mu_: not yet seen to complete
  // Arrivals for meetings this rank has not coordinated yet, by epoch: rank -> the cause it knew.
  std::map<int64_t, std::map<int, std::string>> early;

  // Starts a nonblocking send of `bytes` to `rank` with `tag`, kept until it completes.
  int Post(std::vector<std::byte> bytes, int rank, int tag) {
    Send send{MPI_REQUEST_NULL, std::make_shared<std::vector<std::byte>>(std::move(bytes))};
    const int rc = MPI_Isend(send.bytes->data(), static_cast<int>(send.bytes->size()), MPI_BYTE,
                             rank, tag, comm, &send.request);
    if (rc == MPI_SUCCESS) sends.push_back(std::move(send));
    return rc;
  }

  // The next message with `tag` from `source` (MPI_ANY_SOURCE: any), if one has arrived.
  bool Take(int source, int tag, int* from, std::vector<std::byte>* bytes) {
    int flag = 0;
    MPI_Status status;
    if (MPI_Iprobe(source, tag, comm, &flag, &status) != MPI_SUCCESS || !flag) return false;
    int count = 0;
    MPI_Get_count(&status, MPI_BYTE, &count);
    bytes->assign(static_cast<size_t>(std::max(count, 0)), std::byte{0});
    if (MPI_Recv(bytes->data(), count, MPI_BYTE, status.MPI_SOURCE, tag, comm, MPI_STATUS_IGNORE) !=
        MPI_SUCCESS) {
      return false;
    }
    *from = status.MPI_SOURCE;
    return true;
  }
};

MpiRecoveryChannel::MpiRecoveryChannel() : native_(std::make_unique<Native>()) {}

absl::StatusOr<std::unique_ptr<MpiRecoveryChannel>> MpiRecoveryChannel::Create(Session& session) {
  if (!Session::Running()) {
    return absl::FailedPreconditionError(
        "mpi::MpiRecoveryChannel: MPI is not initialised or already finalised");
  }
  std::unique_ptr<MpiRecoveryChannel> channel(new MpiRecoveryChannel());
  NMESH_RETURN_IF_ERROR(MpiStatus(MPI_Comm_dup(MPI_COMM_WORLD, &channel->native_->comm),
                                  "MPI_Comm_dup", session.world_rank()));
  MPI_Comm_set_errhandler(channel->native_->comm, MPI_ERRORS_RETURN);
  MPI_Comm_rank(channel->native_->comm, &channel->rank_);
  MPI_Comm_size(channel->native_->comm, &channel->size_);
  return channel;
}

MpiRecoveryChannel::~MpiRecoveryChannel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!Session::Running() || native_->comm == MPI_COMM_NULL) return;
  PollLocked();
  // Other ranks may still send to it (their announcements, a late arrival): never freed, as a
  // revoked communicator (comm/mpi/quarantine.h); the sends in flight complete on their own.
  std::vector<Abandoned> pending;
  for (Native::Send& send : native_->sends) pending.push_back({send.request, {send.bytes}});
  native_->sends.clear();
  Quarantine(native_->comm, MPI_COMM_NULL, std::move(pending));
  native_->comm = MPI_COMM_NULL;
}

void MpiRecoveryChannel::PollLocked() {
  std::erase_if(native_->sends, [](Native::Send& send) {
    int done = 0;
    MPI_Test(&send.request, &done, MPI_STATUS_IGNORE);
    return done != 0;
  });
  int from = 0;
  std::vector<std::byte> bytes;
  int64_t epoch = 0;
  std::string text;
  while (native_->Take(MPI_ANY_SOURCE, kAnnounceTag, &from, &bytes)) {
    if (ParseEpochAndText(bytes, &epoch, &text)) announced_.emplace(epoch, text);
  }
  while (native_->Take(MPI_ANY_SOURCE, kArriveTag, &from, &bytes)) {
    if (!ParseEpochAndText(bytes, &epoch, &text)) continue;
    if (epoch > closed_) {
      native_->early[epoch].emplace(from, text);
      continue;
    }
    // A meeting this rank closed without it.
    RecoveryVerdict late;
    late.epoch = epoch;
    native_->Post(EncodeVerdict(kLate, late,
                                absl::StrFormat("rank %d arrived after the survivors of failure %d "
                                                "agreed without it (%s)",
                                                from, epoch, Describe())),
                  from, kVerdictTag);
  }
}

absl::Status MpiRecoveryChannel::Announce(int64_t epoch, std::string_view cause) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!Session::Running()) return absl::FailedPreconditionError("MPI has been finalised");
  PollLocked();
  const std::string text(cause.substr(0, kMaxCause));
  if (!announced_.emplace(epoch, text).second) return absl::OkStatus();  // not the first here
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    NMESH_RETURN_IF_ERROR(
        MpiStatus(native_->Post(EpochAndText(epoch, text), r, kAnnounceTag), "MPI_Isend", rank_));
  }
  return absl::OkStatus();
}

std::optional<std::string> MpiRecoveryChannel::Announced(int64_t epoch) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!Session::Running()) return std::nullopt;
  PollLocked();
  auto it = announced_.find(epoch);
  if (it == announced_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<RecoveryVerdict> MpiRecoveryChannel::Meet(int64_t epoch,
                                                         const RecoveryMeetOptions& options) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!Session::Running()) return absl::FailedPreconditionError("MPI has been finalised");
  if (options.launch_rank != rank_ || options.launch_size != size_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "recovery over %s: the meeting was given launch rank %d of %d, but this process is "
        "rank %d of %d in MPI's world",
        Describe(), options.launch_rank, options.launch_size, rank_, size_));
  }
  const std::set<int64_t> gone(options.gone.begin(), options.gone.end());
  if (gone.count(rank_) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recovery over %s: rank %d is listed as gone", Describe(), rank_));
  }
  int coordinator = 0;
  while (gone.count(coordinator) != 0) ++coordinator;
  const absl::Time start = absl::Now();
  const absl::Time deadline =
      options.deadline > start ? options.deadline : start + kDefaultMeetWait;
  PollLocked();
  auto known = [&]() -> std::string {
    auto it = announced_.find(epoch);
    return it == announced_.end() ? std::string() : it->second;
  };

  if (rank_ != coordinator) {
    NMESH_RETURN_IF_ERROR(MpiStatus(
        native_->Post(EpochAndText(epoch, known()), coordinator, kArriveTag), "MPI_Isend", rank_));
    const absl::Time give_up = deadline + kVerdictGrace;
    while (absl::Now() < give_up) {
      PollLocked();
      int from = 0;
      std::vector<std::byte> bytes;
      while (native_->Take(coordinator, kVerdictTag, &from, &bytes)) {
        RecoveryVerdict verdict;
        int64_t code = 0;
        std::string text;
        if (!DecodeVerdict(bytes, &code, &verdict, &text) || verdict.epoch != epoch) continue;
        if (code == kMissing) return absl::DeadlineExceededError(text);
        if (code == kLate) return absl::FailedPreconditionError(text);
        verdict.cause = text;
        announced_.emplace(epoch, text);
        return verdict;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    return absl::DeadlineExceededError(absl::StrFormat(
        "rank %d: the coordinator of the meeting of failure %d (rank %d) gave no verdict within "
        "%s (%s)",
        rank_, epoch, coordinator, absl::FormatDuration(give_up - start), Describe()));
  }

  // The coordinator.
  std::map<int, std::string>& arrived = native_->early[epoch];
  arrived[rank_] = known();
  std::vector<int> expected;
  for (int r = 0; r < size_; ++r) {
    if (gone.count(r) == 0) expected.push_back(r);
  }
  size_t seen = 0;
  absl::Time last_arrival = start;
  bool missing = false;
  while (true) {
    PollLocked();
    if (arrived.size() != seen) {
      seen = arrived.size();
      last_arrival = absl::Now();
    }
    if (arrived.size() == expected.size()) break;
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      missing = options.need_all;
      break;
    }
    if (!options.need_all && now - last_arrival >= options.quiet) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  RecoveryVerdict verdict;
  verdict.epoch = epoch;
  for (int r : expected) {
    (arrived.count(r) != 0 ? verdict.survivors : verdict.dead).push_back(r);
  }
  std::string cause = known();
  for (const auto& [r, text] : arrived) {
    if (cause.empty()) cause = text;
  }
  std::string text = cause;
  const int64_t code = missing ? kMissing : kAgreed;
  if (missing) {
    text = absl::StrFormat(
        "ranks %s did not arrive at the meeting of failure %d within %s (%s)",
        RankList(verdict.dead), epoch,
        absl::FormatDuration(absl::Trunc(deadline - start, absl::Milliseconds(1))), Describe());
  }
  const std::vector<std::byte> message = EncodeVerdict(code, verdict, text);
  for (const auto& [r, unused] : arrived) {
    if (r != rank_) native_->Post(message, r, kVerdictTag);
  }
  native_->early.erase(epoch);
  closed_ = std::max(closed_, epoch);
  if (missing) return absl::DeadlineExceededError(text);
  verdict.cause = cause;
  announced_.emplace(epoch, cause);
  return verdict;
}

}  // namespace nmesh::comm::mpi
