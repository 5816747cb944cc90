#include "nmesh/comm/recovery_channel.h"

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nmesh/base/abbreviate.h"
#include "nmesh/base/printable.h"
#include "nmesh/base/status_macros.h"

namespace nmesh::comm {
namespace {

// Keys of epoch E: "recover/E/announce" (a counter: how many ranks announced), "recover/E/cause/N"
// (the N-th announcement, from 1), "recover/E/here/R" (launch rank R arrived at the meeting),
// "recover/E/arrivals" (a counter of arrivals, so that a poll reads one key), "recover/E/decide"
// (a counter: the rank that takes it to 1 writes the verdict), "recover/E/decider" (who did) and
// "recover/E/verdict". Not of an epoch: "recover/alive/R", a counter that rank R's Alive adds to.
constexpr size_t kMaxCauseBytes = 1024;
// How many announcements are looked at for the first one still readable (an announcer that died
// between counting itself and writing its cause leaves a gap).
constexpr int64_t kMaxCauses = 64;
// How often a waiting rank looks at the store.
constexpr absl::Duration kPoll = absl::Milliseconds(20);
// How often a meeting looks at the beats of the ranks still missing.
constexpr absl::Duration kBeatPoll = absl::Milliseconds(100);
// How long the others wait for the verdict once the meeting closed and a rank took the decision.
constexpr absl::Duration kDeciderGrace = absl::Seconds(10);

std::string Key(int64_t epoch, std::string_view what) {
  return absl::StrCat("recover/", epoch, "/", std::string(what));
}

std::string AliveKey(int64_t rank) { return absl::StrCat("recover/alive/", rank); }

std::string RankList(absl::Span<const int64_t> ranks) {
  constexpr size_t kShown = 16;
  if (ranks.size() <= kShown) return absl::StrJoin(ranks, ", ");
  return absl::StrCat(absl::StrJoin(ranks.subspan(0, kShown), ", "), ", ... (", ranks.size(),
                      " ranks)");
}

// Store contents are untrusted: a cause read back is escaped, and cut when longer than an
// announcement can be (Announce cuts to kMaxCauseBytes, plus the note of the length).
std::string Bounded(const std::string& text) {
  if (text.size() <= kMaxCauseBytes + 32) return Printable(text);
  return Abbreviate(text, kMaxCauseBytes);
}

std::string Ranks(absl::Span<const int64_t> ranks) {
  return absl::StrCat(ranks.size() == 1 ? "rank " : "ranks ", RankList(ranks));
}

class StoreChannel final : public RecoveryChannel {
 public:
  explicit StoreChannel(std::shared_ptr<Store> store) : store_(std::move(store)) {}

  absl::Status Announce(int64_t epoch, std::string_view cause) override {
    NMESH_RETURN_IF_ERROR(CheckEpoch(epoch));
    absl::StatusOr<int64_t> n = store_->Add(Key(epoch, "announce"), 1);
    if (!n.ok()) return Failed(epoch, "announce", n.status());
    return Failed(
        epoch, "announce",
        store_->Set(Key(epoch, absl::StrCat("cause/", *n)), Abbreviate(cause, kMaxCauseBytes)));
  }

  std::optional<std::string> Announced(int64_t epoch) override {
    if (!CheckEpoch(epoch).ok()) return std::nullopt;
    absl::StatusOr<std::optional<std::string>> cause = FirstCause(epoch);
    if (!cause.ok()) return std::nullopt;
    return *std::move(cause);
  }

  absl::StatusOr<RecoveryVerdict> Meet(int64_t epoch, const RecoveryMeetOptions& options) override;

  absl::Status Alive(int64_t launch_rank) override {
    return store_->Add(AliveKey(launch_rank), 1).status();
  }

  std::string Describe() const override { return absl::StrCat("the store ", store_->Describe()); }

 private:
  static absl::Status CheckEpoch(int64_t epoch) {
    if (epoch >= 0) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrFormat("recovery epoch %d: epochs count failures from 0", epoch));
  }

