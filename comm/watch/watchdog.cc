#include "nmesh/comm/watch/watchdog.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "nmesh/base/file.h"
#include "nmesh/base/fingerprint.h"
#include "nmesh/comm/internal/checks.h"
#include "nmesh/comm/watch/watchdog_thread.h"

namespace nmesh::comm {
namespace {

// Groups up to this size send their members' global ranks with their records (AxisProgress).
constexpr int kListedMembers = 1024;

std::mutex& HandlerMutex() {
  static auto* mu = new std::mutex();
  return *mu;
}

TimeoutHandler& Handler() {
  static auto* handler = new TimeoutHandler();
  return *handler;
}

void DefaultHandler(const TimeoutReport& report) {
  // One write, so that lines of several ranks do not interleave.
  const std::string line = absl::StrFormat("nmesh: error: %s\n", FormatTimeoutReport(report));
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void SetWatchdogStall(absl::Duration limit, WatchdogStallHandler handler) {
  internal::Watchdog::Get().SetStall(limit, std::move(handler));
}

void SetTimeoutHandler(TimeoutHandler handler) {
  std::lock_guard<std::mutex> lock(HandlerMutex());
  Handler() = std::move(handler);
}

std::string FormatTimeoutReport(const TimeoutReport& report) {
  const int64_t me = report.global_rank >= 0 ? report.global_rank : report.rank;
  return absl::StrFormat("rank %d: %s: %s", me, report.error, report.diagnosis.summary);
}

absl::StatusOr<std::string> WriteFlightRecord(const std::string& dir, const TimeoutReport& report) {
  const int64_t me = report.global_rank >= 0 ? report.global_rank : report.rank;
  const std::string path = absl::StrFormat("%s/nmesh_flight_rank%d.json", dir, me);
  const absl::Status written =
      WriteNewFile(path, FlightRecordJson(report.axis, me, report.diagnosis.summary, report.ranks,
                                          report.diagnosis.trace));
  if (!written.ok()) {
    return absl::Status(written.code(), absl::StrFormat("flight recorder: %s", written.message()));
  }
  return path;
}

absl::Status MarkTimeoutReported(absl::Status status) {
  if (!status.ok()) status.SetPayload(std::string(kTimeoutReportedPayloadUrl), absl::Cord());
  return status;
}

bool TimeoutReported(const absl::Status& status) {
  return status.GetPayload(std::string(kTimeoutReportedPayloadUrl)).has_value();
}

absl::Duration ExchangeSilentLimit(absl::Duration timeout) {
  return std::clamp(timeout / 10, kExchangeTimeout, kExchangeSilentMax);
}

absl::Duration ExchangeAliveLimit(absl::Duration timeout) {
  return std::max(kExchangeAliveMin, 2 * ExchangeSilentLimit(timeout));
}

absl::Duration AbortGraceLimit(absl::Duration timeout) {
  return ExchangeAliveLimit(timeout) + kAbortGrace;
}

namespace internal {
namespace {

// A report on `comm` with only this rank's records (`recorder`'s), to be completed by the caller.
TimeoutReport ReportWithOwnRecords(const Communicator& comm, const FlightRecorder& recorder,
                                   const SideChannel* side) {
  TimeoutReport report;
  report.axis = comm.options().name;
  report.rank = comm.rank();
  report.size = comm.size();
  if (side != nullptr) report.global_rank = side->GlobalRank(report.rank);
  RankRecords mine;
  mine.rank = report.rank;
  mine.answered = true;
  mine.now_ns = absl::GetCurrentTimeNanos();
  mine.records = recorder.Snapshot();
  report.ranks.push_back(std::move(mine));
  return report;
}

// When the ranks of `report` that answered waiting in a watched operation (on any of their
// communicators) will have timed out, exchanged and reported, on this process's clock (`now`):
// their deadlines, as far ahead of their answer's clock as they were, plus their exchange's
// deadline and a grace. `now` when none waits.
absl::Time PeersReportBy(const TimeoutReport& report, absl::Time now) {
  absl::Time by = now;
  for (const RankRecords& rank : report.ranks) {
    if (rank.rank == report.rank || !rank.answered) continue;
    for (const AxisProgress& axis : rank.axes) {
      const OpRecord& waiting = axis.waiting;
      if (waiting.seq == 0 || waiting.deadline_ns <= 0) continue;
      const absl::Duration ahead = absl::Nanoseconds(waiting.deadline_ns - rank.now_ns);
      const absl::Duration timeout = absl::Nanoseconds(waiting.deadline_ns - waiting.start_ns);
      by = std::max(by, now + std::max(ahead, absl::ZeroDuration()) + ExchangeSilentLimit(timeout) +
                            kAbortGrace);
    }
  }
  return by;
}

}  // namespace

Watchdog& Watchdog::Get() {
  static auto* watchdog = new Watchdog();  // never destroyed: its thread runs until exit
  return *watchdog;
}

void Watchdog::Add(Communicator* comm, std::shared_ptr<FlightRecorder> recorder, SideChannel* side,
                   bool poll_errors) {
  const bool timed = comm->options().timeout.has_value();
  // The group by its members' global ranks, for following waits across axes (TraceWaits).
  Entry entry{comm, std::move(recorder), side, nullptr, poll_errors, 0, {}};
  if (side != nullptr) {
    Fingerprint group;
    group.Add(comm->options().name);
    const bool listed = comm->size() <= kListedMembers;
    for (int r = 0; r < comm->size(); ++r) {
      group.Add(side->GlobalRank(r));
      if (listed) entry.members.push_back(side->GlobalRank(r));
    }
    entry.group = group.value();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(std::move(entry));
  }
  if (timed || poll_errors) Start();
}

void Watchdog::Remove(const Communicator* comm) {
  if (std::this_thread::get_id() == thread_id_) {
    if (thread_holds_lock_) {
      // A backend call made under the lock dropped the last reference: mark the entry, erase it
      // on the next tick.
      for (Entry& e : entries_) {
        if (e.comm == comm) e.comm = nullptr;
      }
    } else {
      // A family's abort, run by the watchdog thread without the lock, destroyed it.
      std::lock_guard<std::mutex> lock(mu_);
      std::erase_if(entries_, [comm](const Entry& e) { return e.comm == comm; });
      if (busy_ == comm) busy_removed_ = true;
    }
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [this, comm] { return busy_ != comm && busy_wide_ != comm; });
  std::erase_if(entries_, [comm](const Entry& e) { return e.comm == comm; });
}

void Watchdog::SetFamily(const Communicator* comm, std::function<void()> abort_family) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : entries_) {
    if (e.comm == comm) e.abort_family = abort_family;
  }
}

void Watchdog::SetStall(absl::Duration limit, WatchdogStallHandler handler) {
  std::lock_guard<std::mutex> lock(beat_mu_);
  stall_limit_ = limit;
  stall_handler_ = std::move(handler);
}

void Watchdog::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (started_) return;
  started_ = true;
  Beat("starting");
  std::thread thread([this] { Loop(); });
  thread_id_ = thread.get_id();
  thread.detach();
  std::thread([this] { Monitor(); }).detach();
}

void Watchdog::Beat(std::string phase) {
  std::lock_guard<std::mutex> lock(beat_mu_);
  beat_ = absl::Now();
  phase_ = std::move(phase);
}

void Watchdog::Monitor() {
  while (true) {
    absl::Duration limit;
    {
      std::lock_guard<std::mutex> lock(beat_mu_);
      limit = stall_limit_;
    }
    absl::SleepFor(std::min(limit / 4, absl::Seconds(1)));
    std::string line;
    WatchdogStallHandler handler;
    {
      std::lock_guard<std::mutex> lock(beat_mu_);
      const absl::Duration quiet = absl::Now() - beat_;
      if (quiet < stall_limit_) continue;
      line = absl::StrFormat(
          "the watchdog thread made no progress for %s (last: %s); ending the process",
          FormatTimeout(absl::Trunc(quiet, absl::Milliseconds(1))), phase_);
      handler = stall_handler_;
      beat_ = absl::Now();  // a handler that returns is called again only after another limit
    }
    if (handler) {
      handler(line);
      continue;
    }
    const std::string out = absl::StrFormat("nmesh: error: %s\n", line);
    std::fwrite(out.data(), 1, out.size(), stderr);
    std::fflush(stderr);
    std::_Exit(1);
  }
}

void Watchdog::PauseForTesting(absl::Duration pause) {
  pause_ns_ = absl::ToInt64Nanoseconds(pause);
}

void Watchdog::Loop() {
  while (true) {
    Beat("waiting for the next tick");
    absl::SleepFor(kWatchdogTick + absl::Nanoseconds(pause_ns_.exchange(0)));
    Beat("polling the watched communicators");
    std::optional<Firing> firing;
    {
      std::lock_guard<std::mutex> lock(mu_);
      thread_holds_lock_ = true;
      std::erase_if(entries_, [](const Entry& e) { return e.comm == nullptr; });
      ServeAllLocked();
      if (!fired_) firing = FindFiringLocked();
      if (firing.has_value()) {
        busy_ = firing->entry.comm;
        busy_removed_ = false;
        // With a side channel the job ends after the report: nothing else is reported.
        if (firing->entry.side != nullptr) fired_ = true;
      }
      thread_holds_lock_ = false;
    }
    if (!firing.has_value()) continue;
    if (firing->stuck.has_value()) {
      FireTimeout(*firing);
    } else {
      FireError(*firing);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = nullptr;
    }
    idle_.notify_all();
  }
}

std::optional<Watchdog::Firing> Watchdog::FindFiringLocked() {
  const int64_t now = absl::GetCurrentTimeNanos();
  for (Entry& e : entries_) {
    if (e.comm == nullptr) continue;
    if (e.poll_errors) {
      if (absl::Status error = e.comm->PollAsyncError(); !error.ok()) {
        return Firing{e, std::nullopt, std::move(error)};
      }
    }
    if (!e.recorder->FirstExpired(now).has_value()) continue;
    // An asynchronous operation may have ended without anyone looking: look first.
    e.comm->PollOutstanding();
    if (std::optional<OpRecord> stuck = e.recorder->FirstExpired(now)) {
      e.recorder->Unwatch();
      return Firing{e, stuck, absl::OkStatus()};
    }
  }
  return std::nullopt;
}

bool Watchdog::Abort(const Entry& entry) {
  Beat(absl::StrFormat("aborting the communicators of axis '%s'", entry.comm->options().name));
  if (entry.abort_family) {
    entry.abort_family();
    std::lock_guard<std::mutex> lock(mu_);
    return !busy_removed_;  // false: the abort destroyed it
  }
  (void)entry.comm->Abort();
  return true;
}

void Watchdog::Report(const TimeoutReport& report) {
  std::lock_guard<std::mutex> lock(HandlerMutex());
  if (Handler()) {
    Handler()(report);
  } else {
    DefaultHandler(report);
  }
}

void Watchdog::FireError(const Firing& f) {
  const Entry& entry = f.entry;
  Communicator& comm = *entry.comm;
  // The operations in flight end with the abort; the report names the oldest of them.
  std::optional<OpRecord> oldest;
  for (const OpRecord& r : entry.recorder->Snapshot()) {
    if (r.state == OpState::kRunning && (!oldest.has_value() || r.seq < oldest->seq)) oldest = r;
  }
  entry.recorder->Unwatch();
  TimeoutReport report = ReportWithOwnRecords(comm, *entry.recorder, entry.side);
  report.timeout = comm.options().timeout.value_or(absl::ZeroDuration());
  if (oldest.has_value()) report.stuck = *oldest;
  report.error = std::string(f.error.message());
  report.diagnosis.summary = absl::StrFormat(
      "asynchronous error on axis '%s'; its mesh's communicators were aborted%s", report.axis,
      oldest.has_value() ? absl::StrFormat(", failing %s #%d and the operations after it",
                                           OpKindName(oldest->op), oldest->seq)
                         : std::string());
  if (!Abort(entry)) return;
  Beat("reporting");
  Report(report);
  if (entry.side != nullptr) entry.side->AbortJob(1);  // fired_ is set: nothing more is reported
}

int Watchdog::ServeAllLocked() {
  const std::function<ProcessState()> state = [this] { return StateLocked(); };
  int answered = 0;
  for (Entry& e : entries_) {
    if (e.comm != nullptr && e.side != nullptr) answered += e.side->Serve(*e.recorder, state);
  }
  answers_.fetch_add(answered);
  return answered;
}

int Watchdog::ServeAll() {
  std::lock_guard<std::mutex> lock(mu_);
  thread_holds_lock_ = true;
  const int answered = ServeAllLocked();
  thread_holds_lock_ = false;
  return answered;
}

ProcessState Watchdog::StateLocked() {
  const int64_t now = absl::GetCurrentTimeNanos();
  ProcessState state;
  int64_t oldest = 0;
  for (const Entry& e : entries_) {
    if (e.comm == nullptr) continue;
    AxisProgress axis;
    axis.axis = e.comm->options().name;
    axis.group = e.group;
    axis.members = e.members;
    axis.entered = e.recorder->last_collective_seq();
    for (const OpRecord& r : e.recorder->Snapshot()) {
      if (r.state != OpState::kRunning) continue;
      if (axis.waiting.seq == 0 || r.start_ns < axis.waiting.start_ns) axis.waiting = r;
    }
    if (axis.waiting.seq != 0 && (state.blocked_in.empty() || axis.waiting.start_ns < oldest)) {
      const OpRecord& r = axis.waiting;
      oldest = r.start_ns;
      state.blocked_in =
          absl::StrFormat("%s on axis '%s' since %.1f s", DescribeRecord(r), axis.axis,
                          static_cast<double>(std::max<int64_t>(now - r.start_ns, 0)) / 1e9);
    }
    state.axes.push_back(std::move(axis));
  }
  return state;
}

std::vector<RankRecords> Watchdog::WideRecords(const Entry& entry,
                                               const std::vector<RankRecords>& ranks,
                                               const std::function<void()>& serve) {
  // The widest other watched communicator with a channel (the job's world, where there is one).
  std::optional<Entry> wide;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Entry& e : entries_) {
      if (e.comm == nullptr || e.side == nullptr || e.comm == entry.comm) continue;
      if (e.comm->size() <= entry.comm->size()) continue;
      if (!wide.has_value() || e.comm->size() > wide->comm->size()) wide = e;
    }
    if (!wide.has_value()) return ranks;
    busy_wide_ = wide->comm;  // Remove waits until the exchange is over
  }
  // A second, wider ask only completes the trace: bounded by the shortest window (ranks still
  // waiting in their own exchange answer within it; the report is not held up by the others).
  const absl::Time until = absl::Now() + kExchangeTimeout;
  std::vector<RankRecords> records = wide->side->Exchange(*wide->recorder, {until, until}, serve);
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_wide_ = nullptr;
    const int own = wide->comm->rank();
    for (RankRecords& mine : records) {
      if (mine.rank != own) continue;
      ProcessState state = StateLocked();
      mine.blocked_in = std::move(state.blocked_in);
      mine.axes = std::move(state.axes);
    }
  }
  idle_.notify_all();
  return records;
}

