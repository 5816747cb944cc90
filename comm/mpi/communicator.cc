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
#include "nmesh/comm/watch/diagnosis.h"
#include "nmesh/comm/watch/flight_recorder.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/watch/watchdog_thread.h"
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
// output, the whole staging area of a timed operation, all_to_all_v's int counts. Shared so that an
// abandoned request can keep it alive.
using Scratch = std::shared_ptr<std::vector<std::byte>>;
using Kept = std::vector<std::shared_ptr<void>>;

// The caller's memory one operation reads (`in`, `in_bytes`) and writes (`out`, `out_bytes`). A
// timed operation works on a staging copy of it (see RunInterruptible). `one_buffer`: the operation reads
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
void KeepUntilExit(Kept keep) {
  static std::mutex mu;
  static auto* kept = new std::vector<Kept>();
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(std::move(keep));
}

// One started nonblocking operation: its MPI requests (sendrecv: a receive and a send; others one),
// what MPI may use until they complete, and what runs on success (kAvg's division).
struct Started {
  std::array<MPI_Request, 2> requests = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  Kept keep;
  std::function<void()> on_complete;
  bool cancellable = false;  // point to point: MPI can cancel the requests
};

// An operation issued through the asynchronous path, on the caller's buffers.
class MpiWork final : public Work::Impl {
 public:
  MpiWork(const Communicator& comm, ci::OpName op, int rank, Started started)
      : Impl(comm, op), started_(std::move(started)), rank_(rank) {}