  // A store failure, naming the channel and what it was doing.
  absl::Status Failed(int64_t epoch, std::string_view what, const absl::Status& status) const {
    if (status.ok()) return status;
    return absl::Status(status.code(), absl::StrFormat("recovery from failure %d (%s) over %s: %s",
                                                       epoch, what, Describe(), status.message()));
  }

  // The first announcement of `epoch` that can be read, or nullopt.
  absl::StatusOr<std::optional<std::string>> FirstCause(int64_t epoch) {
    const std::string counter = Key(epoch, "announce");
    NMESH_ASSIGN_OR_RETURN(bool any, store_->Check(counter));
    if (!any) return std::nullopt;
    NMESH_ASSIGN_OR_RETURN(int64_t n, store_->Add(counter, 0));
    for (int64_t i = 1; i <= std::min(n, kMaxCauses); ++i) {
      const std::string key = Key(epoch, absl::StrCat("cause/", i));
      NMESH_ASSIGN_OR_RETURN(bool set, store_->Check(key));
      if (!set) continue;
      NMESH_ASSIGN_OR_RETURN(std::string cause, store_->Get(key, absl::Now() + absl::Seconds(5)));
      return Bounded(cause);
    }
    return std::nullopt;
  }

  // The launch ranks in [0, size) not in `gone` that have set their "here" key.
  absl::StatusOr<std::vector<int64_t>> Arrived(int64_t epoch, absl::Span<const int64_t> expected) {
    std::vector<int64_t> here;
    for (int64_t r : expected) {
      NMESH_ASSIGN_OR_RETURN(bool set, store_->Check(Key(epoch, absl::StrCat("here/", r))));
      if (set) here.push_back(r);
    }
    return here;
  }

  // Whether a rank of `expected` that has not arrived beat within `quiet` of `now`. `beats` holds
  // what earlier calls read: a rank first seen now counts as having beaten now.
  absl::StatusOr<bool> MissingBeat(int64_t epoch, absl::Span<const int64_t> expected,
                                   absl::Duration quiet, absl::Time now,
                                   std::map<int64_t, std::pair<int64_t, absl::Time>>* beats) {
    NMESH_ASSIGN_OR_RETURN(std::vector<int64_t> here, Arrived(epoch, expected));
    bool beating = false;
    for (int64_t r : expected) {
      if (std::binary_search(here.begin(), here.end(), r)) continue;
      NMESH_ASSIGN_OR_RETURN(int64_t n, store_->Add(AliveKey(r), 0));
      auto [it, first] = beats->try_emplace(r, n, now);
      if (!first && it->second.first != n) it->second = {n, now};
      if (now - it->second.second < quiet) beating = true;
    }
    return beating;
  }

  absl::StatusOr<RecoveryVerdict> Decide(int64_t epoch, const RecoveryMeetOptions& options,
                                         absl::Span<const int64_t> expected);
  absl::StatusOr<RecoveryVerdict> ReadVerdict(int64_t epoch, const RecoveryMeetOptions& options,
                                              absl::Time start);
  absl::StatusOr<RecoveryVerdict> Outcome(RecoveryVerdict verdict,
                                          const RecoveryMeetOptions& options,
                                          absl::Time start) const;

  std::shared_ptr<Store> store_;
};

// "E\nsurvivors\ndead\ncause": ranks comma-separated, the cause last (it may hold anything).
std::string EncodeVerdict(const RecoveryVerdict& v) {
  return absl::StrCat(v.epoch, "\n", absl::StrJoin(v.survivors, ","), "\n",
                      absl::StrJoin(v.dead, ","), "\n", v.cause);
}

absl::StatusOr<std::vector<int64_t>> ParseRanks(absl::string_view text, int64_t size) {
  std::vector<int64_t> ranks;
  if (text.empty()) return ranks;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t r = 0;
    if (!absl::SimpleAtoi(part, &r) || r < 0 || r >= size) {
      return absl::DataLossError(absl::StrFormat("rank '%s' is not one of the job's %d ranks",
                                                 Abbreviate(std::string(part)), size));
    }
    if (!ranks.empty() && r <= ranks.back()) {
      return absl::DataLossError("the ranks are not ascending and distinct");
    }
    ranks.push_back(r);
  }
  return ranks;
}