void Watchdog::Diagnose(const Entry& entry, TimeoutReport& report,
                        const std::function<void()>& serve) {
  if (entry.side != nullptr) {
    const absl::Time start = absl::Now();
    const ExchangeDeadlines deadlines{start + ExchangeSilentLimit(report.timeout),
                                      start + ExchangeAliveLimit(report.timeout)};
    report.ranks = entry.side->Exchange(*entry.recorder, deadlines, serve);
    std::lock_guard<std::mutex> lock(mu_);
    for (RankRecords& mine : report.ranks) {
      if (mine.rank != report.rank) continue;
      ProcessState state = StateLocked();
      mine.blocked_in = std::move(state.blocked_in);
      mine.axes = std::move(state.axes);
    }
  }
  report.diagnosis = DiagnoseTimeout(report.axis, report.stuck, report.ranks);
  report.diagnosis.trace = TraceWaits(report.ranks);
  // Only where the trace leaves the ranks heard from (TraceWaits says "not asked"): asking the
  // whole job costs up to kExchangeTimeout more when ranks cannot answer (a partition).
  if (report.global_rank == 0 &&
      report.diagnosis.trace.find(", not asked (") != std::string::npos) {
    report.diagnosis.trace = TraceWaits(WideRecords(entry, report.ranks, serve));
  }
}

