#include "nmesh/comm/mpi/communicator.h"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "nmesh/base/status_macros.h"
#include "nmesh/base/timeout.h"
#include "nmesh/comm/flight_recorder.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/internal/watchdog.h"
#include "nmesh/comm/internal/work.h"
#include "nmesh/comm/mpi/native.h"
#include "nmesh/comm/mpi/reduce_ops.h"
#include "nmesh/comm/mpi/status.h"

namespace nmesh::comm::mpi {
namespace {

namespace ci = ::nmesh::comm::internal;

// Point-to-point messages of nmesh use one tag; communicators keep them apart from other traffic.
constexpr int kTag = 0x6e6d;

// Memory MPI may use until a request completes: a staging copy of an input that overlaps the
// output, or the whole staging area of a timed operation. Shared so that an abandoned request can
// keep it alive.
using Scratch = std::shared_ptr<std::vector<std::byte>>;

// The caller's memory one operation reads (`in`, `in_bytes`) and writes (`out`, `out_bytes`). A
// timed operation works on a staging copy of it (see Execute). `one_buffer`: the operation reads
// and writes a single buffer (broadcast), so the staging area is one region.
struct Io {
  const void* in = nullptr;
  size_t in_bytes = 0;
  void* out = nullptr;
  size_t out_bytes = 0;
  bool one_buffer = false;
  // The staging copy of `out` starts as a copy of the caller's `out` (for outputs with gaps that
  // the operation does not write, e.g. all_to_all_v).
  bool preserve_out = false;
};

bool Overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto x = reinterpret_cast<uintptr_t>(a);
  const auto y = reinterpret_cast<uintptr_t>(b);
  return x < y + b_bytes && y < x + a_bytes;
}

// Returns `src`, or a staged copy of it when it overlaps the output (MPI forbids aliasing other
// than MPI_IN_PLACE).
const void* StageIfOverlapping(const void* src, size_t src_bytes, const void* dst, size_t dst_bytes,
                               Scratch& scratch) {
  if (!Overlaps(src, src_bytes, dst, dst_bytes)) return src;
  scratch = std::make_shared<std::vector<std::byte>>(src_bytes);
  std::memcpy(scratch->data(), src, src_bytes);
  return scratch->data();
}

// Keeps the staging area of a request that was still pending when its communicator was destroyed.
// MPI may use it until MPI_Finalize, so it must not be freed; holding it here (until the process
// exits) keeps it reachable, so leak checkers do not report it. Only timed-out collectives get
// here. Thread-safe.
void KeepUntilExit(Scratch scratch) {
  static std::mutex mu;
  static auto* kept = new std::vector<Scratch>();
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(std::move(scratch));
}

// An operation issued through the asynchronous path: one or two MPI requests (sendrecv: a receive
// and a send), the staging copies MPI may still use, and what runs on completion (kAvg's division).
class MpiWork final : public Work::Impl {
 public:
  MpiWork(const Communicator& comm, ci::OpName op, int rank) : Impl(comm, op), rank_(rank) {}

  ~MpiWork() override {
    // A handle dropped while MPI still owns the request: never free memory MPI may still use.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || pending_ == 0) return;
    int done = 0;
    MPI_Testall(2, requests_.data(), &done, MPI_STATUSES_IGNORE);
    if (!done) Abandon();
  }

  std::array<MPI_Request, 2> requests_ = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  int pending_ = 0;                    // how many of requests_ were started
  std::vector<Scratch> scratch_;       // staging MPI may use until completion
  std::vector<int> ints_;              // all_to_all_v's int counts and displacements
  std::function<void()> on_complete_;  // kAvg's division, on success
  std::string call_;                   // the MPI call, for error messages
  bool cancellable_ = false;           // point to point

 protected:
  bool Poll(absl::Status* status) override {
    int done = 0;
    const int rc = MPI_Testall(2, requests_.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      *status = Finish(rc, "MPI_Testall");
      return true;
    }
    if (!done) return false;
    *status = Finish(MPI_SUCCESS, "MPI_Testall");
    return true;
  }