absl::StatusOr<RecoveryVerdict> DecodeVerdict(const std::string& text, int64_t epoch,
                                              int64_t size) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, absl::MaxSplits('\n', 3));
  int64_t got = -1;
  if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &got) || got != epoch) {
    return absl::DataLossError(
        absl::StrFormat("the verdict of failure %d is not one: '%s'", epoch, Abbreviate(text)));
  }
  RecoveryVerdict v;
  v.epoch = epoch;
  NMESH_ASSIGN_OR_RETURN(v.survivors, ParseRanks(parts[1], size));
  NMESH_ASSIGN_OR_RETURN(v.dead, ParseRanks(parts[2], size));
  v.cause = Bounded(std::string(parts[3]));
  return v;
}

absl::StatusOr<RecoveryVerdict> StoreChannel::Outcome(RecoveryVerdict verdict,
                                                      const RecoveryMeetOptions& options,
                                                      absl::Time start) const {
  const bool mine =
      std::binary_search(verdict.survivors.begin(), verdict.survivors.end(), options.launch_rank);
  if (!mine) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "rank %d arrived after the survivors of failure %d agreed without it (survivors: %s; "
        "failure: %s; over %s)",
        options.launch_rank, verdict.epoch, Ranks(verdict.survivors), verdict.cause, Describe()));
  }
  if (options.need_all && !verdict.dead.empty()) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "after failure %d, %s did not arrive at the survivors' meeting over %s within %s, and "
        "every rank must (failure: %s)",
        verdict.epoch, Ranks(verdict.dead), Describe(),
        absl::FormatDuration(absl::Ceil(std::max(options.deadline - start, absl::ZeroDuration()),
                                        absl::Milliseconds(100))),
        verdict.cause));
  }
  return verdict;
}

absl::StatusOr<RecoveryVerdict> StoreChannel::ReadVerdict(int64_t epoch,
                                                          const RecoveryMeetOptions& options,
                                                          absl::Time start) {
  absl::StatusOr<std::string> text =
      store_->Get(Key(epoch, "verdict"), absl::Now() + absl::Seconds(5));
  if (!text.ok()) return Failed(epoch, "read the verdict", text.status());
  absl::StatusOr<RecoveryVerdict> verdict = DecodeVerdict(*text, epoch, options.launch_size);
  if (!verdict.ok()) return Failed(epoch, "read the verdict", verdict.status());
  return Outcome(*std::move(verdict), options, start);
}

absl::StatusOr<RecoveryVerdict> StoreChannel::Decide(int64_t epoch,
                                                     const RecoveryMeetOptions& options,
                                                     absl::Span<const int64_t> expected) {
  (void)store_->Set(Key(epoch, "decider"), absl::StrCat(options.launch_rank));
  absl::StatusOr<std::vector<int64_t>> here = Arrived(epoch, expected);
  // With need_all, a stray arrival (a rank the others count as gone) may have closed the meeting
  // early: wait for the ranks still missing until the deadline.
  while (here.ok() && options.need_all && here->size() < expected.size() &&
         absl::Now() < options.deadline) {
    absl::SleepFor(kPoll);
    here = Arrived(epoch, expected);
  }
  if (!here.ok()) return Failed(epoch, "decide", here.status());
  RecoveryVerdict verdict;
  verdict.epoch = epoch;
  verdict.survivors = *here;
  std::set_difference(expected.begin(), expected.end(), here->begin(), here->end(),
                      std::back_inserter(verdict.dead));
  absl::StatusOr<std::optional<std::string>> cause = FirstCause(epoch);
  if (!cause.ok()) return Failed(epoch, "decide", cause.status());
  verdict.cause = cause->value_or("no cause was announced");
  NMESH_RETURN_IF_ERROR(Failed(epoch, "write the verdict",
                               store_->Set(Key(epoch, "verdict"), EncodeVerdict(verdict))));
  return verdict;
}