TimeoutReport Watchdog::ReportTimeout(Communicator& comm, const OpRecord& stuck,
                                      absl::Duration timeout) {
  std::optional<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Entry& e : entries_) {
      if (e.comm == &comm) entry = e;
    }
  }
  if (!entry.has_value()) entry = Entry{&comm, comm.recorder(), nullptr, nullptr, false, 0, {}};
  TimeoutReport report = ReportWithOwnRecords(comm, *entry->recorder, entry->side);
  report.timeout = timeout;
  report.stuck = stuck;
  report.error = absl::StrFormat("%s timed out after %s (rank %d of %d)",
                                 OpContext(comm, OpKindName(stuck.op)), FormatTimeout(timeout),
                                 report.rank, report.size);
  // The watchdog thread answers the other ranks meanwhile: nothing to serve here.
  Diagnose(*entry, report, [] {});
  Report(report);
  if (entry->side != nullptr) AnswerPeers(report, nullptr);
  return report;
}

void Watchdog::AnswerPeers(const TimeoutReport& report, const std::function<int()>& serve) {
  const absl::Time reported = absl::Now();
  const absl::Time limit = reported + AbortGraceLimit(report.timeout);
  absl::Time end = std::min(limit, PeersReportBy(report, reported));
  end = std::max(end, reported + kAbortGrace);
  int64_t answers = answers_.load();
  while (absl::Now() < end) {
    bool answered = false;
    if (serve) {
      answered = serve() > 0;
    } else {
      const int64_t now = answers_.load();
      answered = now != answers;
      answers = now;
    }
    if (answered) end = std::min(limit, std::max(end, absl::Now() + kAbortGrace));
    absl::SleepFor(absl::Milliseconds(serve ? 2 : 5));
  }
}