  absl::Status Block() override {
    return Finish(MPI_Waitall(2, requests_.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  }

  void Abandon() override {
    for (MPI_Request& request : requests_) {
      if (request == MPI_REQUEST_NULL) continue;
      if (cancellable_) {
        MPI_Cancel(&request);
        int done = 0;
        MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (done) continue;
      }
    }
    for (Scratch& s : scratch_) KeepUntilExit(std::move(s));
    scratch_.clear();
    pending_ = 0;
  }

 private:
  absl::Status Finish(int rc, const char* call) {
    pending_ = 0;
    scratch_.clear();
    if (rc != MPI_SUCCESS) {
      return absl::Status(
          MpiStatus(rc, call, rank_).code(),
          absl::StrFormat("%s: %s", context(), MpiStatus(rc, call, rank_).message()));
    }
    if (on_complete_) on_complete_();
    return absl::OkStatus();
  }

  int rank_;
};

// The separate channel of one communicator (comm/watchdog.h): a duplicate of it, used by the
// watchdog thread only, over which ranks ask each other for their flight records. A request is one
// int (the asking rank) with kRequestTag; the answer, with kReplyTag, is a ReplyHeader followed by
// the records as bytes (every rank runs the same binary).
class MpiSideChannel final : public ci::SideChannel {
 public:
  static constexpr int kRequestTag = 1;
  static constexpr int kReplyTag = 2;

  // Takes ownership of `side`, a duplicate of `comm`.
  MpiSideChannel(MPI_Comm comm, MPI_Comm side) : side_(side) {
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
    global_.assign(global.begin(), global.end());
    for (int64_t& g : global_) {
      if (g == MPI_UNDEFINED) g = -1;
    }
  }

  ~MpiSideChannel() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    if (request_ != MPI_REQUEST_NULL) {
      MPI_Cancel(&request_);
      MPI_Wait(&request_, MPI_STATUS_IGNORE);
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

  void Serve(const FlightRecorder& recorder,
             const std::function<ci::ProcessState()>& state) override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    std::erase_if(replies_, [](Reply& reply) {
      int done = 0;
      MPI_Test(&reply.request, &done, MPI_STATUS_IGNORE);
      return done != 0;
    });
    while (true) {
      if (request_ == MPI_REQUEST_NULL && MPI_Irecv(&asker_, 1, MPI_INT, MPI_ANY_SOURCE,
                                                    kRequestTag, side_, &request_) != MPI_SUCCESS) {
        return;
      }
      int done = 0;
      MPI_Status status;
      if (MPI_Test(&request_, &done, &status) != MPI_SUCCESS || !done) return;
      request_ = MPI_REQUEST_NULL;
      Reply reply;
      reply.bytes = Encode(recorder, state());
      if (MPI_Isend(reply.bytes.data(), static_cast<int>(reply.bytes.size()), MPI_BYTE,
                    status.MPI_SOURCE, kReplyTag, side_, &reply.request) == MPI_SUCCESS) {
        replies_.push_back(std::move(reply));
      }
    }
  }

  std::vector<RankRecords> Exchange(const FlightRecorder& recorder, absl::Time deadline,
                                    const std::function<void()>& serve) override {
    std::vector<RankRecords> all(static_cast<size_t>(size_));
    std::vector<MPI_Request> asks;
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
      MPI_Request ask = MPI_REQUEST_NULL;
      if (MPI_Isend(&rank_, 1, MPI_INT, r, kRequestTag, side_, &ask) == MPI_SUCCESS) {
        asks.push_back(ask);
      }
    }
    int missing = size_ - 1;
    while (missing > 0 && absl::Now() < deadline) {
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
        Decode(buffer, &entry);
        --missing;
      }
      absl::SleepFor(absl::Milliseconds(1));
    }
    for (MPI_Request& ask : asks) MPI_Request_free(&ask);
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
  // A reply: the header, `count` OpRecords, then `axes` entries, each an AxisHeader followed by
  // its `members` global ranks (int64).
  struct ReplyHeader {
    int64_t now_ns;
    int64_t count;
    int64_t axes;
    char blocked_in[160];  // NUL-terminated, truncated
  };
  struct AxisHeader {
    char axis[64];  // NUL-terminated, truncated
    uint64_t group;
    uint64_t entered;
    OpRecord waiting;
    int64_t members;
  };
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

  static std::vector<std::byte> Encode(const FlightRecorder& recorder,
                                       const ci::ProcessState& state) {
    const std::vector<OpRecord> records = recorder.Snapshot();
    ReplyHeader header{absl::GetCurrentTimeNanos(),
                       static_cast<int64_t>(records.size()),
                       static_cast<int64_t>(state.axes.size()),
                       {}};
    CopyText(state.blocked_in, header.blocked_in);
    std::vector<std::byte> bytes;
    Append(bytes, &header, sizeof(header));
    Append(bytes, records.data(), records.size() * sizeof(OpRecord));
    for (const AxisProgress& axis : state.axes) {
      AxisHeader a{
          {}, axis.group, axis.entered, axis.waiting, static_cast<int64_t>(axis.members.size())};
      CopyText(axis.axis, a.axis);
      Append(bytes, &a, sizeof(a));
      Append(bytes, axis.members.data(), axis.members.size() * sizeof(int64_t));
    }
    return bytes;
  }

  // Reads what Encode wrote; a short or malformed reply yields what could be read.
  static void Decode(const std::vector<std::byte>& bytes, RankRecords* entry) {
    size_t at = 0;
    auto read = [&](void* out, size_t size) {
      if (bytes.size() - at < size) return false;
      std::memcpy(out, bytes.data() + at, size);
      at += size;
      return true;
    };
    ReplyHeader header;
    if (!read(&header, sizeof(header))) return;
    entry->answered = true;
    entry->now_ns = header.now_ns;
    header.blocked_in[sizeof(header.blocked_in) - 1] = '\0';
    entry->blocked_in = header.blocked_in;
    const size_t n = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(header.count, 0)),
                                      (bytes.size() - at) / sizeof(OpRecord));
    entry->records.resize(n);
    read(entry->records.data(), n * sizeof(OpRecord));
    for (int64_t i = 0; i < header.axes; ++i) {
      AxisHeader a;
      if (!read(&a, sizeof(a)) || a.members < 0 ||
          static_cast<size_t>(a.members) > (bytes.size() - at) / sizeof(int64_t)) {
        return;
      }
      a.axis[sizeof(a.axis) - 1] = '\0';
      AxisProgress axis{a.axis, a.group, std::vector<int64_t>(static_cast<size_t>(a.members)),
                        a.entered, a.waiting};
      read(axis.members.data(), axis.members.size() * sizeof(int64_t));
      entry->axes.push_back(std::move(axis));
    }
  }

  MPI_Comm side_;
  int rank_ = 0;
  int size_ = 1;
  std::vector<int64_t> global_;
  int asker_ = 0;
  MPI_Request request_ = MPI_REQUEST_NULL;
  std::vector<Reply> replies_;
};

// Whether MPI grants the "multiple" thread level, which the watchdog's separate channel needs.
bool ThreadMultiple() {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided == MPI_THREAD_MULTIPLE;
}