  ~MpiWork() override {
    // A handle dropped while MPI still owns the request: never free memory MPI may still use.
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized || !pending_) return;
    int done = 0;
    MPI_Testall(2, started_.requests.data(), &done, MPI_STATUSES_IGNORE);
    if (!done) Abandon();
  }

 protected:
  bool Poll(absl::Status* status) override {
    int done = 0;
    const int rc = MPI_Testall(2, started_.requests.data(), &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) {
      *status = Finish(rc, "MPI_Testall");
      return true;
    }
    if (!done) return false;
    *status = Finish(MPI_SUCCESS, "MPI_Testall");
    return true;
  }

  absl::Status Block() override {
    return Finish(MPI_Waitall(2, started_.requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
  }

  void Abandon() override {
    for (MPI_Request& request : started_.requests) {
      if (request == MPI_REQUEST_NULL || !started_.cancellable) continue;
      MPI_Cancel(&request);
      int done = 0;
      MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    }
    KeepUntilExit(std::move(started_.keep));
    started_.keep.clear();
    pending_ = false;
  }

 private:
  absl::Status Finish(int rc, const char* call) {
    pending_ = false;
    started_.keep.clear();
    if (rc != MPI_SUCCESS) {
      return absl::Status(
          MpiStatus(rc, call, rank_).code(),
          absl::StrFormat("%s: %s", context(), MpiStatus(rc, call, rank_).message()));
    }
    if (started_.on_complete) started_.on_complete();
    return absl::OkStatus();
  }

  Started started_;
  bool pending_ = true;  // the requests have not been seen to complete
  int rank_;
};

// The separate channel of one communicator (comm/watch/watchdog.h): a duplicate of it, used by the
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
      if (!done) KeepUntilExit(std::move(a.keep));
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
    NMESH_RETURN_IF_ERROR(
        RunOp(OpArgs::AllGather(mine, all.data(), 2, DataType::kInt32), OpKind::kSplit));
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

  absl::Status DoRun(const OpArgs& a) override { return RunOp(a, a.op); }

  // The asynchronous path: the nonblocking call on the caller's buffers (Start).
  absl::StatusOr<Work> DoAsync(const OpArgs& a, const AsyncOptions&) override {
    NMESH_RETURN_IF_ERROR(CheckCounts(a.op, a));
    Started started;
    const char* call = "";
    const int rc = Start(a, started, &call);
    NMESH_RETURN_IF_ERROR(Check(a.op, rc, call));
    return Work(works_.Add(std::make_shared<MpiWork>(*this, a.op, rank_, std::move(started))));
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
  struct Abandoned {
    MPI_Request request;
    Kept keep;  // what MPI may still use
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

  absl::Status CheckCounts(ci::OpName op, const OpArgs& a) const {
    NMESH_RETURN_IF_ERROR(CheckCount(op, a.count));
    NMESH_RETURN_IF_ERROR(CheckCount(op, a.recv_count));
    if (a.op != OpKind::kAllToAllV) return absl::OkStatus();
    for (size_t j = 0; j < static_cast<size_t>(size_); ++j) {
      for (size_t v : {a.send_counts[j], a.send_displs[j], a.recv_counts[j], a.recv_displs[j]}) {
        NMESH_RETURN_IF_ERROR(CheckCount(op, v));
      }
    }
    return absl::OkStatus();
  }

  // Runs one checked operation, named `name` in messages. Without a timeout, or watched by the
  // watchdog: the blocking call (Blocking) on the caller's memory. With an interruptible timeout:
  // RunInterruptible.
  absl::Status RunOp(const OpArgs& a, ci::OpName name) {
    NMESH_RETURN_IF_ERROR(CheckCounts(name, a));
    if (options_.timeout && (side_ == nullptr || options_.interruptible)) {
      return RunInterruptible(a, name);
    }
    const char* call = "";
    const int rc = Blocking(a, &call);  // before Check reads `call`
    NMESH_RETURN_IF_ERROR(Check(name, rc, call));
    if (Averages(a)) DivideElements(a.recv, a.count, a.type, size_);
    return absl::OkStatus();
  }

  // Whether `a` ends with kAvg's division on this rank (MPI has no average).
  bool Averages(const OpArgs& a) const {
    return Traits(a.op).reduces && a.reduce == ReduceOp::kAvg &&
           (a.op != OpKind::kReduce || rank_ == a.root);
  }

  // The blocking MPI call of `a`, on the caller's memory; sets *call to its name. Exact in-place
  // layouts become MPI_IN_PLACE; other overlaps of input and output are staged.
  int Blocking(const OpArgs& a, const char** call) {
    const MPI_Datatype dt = Traits(a.op).moves_data ? MpiDatatype(a.type) : MPI_BYTE;
    const MPI_Op mop = Traits(a.op).reduces ? MpiOp(a.type, a.reduce) : MPI_OP_NULL;
    const int n = static_cast<int>(a.count);
    const size_t bytes = Traits(a.op).moves_data ? a.count * DataTypeSize(a.type) : 0;
    const bool is_root = rank_ == a.root;
    Scratch scratch;
    switch (a.op) {
      case OpKind::kAllReduce: {
        *call = "MPI_Allreduce";
        const void* in = a.send == a.recv
                             ? MPI_IN_PLACE
                             : StageIfOverlapping(a.send, bytes, a.recv, bytes, scratch);
        return MPI_Allreduce(in, a.recv, n, dt, mop, comm_);
      }
      case OpKind::kAllGather: {
        *call = "MPI_Allgather";
        const void* slot = static_cast<const std::byte*>(a.recv) + bytes * rank_;
        const void* in = a.send == slot
                             ? MPI_IN_PLACE
                             : StageIfOverlapping(a.send, bytes, a.recv, bytes * size_, scratch);
        return MPI_Allgather(in, n, dt, a.recv, n, dt, comm_);
      }
      case OpKind::kReduceScatter: {
        // MPI's in-place reduce-scatter reads from and writes to the start of the receive
        // buffer, which is not nmesh's layout (recv == send + rank * count): stage any
        // overlapping input.
        *call = "MPI_Reduce_scatter_block";
        const void* in = StageIfOverlapping(a.send, bytes * size_, a.recv, bytes, scratch);
        return MPI_Reduce_scatter_block(in, a.recv, n, dt, mop, comm_);
      }
      case OpKind::kBroadcast:
        *call = "MPI_Bcast";
        return MPI_Bcast(a.recv, n, dt, a.root, comm_);
      case OpKind::kAllToAll:
        *call = "MPI_Alltoall";
        return MPI_Alltoall(a.send, n, dt, a.recv, n, dt, comm_);
      case OpKind::kSend:
        *call = "MPI_Send";
        return MPI_Send(a.send, n, dt, a.root, kTag, comm_);
      case OpKind::kRecv:
        *call = "MPI_Recv";
        return MPI_Recv(a.recv, n, dt, a.root, kTag, comm_, MPI_STATUS_IGNORE);
      case OpKind::kBarrier:
        *call = "MPI_Barrier";
        return MPI_Barrier(comm_);
      case OpKind::kAllToAllV: {
        *call = "MPI_Alltoallv";
        const int* ints = IntCountsOf(a, scratch);
        const size_t un = static_cast<size_t>(size_);
        return MPI_Alltoallv(a.send, ints, ints + un, dt, a.recv, ints + 2 * un, ints + 3 * un,
                             dt, comm_);
      }
      case OpKind::kGather: {
        *call = "MPI_Gather";
        const bool in_place =
            is_root && a.send == static_cast<const std::byte*>(a.recv) + bytes * rank_;
        return MPI_Gather(in_place ? MPI_IN_PLACE : a.send, n, dt, a.recv, n, dt, a.root, comm_);
      }
      case OpKind::kScatter: {
        *call = "MPI_Scatter";
        const bool in_place =
            is_root && a.recv == static_cast<const std::byte*>(a.send) + bytes * rank_;
        return MPI_Scatter(a.send, n, dt, in_place ? MPI_IN_PLACE : a.recv, n, dt, a.root, comm_);
      }
      case OpKind::kReduce: {
        *call = "MPI_Reduce";
        const bool in_place = is_root && a.send == a.recv;
        return MPI_Reduce(in_place ? MPI_IN_PLACE : a.send, a.recv, n, dt, mop, a.root, comm_);
      }
      case OpKind::kSendRecv:
        *call = "MPI_Sendrecv";
        return MPI_Sendrecv(a.send, n, dt, a.root, kTag, a.recv, static_cast<int>(a.recv_count),
                            dt, a.source, kTag, comm_, MPI_STATUS_IGNORE);
      case OpKind::kSplit:
        break;
    }
    *call = "(no MPI call)";
    return MPI_ERR_OP;
  }

  // all_to_all_v's four count arrays as the ints MPI takes (send counts, send displacements,
  // receive counts, receive displacements), in memory held by `scratch`.
  const int* IntCountsOf(const OpArgs& a, Scratch& scratch) const {
    const size_t un = static_cast<size_t>(size_);
    scratch = std::make_shared<std::vector<std::byte>>(4 * un * sizeof(int));
    int* ints = reinterpret_cast<int*>(scratch->data());
    for (size_t j = 0; j < un; ++j) {
      ints[j] = static_cast<int>(a.send_counts[j]);
      ints[un + j] = static_cast<int>(a.send_displs[j]);
      ints[2 * un + j] = static_cast<int>(a.recv_counts[j]);
      ints[3 * un + j] = static_cast<int>(a.recv_displs[j]);
    }
    return ints;
  }

  // The nonblocking MPI call of `a`, started into `started` (sets *call to its name): every
  // nonblocking call of this backend is written here, once. The asynchronous path runs it on the
  // caller's buffers, RunInterruptible on a staging copy. Exact in-place layouts become
  // MPI_IN_PLACE; any other overlap of input and output is staged, and the staging copy is kept
  // in `started` until completion.
  int Start(const OpArgs& a, Started& started, const char** call) {
    const MPI_Datatype dt = Traits(a.op).moves_data ? MpiDatatype(a.type) : MPI_BYTE;
    const MPI_Op mop = Traits(a.op).reduces ? MpiOp(a.type, a.reduce) : MPI_OP_NULL;
    const int n = static_cast<int>(a.count);
    const size_t bytes = Traits(a.op).moves_data ? a.count * DataTypeSize(a.type) : 0;
    const bool is_root = rank_ == a.root;
    MPI_Request* r = started.requests.data();
    started.cancellable = Traits(a.op).op_class == OpClass::kPointToPoint;
    auto stage = [&](const void* src, size_t src_bytes, const void* dst, size_t dst_bytes) {
      Scratch scratch;
      const void* in = StageIfOverlapping(src, src_bytes, dst, dst_bytes, scratch);
      if (scratch) started.keep.push_back(std::move(scratch));
      return in;
    };
    if (Averages(a)) {
      void* out = a.recv;
      const size_t count = a.count;
      const DataType type = a.type;
      const int size = size_;
      started.on_complete = [out, count, type, size] { DivideElements(out, count, type, size); };
    }
    switch (a.op) {
      case OpKind::kAllReduce: {
        *call = "MPI_Iallreduce";
        const void* in = a.send == a.recv ? MPI_IN_PLACE : stage(a.send, bytes, a.recv, bytes);
        return MPI_Iallreduce(in, a.recv, n, dt, mop, comm_, r);
      }
      case OpKind::kAllGather: {
        *call = "MPI_Iallgather";
        const void* slot = static_cast<const std::byte*>(a.recv) + bytes * rank_;
        const void* in =
            a.send == slot ? MPI_IN_PLACE : stage(a.send, bytes, a.recv, bytes * size_);
        return MPI_Iallgather(in, n, dt, a.recv, n, dt, comm_, r);
      }
      case OpKind::kReduceScatter: {
        *call = "MPI_Ireduce_scatter_block";
        const void* in = stage(a.send, bytes * size_, a.recv, bytes);
        return MPI_Ireduce_scatter_block(in, a.recv, n, dt, mop, comm_, r);
      }
      case OpKind::kBroadcast:
        *call = "MPI_Ibcast";
        return MPI_Ibcast(a.recv, n, dt, a.root, comm_, r);
      case OpKind::kAllToAll:
        *call = "MPI_Ialltoall";
        return MPI_Ialltoall(a.send, n, dt, a.recv, n, dt, comm_, r);
      case OpKind::kSend:
        *call = "MPI_Isend";
        return MPI_Isend(a.send, n, dt, a.root, kTag, comm_, r);
      case OpKind::kRecv:
        *call = "MPI_Irecv";
        return MPI_Irecv(a.recv, n, dt, a.root, kTag, comm_, r);
      case OpKind::kBarrier:
        *call = "MPI_Ibarrier";
        return MPI_Ibarrier(comm_, r);
      case OpKind::kAllToAllV: {
        *call = "MPI_Ialltoallv";
        Scratch counts;
        const int* ints = IntCountsOf(a, counts);
        started.keep.push_back(std::move(counts));  // MPI reads the counts until completion
        const size_t un = static_cast<size_t>(size_);
        return MPI_Ialltoallv(a.send, ints, ints + un, dt, a.recv, ints + 2 * un, ints + 3 * un,
                              dt, comm_, r);
      }
      case OpKind::kGather: {
        *call = "MPI_Igather";
        const bool in_place =
            is_root && a.send == static_cast<const std::byte*>(a.recv) + bytes * rank_;
        return MPI_Igather(in_place ? MPI_IN_PLACE : a.send, n, dt, a.recv, n, dt, a.root, comm_,
                           r);
      }
      case OpKind::kScatter: {
        *call = "MPI_Iscatter";
        const bool in_place =
            is_root && a.recv == static_cast<const std::byte*>(a.send) + bytes * rank_;
        return MPI_Iscatter(a.send, n, dt, in_place ? MPI_IN_PLACE : a.recv, n, dt, a.root, comm_,
                            r);
      }
      case OpKind::kReduce: {
        *call = "MPI_Ireduce";
        const bool in_place = is_root && a.send == a.recv;
        return MPI_Ireduce(in_place ? MPI_IN_PLACE : a.send, a.recv, n, dt, mop, a.root, comm_, r);
      }
      case OpKind::kSendRecv: {
        *call = "MPI_Irecv";
        int rc = MPI_Irecv(a.recv, static_cast<int>(a.recv_count), dt, a.source, kTag, comm_, &r[0]);
        if (rc != MPI_SUCCESS) return rc;
        *call = "MPI_Isend";
        rc = MPI_Isend(a.send, n, dt, a.root, kTag, comm_, &r[1]);
        if (rc != MPI_SUCCESS) {
          MPI_Cancel(&r[0]);
          MPI_Wait(&r[0], MPI_STATUS_IGNORE);
        }
        return rc;
      }
      case OpKind::kSplit:
        break;
    }
    *call = "(no MPI call)";
    return MPI_ERR_OP;
  }

  // The caller's memory `a` reads and writes, for staging.
  Io IoOf(const OpArgs& a) const {
    const size_t e = Traits(a.op).moves_data ? DataTypeSize(a.type) : 0;
    const size_t bytes = a.count * e;
    const size_t all = bytes * static_cast<size_t>(size_);
    const bool is_root = rank_ == a.root;
    switch (a.op) {
      case OpKind::kAllReduce:
        return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = bytes};
      case OpKind::kAllGather:
        return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = all};
      case OpKind::kReduceScatter:
        return {.in = a.send, .in_bytes = all, .out = a.recv, .out_bytes = bytes};
      case OpKind::kBroadcast:
        return {.in = a.recv, .in_bytes = bytes, .out = a.recv, .out_bytes = bytes,
                .one_buffer = true};
      case OpKind::kAllToAll:
        return {.in = a.send, .in_bytes = all, .out = a.recv, .out_bytes = all};
      case OpKind::kSend:
        return {.in = a.send, .in_bytes = bytes};
      case OpKind::kRecv:
        return {.out = a.recv, .out_bytes = bytes};
      case OpKind::kAllToAllV: {
        size_t send_end = 0, recv_end = 0;
        for (size_t j = 0; j < static_cast<size_t>(size_); ++j) {
          if (a.send_counts[j] > 0) {
            send_end = std::max(send_end, a.send_displs[j] + a.send_counts[j]);
          }
          if (a.recv_counts[j] > 0) {
            recv_end = std::max(recv_end, a.recv_displs[j] + a.recv_counts[j]);
          }
        }
        return {.in = a.send, .in_bytes = send_end * e, .out = a.recv,
                .out_bytes = recv_end * e, .preserve_out = true};
      }
      case OpKind::kGather:
        return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = is_root ? all : 0};
      case OpKind::kScatter:
        return {.in = a.send, .in_bytes = is_root ? all : 0, .out = a.recv, .out_bytes = bytes};
      case OpKind::kReduce:
        return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = is_root ? bytes : 0};
      case OpKind::kSendRecv:
        return {.in = a.send, .in_bytes = bytes, .out = a.recv, .out_bytes = a.recv_count * e};
      case OpKind::kBarrier:
      case OpKind::kSplit:
        break;
    }
    return {};
  }

  // An operation with an interruptible timeout: the nonblocking call (Start) on a staging area
  // that holds a copy of its input and room for its output (one region for broadcast), polled
  // against the deadline; on success the output is copied to the caller's memory. A timed-out
  // request is abandoned together with its staging area, so MPI never touches the caller's memory
  // after the call returns, whatever the outcome: the caller may reuse or free its buffers at
  // once. The copies cost two memcpy per call, on this path only.
  absl::Status RunInterruptible(const OpArgs& a, ci::OpName name) {
    const Io io = IoOf(a);
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
    OpArgs staged = a;
    staged.send = io.one_buffer ? out : in;
    staged.recv = out;
    Started started;
    if (staging) started.keep.push_back(staging);
    const char* call = "";
    const int rc = Start(staged, started, &call);  // before Check reads `call`
    NMESH_RETURN_IF_ERROR(Check(name, rc, call));
    NMESH_RETURN_IF_ERROR(Wait(name, started));
    if (io.out_bytes > 0) std::memcpy(io.out, out, io.out_bytes);
    return absl::OkStatus();
  }

  absl::Status Wait(ci::OpName op, Started& started) {
    ci::Deadline deadline(options_.timeout);
    ci::PollPacer pacer;
    while (true) {
      int done = 0;
      NMESH_RETURN_IF_ERROR(Check(
          op, MPI_Testall(2, started.requests.data(), &done, MPI_STATUSES_IGNORE), "MPI_Testall"));
      if (done) {
        if (started.on_complete) started.on_complete();
        return absl::OkStatus();
      }
      if (abort_state_.aborted()) {
        Abandon(started);
        return Usable(op);
      }
      if (deadline.Expired()) {
        Abandon(started);
        absl::Status timeout = ci::TimeoutError(*this, op);
        abort_state_.Mark(absl::StrFormat("an earlier %s timed out after %s", op,
                                          ci::FormatTimeout(*options_.timeout)));
        return timeout;
      }
      pacer.Pause();
    }
  }

  // Gives up on `started`: point-to-point requests are cancelled; collectives cannot be, so they
  // are kept (with what MPI may still use) until the destructor looks at them once more.
  void Abandon(Started& started) {
    for (MPI_Request& request : started.requests) {
      if (request == MPI_REQUEST_NULL) continue;
      if (started.cancellable) {
        MPI_Cancel(&request);
        int done = 0;
        MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (done) continue;
      }
      abandoned_.push_back({request, started.keep});
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