void Watchdog::FireTimeout(const Firing& f) {
  const Entry& entry = f.entry;
  const OpRecord& stuck = *f.stuck;
  Communicator& comm = *entry.comm;
  if (!Abort(entry)) return;
  TimeoutReport report = ReportWithOwnRecords(comm, *entry.recorder, entry.side);
  report.timeout = absl::Nanoseconds(stuck.deadline_ns - stuck.start_ns);
  report.stuck = stuck;
  report.error = absl::StrFormat("%s timed out after %s (rank %d of %d)",
                                 OpContext(comm, OpKindName(stuck.op)),
                                 FormatTimeout(report.timeout), report.rank, report.size);
  const std::string phase = absl::StrFormat("exchanging flight records on axis '%s'", report.axis);
  Diagnose(entry, report, [this, &phase] {
    Beat(phase);
    ServeAll();
  });
  Beat("reporting");
  Report(report);
  if (entry.side == nullptr) return;
  // Keep answering the other ranks, so that they can name the culprit too, then end the job: at
  // least kAbortGrace, longer while they still ask (each request: another kAbortGrace) and until
  // the ranks that answered waiting in an operation whose deadline is near have had time to time
  // out, exchange and report; never beyond the limit.
  AnswerPeers(report, [this] {
    Beat("answering the other ranks before the job ends");
    return ServeAll();
  });
  entry.side->AbortJob(1);
}

}  // namespace internal
}  // namespace nmesh::comm