absl::StatusOr<RecoveryVerdict> StoreChannel::Meet(int64_t epoch,
                                                   const RecoveryMeetOptions& options) {
  NMESH_RETURN_IF_ERROR(CheckEpoch(epoch));
  const absl::Time start = absl::Now();
  if (options.launch_size < 1 || options.launch_rank < 0 ||
      options.launch_rank >= options.launch_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("recovery meeting: rank %d of a job of %d ranks", options.launch_rank,
                        options.launch_size));
  }
  std::set<int64_t> gone;
  for (int64_t r : options.gone) {
    if (r < 0 || r >= options.launch_size || r == options.launch_rank) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "recovery meeting of rank %d: rank %d cannot be among the ranks already gone (a job of "
          "%d ranks)",
          options.launch_rank, r, options.launch_size));
    }
    gone.insert(r);
  }
  if (options.quiet < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("recovery meeting: a negative quiet period");
  }
  std::vector<int64_t> expected;
  for (int64_t r = 0; r < options.launch_size; ++r) {
    if (gone.count(r) == 0) expected.push_back(r);
  }
  const std::string verdict_key = Key(epoch, "verdict");
  absl::StatusOr<bool> closed = store_->Check(verdict_key);
  if (!closed.ok()) return Failed(epoch, "meet", closed.status());
  if (*closed) return ReadVerdict(epoch, options, start);

  const std::string arrivals = Key(epoch, "arrivals");
  NMESH_RETURN_IF_ERROR(Failed(
      epoch, "meet", store_->Set(Key(epoch, absl::StrCat("here/", options.launch_rank)), "1")));
  absl::StatusOr<int64_t> count = store_->Add(arrivals, 1);
  int64_t last_count = -1;
  absl::Time last_change = absl::Now();
  // The ranks still missing, by the beat count last read and when it last changed (Alive).
  std::map<int64_t, std::pair<int64_t, absl::Time>> beats;
  absl::Time next_beat_poll = absl::InfinitePast();
  bool missing_beat = false;          // a missing rank beat within `quiet`
  std::optional<absl::Time> give_up;  // set once another rank took the decision
  while (true) {
    if (!count.ok()) return Failed(epoch, "meet", count.status());
    absl::StatusOr<bool> done = store_->Check(verdict_key);
    if (!done.ok()) return Failed(epoch, "meet", done.status());
    if (*done) return ReadVerdict(epoch, options, start);
    const absl::Time now = absl::Now();
    if (*count != last_count) {
      last_count = *count;
      last_change = now;
    }
    if (give_up.has_value()) {
      if (now > *give_up) {
        std::string decider = "a rank";
        if (absl::StatusOr<std::string> who =
                store_->Get(Key(epoch, "decider"), absl::Now() + absl::Milliseconds(100));
            who.ok()) {
          decider = absl::StrCat("rank ", Abbreviate(*who));
        }
        return absl::UnavailableError(absl::StrFormat(
            "after failure %d the survivors' meeting over %s closed, but %s took the decision and "
            "wrote no verdict within %s (did it die?)",
            epoch, Describe(), decider, absl::FormatDuration(kDeciderGrace)));
      }
    } else {
      const bool all = *count >= static_cast<int64_t>(expected.size());
      if (!all && !options.need_all && now >= next_beat_poll) {
        next_beat_poll = now + kBeatPoll;
        absl::StatusOr<bool> beating = MissingBeat(epoch, expected, options.quiet, now, &beats);
        if (!beating.ok()) return Failed(epoch, "meet", beating.status());
        missing_beat = *beating;
      }
      const bool quiet = !options.need_all && !missing_beat && now - last_change >= options.quiet;
      if (all || quiet || now >= options.deadline) {
        absl::StatusOr<int64_t> ticket = store_->Add(Key(epoch, "decide"), 1);
        if (!ticket.ok()) return Failed(epoch, "meet", ticket.status());
        if (*ticket == 1) {
          NMESH_ASSIGN_OR_RETURN(RecoveryVerdict verdict, Decide(epoch, options, expected));
          return Outcome(std::move(verdict), options, start);
        }
        give_up = std::max(now, options.deadline) + kDeciderGrace;
      }
    }
    absl::SleepFor(kPoll);
    count = store_->Add(arrivals, 0);
  }
}

}  // namespace

std::unique_ptr<RecoveryChannel> StoreRecoveryChannel(std::shared_ptr<Store> store) {
  return std::make_unique<StoreChannel>(std::move(store));
}

}  // namespace nmesh::comm