// A separate channel for `comm` (collective over it: every rank must call this together), or null
// when MPI does not grant the "multiple" thread level or the duplicate fails.
std::unique_ptr<MpiSideChannel> MakeSideChannel(MPI_Comm comm) {
  if (!ThreadMultiple()) return nullptr;
  MPI_Comm side = MPI_COMM_NULL;
  if (MPI_Comm_dup(comm, &side) != MPI_SUCCESS) return nullptr;
  MPI_Comm_set_errhandler(side, MPI_ERRORS_RETURN);
  return std::make_unique<MpiSideChannel>(comm, side);
}

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm`, which has MPI_ERRORS_RETURN set. `collective`: every rank of `comm`
  // constructs it together, so a separate channel for the watchdog can be made (when `options`
  // has a timeout).
  MpiCommunicator(MPI_Comm comm, CommOptions options, bool collective = true)
      : comm_(comm), options_(std::move(options)) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // Only a communicator created with a timeout gets one: the duplicate is one more collective
    // per creation, which meshes built without timeouts should not pay.
    if (collective && options_.timeout.has_value()) side_ = MakeSideChannel(comm_);
    if (side_ != nullptr) Watch(side_.get());
  }
  // Borrows `comm` (adoption): sets MPI_ERRORS_RETURN on it for its lifetime and restores the
  // caller's error handler on destruction, without freeing it.
  MpiCommunicator(MPI_Comm comm, CommOptions options, MPI_Errhandler restore)
      : MpiCommunicator(comm, std::move(options), /*collective=*/false) {
    owned_ = false;
    restore_ = restore;
  }

  ~MpiCommunicator() override {
    Unwatch();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;  // MPI_Finalize already released everything.
    side_.reset();
    works_.OrphanAll();
    for (Abandoned& a : abandoned_) {
      int done = 0;
      MPI_Test(&a.request, &done, MPI_STATUS_IGNORE);
      // MPI may still read or write the staging copy: never free it under MPI.
      if (!done) KeepUntilExit(std::move(a.scratch));
    }
    if (owned_) {
      MPI_Comm_free(&comm_);
    } else {
      MPI_Comm_set_errhandler(comm_, restore_);
      MPI_Errhandler_free(&restore_);
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MPI_Comm native() const { return comm_; }
  std::string_view backend() const override { return "mpi"; }
  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  const CommOptions& options() const override { return options_; }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplitAgreed(std::optional<int> color, int key,
                                                              CommOptions options) override {
    // Without a timeout the exchange below only guards against bad colors, which the caller has
    // ruled out; with one, it is what bounds the wait, so it stays.
    if (options_.timeout) return DoSplit(color, key, std::move(options));
    return CommSplit(color, key, std::move(options));
  }

  absl::StatusOr<std::unique_ptr<Communicator>> DoSplit(std::optional<int> color, int key,
                                                        CommOptions options) override {
    // Every rank learns every color first, so a bad color fails on all ranks instead of leaving
    // the others hung in MPI_Comm_split, and the exchange honours the timeout.
    const int32_t mine[2] = {color.has_value() ? 1 : 0, color.value_or(0)};
    std::vector<int32_t> all(2 * static_cast<size_t>(size_));
    NMESH_RETURN_IF_ERROR(Execute(
        OpKind::kSplit, "MPI_Allgather",
        [&] { return MPI_Allgather(mine, 2, MPI_INT32_T, all.data(), 2, MPI_INT32_T, comm_); },
        "MPI_Iallgather",
        [&](const void* in, void* out, MPI_Request* r) {
          return MPI_Iallgather(in, 2, MPI_INT32_T, out, 2, MPI_INT32_T, comm_, r);
        },
        {.in = mine, .in_bytes = sizeof(mine), .out = all.data(), .out_bytes = all.size() * 4}));
    std::vector<std::string> bad;
    for (int r = 0; r < size_; ++r) {
      const int32_t has = all[2 * static_cast<size_t>(r)];
      const int32_t c = all[2 * static_cast<size_t>(r) + 1];
      if (has && c < 0) bad.push_back(absl::StrFormat("rank %d passed %d", r, c));
    }
    if (!bad.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: colors must be non-negative or absent; %s (rank %d of %d)",
          ci::OpContext(*this, OpKind::kSplit), absl::StrJoin(bad, ", "), rank_, size_));
    }
    return CommSplit(color, key, std::move(options));
  }

  // MPI_Comm_split (blocking), with MPI_UNDEFINED for no color.
  absl::StatusOr<std::unique_ptr<Communicator>> CommSplit(std::optional<int> color, int key,
                                                          CommOptions options) {
    MPI_Comm out = MPI_COMM_NULL;
    NMESH_RETURN_IF_ERROR(Check(OpKind::kSplit,
                                MPI_Comm_split(comm_, color ? *color : MPI_UNDEFINED, key, &out),
                                "MPI_Comm_split"));
    if (out == MPI_COMM_NULL) return std::unique_ptr<Communicator>();
    if (int rc = MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN); rc != MPI_SUCCESS) {
      MPI_Comm_free(&out);
      return Check(OpKind::kSplit, rc, "MPI_Comm_set_errhandler");
    }
    return std::unique_ptr<Communicator>(new MpiCommunicator(out, std::move(options)));
  }

  absl::Status DoAllReduce(const void* send, void* recv, size_t count, DataType type,
                           ReduceOp op) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kAllReduce, count));
    const size_t bytes = count * DataTypeSize(type);
    const int n = static_cast<int>(count);
    const MPI_Datatype dt = MpiDatatype(type);
    const MPI_Op mop = MpiOp(type, op);
    NMESH_RETURN_IF_ERROR(Execute(
        OpKind::kAllReduce, "MPI_Allreduce",
        [&] {
          Scratch scratch;  // the timed path stages everything anyway: only this path needs it
          const void* in =
              send == recv ? MPI_IN_PLACE : StageIfOverlapping(send, bytes, recv, bytes, scratch);
          return MPI_Allreduce(in, recv, n, dt, mop, comm_);
        },
        "MPI_Iallreduce",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Iallreduce(staged_in, staged_out, n, dt, mop, comm_, r);
        },
        {.in = send, .in_bytes = bytes, .out = recv, .out_bytes = bytes}));
    if (op == ReduceOp::kAvg) DivideElements(recv, count, type, size_);
    return absl::OkStatus();
  }

  absl::Status DoAllGather(const void* send, void* recv, size_t send_count,
                           DataType type) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kAllGather, send_count));
    const size_t bytes = send_count * DataTypeSize(type);
    const int n = static_cast<int>(send_count);
    const MPI_Datatype dt = MpiDatatype(type);
    return Execute(
        OpKind::kAllGather, "MPI_Allgather",
        [&] {
          Scratch scratch;
          const void* in_place_slot = static_cast<const std::byte*>(recv) + bytes * rank_;
          const void* in = send == in_place_slot
                               ? MPI_IN_PLACE
                               : StageIfOverlapping(send, bytes, recv, bytes * size_, scratch);
          return MPI_Allgather(in, n, dt, recv, n, dt, comm_);
        },
        "MPI_Iallgather",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Iallgather(staged_in, n, dt, staged_out, n, dt, comm_, r);
        },
        {.in = send, .in_bytes = bytes, .out = recv, .out_bytes = bytes * size_});
  }

  absl::Status DoReduceScatter(const void* send, void* recv, size_t recv_count, DataType type,
                               ReduceOp op) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kReduceScatter, recv_count));
    const size_t bytes = recv_count * DataTypeSize(type);
    const int n = static_cast<int>(recv_count);
    const MPI_Datatype dt = MpiDatatype(type);
    const MPI_Op mop = MpiOp(type, op);
    NMESH_RETURN_IF_ERROR(Execute(
        OpKind::kReduceScatter, "MPI_Reduce_scatter_block",
        [&] {
          // MPI's in-place reduce-scatter reads from and writes to the start of the receive
          // buffer, which is not nmesh's layout (recv == send + rank * count): stage any
          // overlapping input.
          Scratch scratch;
          const void* in = StageIfOverlapping(send, bytes * size_, recv, bytes, scratch);
          return MPI_Reduce_scatter_block(in, recv, n, dt, mop, comm_);
        },
        "MPI_Ireduce_scatter_block",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Ireduce_scatter_block(staged_in, staged_out, n, dt, mop, comm_, r);
        },
        {.in = send, .in_bytes = bytes * size_, .out = recv, .out_bytes = bytes}));
    if (op == ReduceOp::kAvg) DivideElements(recv, recv_count, type, size_);
    return absl::OkStatus();
  }

  absl::Status DoBroadcast(void* buffer, size_t count, DataType type, int root) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kBroadcast, count));
    const int n = static_cast<int>(count);
    const MPI_Datatype dt = MpiDatatype(type);
    const size_t bytes = count * DataTypeSize(type);
    return Execute(
        OpKind::kBroadcast, "MPI_Bcast", [&] { return MPI_Bcast(buffer, n, dt, root, comm_); },
        "MPI_Ibcast",
        [&](const void*, void* staged, MPI_Request* r) {
          return MPI_Ibcast(staged, n, dt, root, comm_, r);
        },
        {.in = buffer, .in_bytes = bytes, .out = buffer, .out_bytes = bytes, .one_buffer = true});
  }

  absl::Status DoAllToAll(const void* send, void* recv, size_t count, DataType type) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kAllToAll, count));
    const int n = static_cast<int>(count);
    const MPI_Datatype dt = MpiDatatype(type);
    const size_t bytes = count * DataTypeSize(type) * size_;
    return Execute(
        OpKind::kAllToAll, "MPI_Alltoall",
        [&] { return MPI_Alltoall(send, n, dt, recv, n, dt, comm_); }, "MPI_Ialltoall",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Ialltoall(staged_in, n, dt, staged_out, n, dt, comm_, r);
        },
        {.in = send, .in_bytes = bytes, .out = recv, .out_bytes = bytes});
  }

  absl::Status DoSend(const void* buffer, size_t count, DataType type, int peer) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kSend, count));
    const int n = static_cast<int>(count);
    const MPI_Datatype dt = MpiDatatype(type);
    return Execute(
        OpKind::kSend, "MPI_Send", [&] { return MPI_Send(buffer, n, dt, peer, kTag, comm_); },
        "MPI_Isend",
        [&](const void* staged, void*, MPI_Request* r) {
          return MPI_Isend(staged, n, dt, peer, kTag, comm_, r);
        },
        {.in = buffer, .in_bytes = count * DataTypeSize(type)}, /*cancellable=*/true);
  }

  absl::Status DoRecv(void* buffer, size_t count, DataType type, int peer) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kRecv, count));
    const int n = static_cast<int>(count);
    const MPI_Datatype dt = MpiDatatype(type);
    return Execute(
        OpKind::kRecv, "MPI_Recv",
        [&] { return MPI_Recv(buffer, n, dt, peer, kTag, comm_, MPI_STATUS_IGNORE); }, "MPI_Irecv",
        [&](const void*, void* staged, MPI_Request* r) {
          return MPI_Irecv(staged, n, dt, peer, kTag, comm_, r);
        },
        {.out = buffer, .out_bytes = count * DataTypeSize(type)}, /*cancellable=*/true);
  }

  absl::Status DoAllToAllV(const void* send, absl::Span<const size_t> send_counts,
                           absl::Span<const size_t> send_displs, void* recv,
                           absl::Span<const size_t> recv_counts,
                           absl::Span<const size_t> recv_displs, DataType type) override {
    std::vector<int> sc(static_cast<size_t>(size_)), sd(sc.size()), rc(sc.size()), rd(sc.size());
    size_t send_end = 0, recv_end = 0;
    for (size_t j = 0; j < sc.size(); ++j) {
      for (size_t v : {send_counts[j], send_displs[j], recv_counts[j], recv_displs[j]}) {
        NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kAllToAllV, v));
      }
      sc[j] = static_cast<int>(send_counts[j]);
      sd[j] = static_cast<int>(send_displs[j]);
      rc[j] = static_cast<int>(recv_counts[j]);
      rd[j] = static_cast<int>(recv_displs[j]);
      if (send_counts[j] > 0) send_end = std::max(send_end, send_displs[j] + send_counts[j]);
      if (recv_counts[j] > 0) recv_end = std::max(recv_end, recv_displs[j] + recv_counts[j]);
    }
    const MPI_Datatype dt = MpiDatatype(type);
    const size_t e = DataTypeSize(type);
    return Execute(
        OpKind::kAllToAllV, "MPI_Alltoallv",
        [&] {
          return MPI_Alltoallv(send, sc.data(), sd.data(), dt, recv, rc.data(), rd.data(), dt,
                               comm_);
        },
        "MPI_Ialltoallv",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Ialltoallv(staged_in, sc.data(), sd.data(), dt, staged_out, rc.data(),
                                rd.data(), dt, comm_, r);
        },
        {.in = send,
         .in_bytes = send_end * e,
         .out = recv,
         .out_bytes = recv_end * e,
         .preserve_out = true});
  }

  absl::Status DoGather(const void* send, void* recv, size_t send_count, DataType type,
                        int root) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kGather, send_count));
    const int n = static_cast<int>(send_count);
    const MPI_Datatype dt = MpiDatatype(type);
    const size_t bytes = send_count * DataTypeSize(type);
    const bool is_root = rank_ == root;
    return Execute(
        OpKind::kGather, "MPI_Gather",
        [&] {
          const bool in_place =
              is_root && send == static_cast<const std::byte*>(recv) + bytes * rank_;
          return MPI_Gather(in_place ? MPI_IN_PLACE : send, n, dt, recv, n, dt, root, comm_);
        },
        "MPI_Igather",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Igather(staged_in, n, dt, staged_out, n, dt, root, comm_, r);
        },
        {.in = send, .in_bytes = bytes, .out = recv, .out_bytes = is_root ? bytes * size_ : 0});
  }

  absl::Status DoScatter(const void* send, void* recv, size_t recv_count, DataType type,
                         int root) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kScatter, recv_count));
    const int n = static_cast<int>(recv_count);
    const MPI_Datatype dt = MpiDatatype(type);
    const size_t bytes = recv_count * DataTypeSize(type);
    const bool is_root = rank_ == root;
    return Execute(
        OpKind::kScatter, "MPI_Scatter",
        [&] {
          const bool in_place =
              is_root && recv == static_cast<const std::byte*>(send) + bytes * rank_;
          return MPI_Scatter(send, n, dt, in_place ? MPI_IN_PLACE : recv, n, dt, root, comm_);
        },
        "MPI_Iscatter",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Iscatter(staged_in, n, dt, staged_out, n, dt, root, comm_, r);
        },
        {.in = send, .in_bytes = is_root ? bytes * size_ : 0, .out = recv, .out_bytes = bytes});
  }

  absl::Status DoReduce(const void* send, void* recv, size_t count, DataType type, ReduceOp op,
                        int root) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kReduce, count));
    const int n = static_cast<int>(count);
    const MPI_Datatype dt = MpiDatatype(type);
    const MPI_Op mop = MpiOp(type, op);
    const size_t bytes = count * DataTypeSize(type);
    const bool is_root = rank_ == root;
    NMESH_RETURN_IF_ERROR(Execute(
        OpKind::kReduce, "MPI_Reduce",
        [&] {
          const bool in_place = is_root && send == recv;
          return MPI_Reduce(in_place ? MPI_IN_PLACE : send, recv, n, dt, mop, root, comm_);
        },
        "MPI_Ireduce",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          return MPI_Ireduce(staged_in, staged_out, n, dt, mop, root, comm_, r);
        },
        {.in = send, .in_bytes = bytes, .out = recv, .out_bytes = is_root ? bytes : 0}));
    if (is_root && op == ReduceOp::kAvg) DivideElements(recv, count, type, size_);
    return absl::OkStatus();
  }

  absl::Status DoSendRecv(const void* send, size_t send_count, int dest, void* recv,
                          size_t recv_count, int source, DataType type) override {
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kSendRecv, send_count));
    NMESH_RETURN_IF_ERROR(CheckCount(OpKind::kSendRecv, recv_count));
    const int ns = static_cast<int>(send_count);
    const int nr = static_cast<int>(recv_count);
    const MPI_Datatype dt = MpiDatatype(type);
    return Execute(
        OpKind::kSendRecv, "MPI_Sendrecv",
        [&] {
          return MPI_Sendrecv(send, ns, dt, dest, kTag, recv, nr, dt, source, kTag, comm_,
                              MPI_STATUS_IGNORE);
        },
        "MPI_Irecv/MPI_Isend",
        [&](const void* staged_in, void* staged_out, MPI_Request* r) {
          if (int rc = MPI_Irecv(staged_out, nr, dt, source, kTag, comm_, &r[0]);
              rc != MPI_SUCCESS) {
            return rc;
          }
          return MPI_Isend(staged_in, ns, dt, dest, kTag, comm_, &r[1]);
        },
        {.in = send,
         .in_bytes = send_count * DataTypeSize(type),
         .out = recv,
         .out_bytes = recv_count * DataTypeSize(type)},
        /*cancellable=*/true);
  }

  // The asynchronous path: the nonblocking MPI call on the caller's buffers. Exact in-place
  // layouts become MPI_IN_PLACE; any other overlap of input and output is staged (MPI forbids
  // aliasing), and the staging copy lives in the handle until completion.
  absl::StatusOr<Work> DoAsync(const OpArgs& a, const AsyncOptions&) override {
    NMESH_RETURN_IF_ERROR(CheckCount(a.op, a.count));
    NMESH_RETURN_IF_ERROR(CheckCount(a.op, a.recv_count));
    auto work = std::make_shared<MpiWork>(*this, a.op, rank_);
    const MPI_Datatype dt = a.op == OpKind::kBarrier ? MPI_BYTE : MpiDatatype(a.type);
    const MPI_Op mop = a.op == OpKind::kBarrier ? MPI_OP_NULL : MpiOp(a.type, a.reduce);
    const int n = static_cast<int>(a.count);
    const size_t e = a.op == OpKind::kBarrier ? 0 : DataTypeSize(a.type);
    const size_t bytes = a.count * e;
    MPI_Request* r = work->requests_.data();
    auto stage = [&](const void* src, size_t src_bytes, const void* dst, size_t dst_bytes) {
      Scratch scratch;
      const void* in = StageIfOverlapping(src, src_bytes, dst, dst_bytes, scratch);
      if (scratch) work->scratch_.push_back(std::move(scratch));
      return in;
    };
    auto divide_on = [&](void* out, size_t count) {
      if (a.reduce != ReduceOp::kAvg) return;
      const DataType type = a.type;
      const int size = size_;
      work->on_complete_ = [out, count, type, size] { DivideElements(out, count, type, size); };
    };
    int rc = MPI_SUCCESS;
    const char* call = "";
    const bool is_root = rank_ == a.root;
    if (a.op == OpKind::kAllReduce) {
      call = "MPI_Iallreduce";
      const void* in = a.send == a.recv ? MPI_IN_PLACE : stage(a.send, bytes, a.recv, bytes);
      rc = MPI_Iallreduce(in, a.recv, n, dt, mop, comm_, r);
      divide_on(a.recv, a.count);
    } else if (a.op == OpKind::kAllGather) {
      call = "MPI_Iallgather";
      const void* slot = static_cast<const std::byte*>(a.recv) + bytes * rank_;
      const void* in = a.send == slot ? MPI_IN_PLACE : stage(a.send, bytes, a.recv, bytes * size_);
      rc = MPI_Iallgather(in, n, dt, a.recv, n, dt, comm_, r);
    } else if (a.op == OpKind::kReduceScatter) {
      call = "MPI_Ireduce_scatter_block";
      const void* in = stage(a.send, bytes * size_, a.recv, bytes);
      rc = MPI_Ireduce_scatter_block(in, a.recv, n, dt, mop, comm_, r);
      divide_on(a.recv, a.count);
    } else if (a.op == OpKind::kBroadcast) {
      call = "MPI_Ibcast";
      rc = MPI_Ibcast(a.recv, n, dt, a.root, comm_, r);
    } else if (a.op == OpKind::kAllToAll) {
      call = "MPI_Ialltoall";
      rc = MPI_Ialltoall(a.send, n, dt, a.recv, n, dt, comm_, r);
    } else if (a.op == OpKind::kSend) {
      call = "MPI_Isend";
      work->cancellable_ = true;
      rc = MPI_Isend(a.send, n, dt, a.root, kTag, comm_, r);
    } else if (a.op == OpKind::kRecv) {
      call = "MPI_Irecv";
      work->cancellable_ = true;
      rc = MPI_Irecv(a.recv, n, dt, a.root, kTag, comm_, r);
    } else if (a.op == OpKind::kBarrier) {
      call = "MPI_Ibarrier";
      rc = MPI_Ibarrier(comm_, r);
    } else if (a.op == OpKind::kAllToAllV) {
      call = "MPI_Ialltoallv";
      const size_t un = static_cast<size_t>(size_);
      work->ints_.resize(4 * un);
      int* ints = work->ints_.data();
      for (size_t j = 0; j < un; ++j) {
        for (size_t v : {a.send_counts[j], a.send_displs[j], a.recv_counts[j], a.recv_displs[j]}) {
          NMESH_RETURN_IF_ERROR(CheckCount(a.op, v));
        }
        ints[j] = static_cast<int>(a.send_counts[j]);
        ints[un + j] = static_cast<int>(a.send_displs[j]);
        ints[2 * un + j] = static_cast<int>(a.recv_counts[j]);
        ints[3 * un + j] = static_cast<int>(a.recv_displs[j]);
      }
      rc = MPI_Ialltoallv(a.send, ints, ints + un, dt, a.recv, ints + 2 * un, ints + 3 * un, dt,
                          comm_, r);
    } else if (a.op == OpKind::kGather) {
      call = "MPI_Igather";
      const bool in_place =
          is_root && a.send == static_cast<const std::byte*>(a.recv) + bytes * rank_;
      rc = MPI_Igather(in_place ? MPI_IN_PLACE : a.send, n, dt, a.recv, n, dt, a.root, comm_, r);
    } else if (a.op == OpKind::kScatter) {
      call = "MPI_Iscatter";
      const bool in_place =
          is_root && a.recv == static_cast<const std::byte*>(a.send) + bytes * rank_;
      rc = MPI_Iscatter(a.send, n, dt, in_place ? MPI_IN_PLACE : a.recv, n, dt, a.root, comm_, r);
    } else if (a.op == OpKind::kReduce) {
      call = "MPI_Ireduce";
      const bool in_place = is_root && a.send == a.recv;
      rc = MPI_Ireduce(in_place ? MPI_IN_PLACE : a.send, a.recv, n, dt, mop, a.root, comm_, r);
      if (is_root) divide_on(a.recv, a.count);
    } else if (a.op == OpKind::kSendRecv) {
      call = "MPI_Irecv";
      work->cancellable_ = true;
      rc = MPI_Irecv(a.recv, static_cast<int>(a.recv_count), dt, a.source, kTag, comm_, &r[0]);
      if (rc == MPI_SUCCESS) {
        call = "MPI_Isend";
        rc = MPI_Isend(a.send, n, dt, a.root, kTag, comm_, &r[1]);
        if (rc != MPI_SUCCESS) {
          MPI_Cancel(&r[0]);
          MPI_Wait(&r[0], MPI_STATUS_IGNORE);
        }
      }
    } else {
      return absl::InternalError(absl::StrFormat("mpi: unknown operation '%s'", OpKindName(a.op)));
    }
    NMESH_RETURN_IF_ERROR(Check(a.op, rc, call));
    work->pending_ = 2;
    return Work(works_.Add(std::move(work)));
  }

  absl::Status DoBarrier() override {
    return Execute(
        OpKind::kBarrier, "MPI_Barrier", [&] { return MPI_Barrier(comm_); }, "MPI_Ibarrier",
        [&](const void*, void*, MPI_Request* r) { return MPI_Ibarrier(comm_, r); }, Io{});
  }

  absl::Status Abort() override {
    abort_state_.Mark("Abort() was called");
    return absl::OkStatus();
  }

  absl::Status DoSetTimeout(std::optional<absl::Duration> timeout) override {
    options_.timeout = timeout;
    return absl::OkStatus();
  }

  void PollOutstanding() override { works_.TryPollAll(); }

  absl::StatusOr<Topology> QueryTopology() {
    NMESH_RETURN_IF_ERROR(Usable("topology"));
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int length = 0;
    NMESH_RETURN_IF_ERROR(
        Check("topology", MPI_Get_processor_name(name, &length), "MPI_Get_processor_name"));
    NMESH_ASSIGN_OR_RETURN(Topology topo, ExchangeHostNames(*this, std::string_view(name, length)));
    MPI_Comm local = MPI_COMM_NULL;
    NMESH_RETURN_IF_ERROR(Check(
        "topology", MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
        "MPI_Comm_split_type"));
    MPI_Comm_rank(local, &topo.local_rank);
    MPI_Comm_size(local, &topo.local_size);
    MPI_Comm_free(&local);
    return topo;
  }

 private:
  using Requests = std::array<MPI_Request, 2>;
  struct Abandoned {
    MPI_Request request;
    Scratch scratch;
  };

  absl::Status Usable(ci::OpName op) const { return abort_state_.Check(*this, op); }
  absl::Status CheckUsable(std::string_view op) const override { return Usable(op); }

  absl::Status Check(ci::OpName op, int code, const char* call) const {
    return ci::WithContext(*this, op, MpiStatus(code, call, rank_));
  }

  absl::Status CheckCount(ci::OpName op, size_t count) const {
    if (count <= static_cast<size_t>(INT_MAX)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: count %d exceeds the MPI limit of %d elements per call; split the buffer (rank %d "
        "of %d)",
        ci::OpContext(*this, op), count, INT_MAX, rank_, size_));
  }

  // Runs one operation. Without a timeout: the blocking call, on the caller's memory. With one:
  // the nonblocking call `start(in, out, &request)` on a staging area that holds a copy of `io.in`
  // and room for `io.out` (one region when `io.one_buffer`), polled against the deadline; on
  // success the output is copied to `io.out`. A timed-out request is abandoned together with its
  // staging area, so MPI never touches the caller's memory after the call returns, whatever the
  // outcome: the caller may reuse or free its buffers at once. The copies cost two memcpy per
  // call, on the timed path only.
  template <typename Blocking, typename Start>
  absl::Status Execute(ci::OpName op, const char* blocking_call, Blocking blocking,
                       const char* start_call, Start start, const Io& io,
                       bool cancellable = false) {
    // Watched by the watchdog (or no timeout at all): the blocking call.
    if (!options_.timeout || (side_ != nullptr && !options_.interruptible)) {
      return Check(op, blocking(), blocking_call);
    }
    const size_t in_bytes = io.one_buffer ? 0 : io.in_bytes;
    Scratch staging;
    std::byte* in = nullptr;
    std::byte* out = nullptr;
    if (in_bytes + io.out_bytes > 0) {
      staging = std::make_shared<std::vector<std::byte>>(in_bytes + io.out_bytes);
      in = staging->data();
      out = in + in_bytes;
      if (io.one_buffer) {
        std::memcpy(out, io.in, io.out_bytes);
      } else if (in_bytes > 0) {
        std::memcpy(in, io.in, in_bytes);
      }
      if (io.preserve_out && io.out_bytes > 0) std::memcpy(out, io.out, io.out_bytes);
    }
    // `start` may start two requests (sendrecv: a receive and a send); most start one.
    Requests requests = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
    NMESH_RETURN_IF_ERROR(
        Check(op, start(io.one_buffer ? out : in, out, requests.data()), start_call));
    NMESH_RETURN_IF_ERROR(Wait(op, requests, staging, cancellable));
    if (io.out_bytes > 0) std::memcpy(io.out, out, io.out_bytes);
    return absl::OkStatus();
  }

  absl::Status Wait(ci::OpName op, Requests requests, Scratch scratch, bool cancellable) {
    ci::Deadline deadline(options_.timeout);
    ci::PollPacer pacer;
    while (true) {
      int done = 0;
      NMESH_RETURN_IF_ERROR(
          Check(op, MPI_Testall(2, requests.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall"));
      if (done) return absl::OkStatus();
      if (abort_state_.aborted()) {
        Abandon(requests, std::move(scratch), cancellable);
        return Usable(op);
      }
      if (deadline.Expired()) {
        Abandon(requests, std::move(scratch), cancellable);
        absl::Status timeout = ci::TimeoutError(*this, op);
        abort_state_.Mark(absl::StrFormat("an earlier %s timed out after %s", op,
                                          ci::FormatTimeout(*options_.timeout)));
        return timeout;
      }
      pacer.Pause();
    }
  }

  // Gives up on `requests`: point-to-point requests are cancelled; collectives cannot be, so they
  // are kept (with their staging copy) until the destructor looks at them once more.
  void Abandon(Requests requests, Scratch scratch, bool cancellable) {
    for (MPI_Request& request : requests) {
      if (request == MPI_REQUEST_NULL) continue;
      if (cancellable) {
        MPI_Cancel(&request);
        int done = 0;
        MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (done) continue;
      }
      abandoned_.push_back({request, scratch});
    }
  }

  MPI_Comm comm_;
  CommOptions options_;
  int rank_ = 0;
  int size_ = 1;
  std::unique_ptr<MpiSideChannel> side_;  // null: not watched (operations with a timeout poll)
  std::vector<Abandoned> abandoned_;
  ci::WorkRegistry works_;
  bool owned_ = true;
  MPI_Errhandler restore_ = MPI_ERRHANDLER_NULL;
  ci::AbortState abort_state_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Communicator>> WorldCommunicator(Session& session,
                                                                CommOptions options) {
  NMESH_RETURN_IF_ERROR(CheckTimeout(options.timeout, "CommOptions.timeout"));
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return absl::FailedPreconditionError(
        "mpi::WorldCommunicator: MPI is not initialised or already finalised");
  }
  MPI_Comm world = MPI_COMM_NULL;
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_dup(MPI_COMM_WORLD, &world), "MPI_Comm_dup", session.world_rank()));
  if (int rc = MPI_Comm_set_errhandler(world, MPI_ERRORS_RETURN); rc != MPI_SUCCESS) {
    MPI_Comm_free(&world);
    return MpiStatus(rc, "MPI_Comm_set_errhandler", session.world_rank());
  }
  return std::unique_ptr<Communicator>(new MpiCommunicator(world, std::move(options)));
}

namespace {

// `comm` as this backend's communicator (const or not, like `comm`); InvalidArgument naming
// `caller` for any other backend.
template <typename Comm, typename Mpi = std::conditional_t<std::is_const_v<Comm>,
                                                           const MpiCommunicator, MpiCommunicator>>
absl::StatusOr<Mpi*> AsMpi(Comm& comm, std::string_view caller) {
  auto* mpi_comm = dynamic_cast<Mpi*>(&comm);
  if (mpi_comm == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("mpi::%s needs an MPI communicator; axis '%s' uses the %s backend", caller,
                        comm.options().name, comm.backend()));
  }
  return mpi_comm;
}

}  // namespace

absl::StatusOr<Topology> GetTopology(Communicator& comm) {
  NMESH_ASSIGN_OR_RETURN(MpiCommunicator * mpi_comm, AsMpi(comm, "GetTopology"));
  return mpi_comm->QueryTopology();
}

absl::StatusOr<std::unique_ptr<Communicator>> AdoptComm(MPI_Comm comm, Ownership ownership,
                                                        CommOptions options) {
  if (comm == MPI_COMM_NULL) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "mpi::AdoptComm: the MPI communicator for axis '%s' is MPI_COMM_NULL", options.name));
  }
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    return absl::FailedPreconditionError(
        "mpi::AdoptComm: MPI is not initialised or already finalised");
  }
  if (ownership == Ownership::kOwned) {
    NMESH_RETURN_IF_ERROR(
        MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1));
    return std::unique_ptr<Communicator>(
        new MpiCommunicator(comm, std::move(options), /*collective=*/false));
  }
  MPI_Errhandler previous = MPI_ERRHANDLER_NULL;
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_get_errhandler(comm, &previous), "MPI_Comm_get_errhandler", -1));
  NMESH_RETURN_IF_ERROR(
      MpiStatus(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler", -1));
  return std::unique_ptr<Communicator>(new MpiCommunicator(comm, std::move(options), previous));
}

absl::StatusOr<MPI_Comm> NativeComm(const Communicator& comm) {
  NMESH_ASSIGN_OR_RETURN(const MpiCommunicator* mpi_comm, AsMpi(comm, "NativeComm"));
  return mpi_comm->native();
}

}  // namespace nmesh::comm::mpi
