#include "nmesh/comm/watch/diagnosis.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace nmesh::comm {
namespace {

// The name a rank goes by in messages.
int64_t NameOf(const RankRecords& r) { return r.global_rank >= 0 ? r.global_rank : r.rank; }

const OpRecord* Find(const RankRecords& r, uint64_t seq) {
  for (const OpRecord& record : r.records) {
    if (record.seq == seq) return &record;
  }
  return nullptr;
}

// "rank 3" or "ranks 0, 2".
std::string Ranks(const std::vector<int64_t>& ranks) {
  return absl::StrFormat("%s %s", ranks.size() == 1 ? "rank" : "ranks", absl::StrJoin(ranks, ", "));
}

std::string Seconds(int64_t ns) { return absl::StrFormat("%.1f s", static_cast<double>(ns) / 1e9); }

}  // namespace

namespace {

const OpRecord* FindCollective(const RankRecords& r, uint64_t collective_seq) {
  for (const OpRecord& record : r.records) {
    if (record.collective_seq == collective_seq) return &record;
  }
  return nullptr;
}

uint64_t LastCollective(const RankRecords& r) {
  uint64_t last = 0;
  for (const OpRecord& record : r.records) last = std::max(last, record.collective_seq);
  return last;
}

// The operation `r` is blocked in, if any: its latest running record.
const OpRecord* Running(const RankRecords& r) {
  const OpRecord* latest = nullptr;
  for (const OpRecord& record : r.records) {
    if (record.state == OpState::kRunning && (latest == nullptr || record.seq > latest->seq)) {
      latest = &record;
    }
  }
  return latest;
}

bool SameCall(const OpRecord& a, const OpRecord& b) {
  return a.op == b.op && a.count == b.count && a.type == b.type &&
         (!IsRooted(a.op) || a.peer == b.peer);
}

}  // namespace

TimeoutDiagnosis DiagnoseTimeout(std::string_view axis, const OpRecord& stuck,
                                 const std::vector<RankRecords>& ranks) {
  TimeoutDiagnosis d;
  d.seq = stuck.seq;
  std::vector<int64_t> group;
  for (const RankRecords& r : ranks) group.push_back(NameOf(r));
  std::vector<std::string> clauses;
  std::vector<int64_t> waiting;
  int64_t longest_wait_ns = 0;
  const std::string what = DescribeRecord(stuck);
  auto wait_of = [](const RankRecords& r, const OpRecord& record) {
    return std::max<int64_t>(r.now_ns - record.start_ns, 0);
  };
  if (IsPointToPoint(stuck.op)) {
    // The reporting rank waits in it; what matters is its peer.
    const RankRecords* peer = nullptr;
    for (const RankRecords& r : ranks) {
      if (r.rank == stuck.peer) peer = &r;
    }
    if (peer == nullptr) {
      clauses.push_back(absl::StrFormat("rank %d is not in the group", stuck.peer));
    } else if (!peer->answered) {
      clauses.push_back(absl::StrFormat("rank %d did not answer: stopped or dead", NameOf(*peer)));
      d.culprits.push_back(NameOf(*peer));
    } else if (const OpRecord* running = Running(*peer)) {
      clauses.push_back(absl::StrFormat("rank %d waits in %s since %s instead", NameOf(*peer),
                                        DescribeRecord(*running),
                                        Seconds(wait_of(*peer, *running))));
      d.culprits.push_back(NameOf(*peer));
    } else if (!peer->blocked_in.empty()) {
      clauses.push_back(absl::StrFormat("rank %d is in no operation on this axis: it waits in %s",
                                        NameOf(*peer), peer->blocked_in));
      d.culprits.push_back(NameOf(*peer));
    } else {
      clauses.push_back(absl::StrFormat("rank %d is in no operation on this axis", NameOf(*peer)));
      d.culprits.push_back(NameOf(*peer));
    }
    for (const RankRecords& r : ranks) {
      const OpRecord* mine = r.answered ? Find(r, stuck.seq) : nullptr;
      if (mine != nullptr && mine->state == OpState::kRunning && mine->op == stuck.op &&
          r.rank != stuck.peer) {
        clauses.insert(clauses.begin(), absl::StrFormat("rank %d waits in %s since %s", NameOf(r),
                                                        what, Seconds(wait_of(r, *mine))));
        break;
      }
    }
  } else {
    bool mentioned = false;  // whether a clause so far names the operation
    for (const RankRecords& r : ranks) {
      const int64_t name = NameOf(r);
      if (!r.answered) {
        clauses.push_back(absl::StrFormat("rank %d did not answer: stopped or dead", name));
        d.culprits.push_back(name);
        continue;
      }
      const OpRecord* mine = FindCollective(r, stuck.collective_seq);
      if (mine == nullptr) {
        if (LastCollective(r) >= stuck.collective_seq && !r.records.empty()) {
          clauses.push_back(
              absl::StrFormat("rank %d has no record of %s (its ring is too short)", name, what));
          continue;
        }
        std::string clause = absl::StrFormat("rank %d never entered %s", name, what);
        if (const OpRecord* running = Running(r)) {
          absl::StrAppendFormat(&clause, " (it waits in %s)", DescribeRecord(*running));
        } else if (!r.blocked_in.empty()) {
          absl::StrAppendFormat(&clause, " (it waits in %s)", r.blocked_in);
        }
        clauses.push_back(std::move(clause));
        d.culprits.push_back(name);
        mentioned = true;
        continue;
      }
      if (!SameCall(*mine, stuck)) {
        clauses.push_back(
            absl::StrFormat("rank %d called %s instead (mismatch)", name, DescribeRecord(*mine)));
        d.culprits.push_back(name);
        continue;
      }
      if (mine->state == OpState::kRunning) {
        waiting.push_back(name);
        longest_wait_ns = std::max(longest_wait_ns, wait_of(r, *mine));
      }
    }
    if (!waiting.empty()) {
      clauses.push_back(absl::StrFormat("%s %s in %s since %s", Ranks(waiting),
                                        waiting.size() == 1 ? "waits" : "wait",
                                        mentioned ? "it" : what, Seconds(longest_wait_ns)));
    }
    if (d.culprits.empty()) {
      clauses.push_back(absl::StrFormat(
          "every rank entered %s (a rank may be slow, or the network stalled)", what));
    }
  }
  d.summary = absl::StrFormat("timeout on axis '%s' (group [%s]): %s", axis,
                              absl::StrJoin(group, ", "), absl::StrJoin(clauses, "; "));
  return d;
}

namespace {

// "[2, 3]"; a long group is shortened: "[0, 1, 2, 3, ..., 1023] (1024 ranks)".
std::string GroupText(const std::vector<int64_t>& members) {
  constexpr size_t kShown = 8;
  if (members.size() <= kShown) return absl::StrFormat("[%s]", absl::StrJoin(members, ", "));
  const std::vector<int64_t> head(members.begin(), members.begin() + kShown / 2);
  return absl::StrFormat("[%s, ..., %d] (%d ranks)", absl::StrJoin(head, ", "), members.back(),
                         members.size());
}

// One rank's wait on one of its communicators, and the ranks it waits for.
struct WaitEdge {
  const AxisProgress* axis = nullptr;
  std::vector<int64_t> absent;  // members that never entered the collective (or its peer)
  std::vector<int64_t> silent;  // members that did not answer
  // Members that were not asked (outside the group whose records were exchanged): where they
  // stand is unknown, so the wait goes on through them rather than ending at this rank.
  std::vector<int64_t> unasked;
};

}  // namespace

std::string TraceWaits(const std::vector<RankRecords>& ranks) {
  constexpr size_t kMaxRanks = 4096;  // the analysis is quadratic; a larger group is not traced
  if (ranks.size() > kMaxRanks) return "";
  std::map<int64_t, const RankRecords*> by_name;
  for (const RankRecords& r : ranks) by_name[NameOf(r)] = &r;
  // The entry of `r` for the communicator `axis` names (same name and group).
  auto progress_on = [](const RankRecords& r, const AxisProgress& axis) -> const AxisProgress* {
    for (const AxisProgress& p : r.axes) {
      if (p.axis == axis.axis && p.group == axis.group) return &p;
    }
    return nullptr;
  };
  // Each answering rank's oldest wait, and whom it waits for.
  std::map<int64_t, WaitEdge> edges;
  for (const RankRecords& r : ranks) {
    if (!r.answered) continue;
    const AxisProgress* oldest = nullptr;
    for (const AxisProgress& p : r.axes) {
      if (p.waiting.seq == 0) continue;
      if (oldest == nullptr || p.waiting.start_ns < oldest->waiting.start_ns) oldest = &p;
    }
    if (oldest == nullptr) continue;
    WaitEdge edge;
    edge.axis = oldest;
    const OpRecord& op = oldest->waiting;
    std::vector<int64_t> members = oldest->members;
    if (IsPointToPoint(op.op)) {
      // It waits for its peer only.
      if (op.peer < 0 || static_cast<size_t>(op.peer) >= members.size()) continue;
      members = {members[static_cast<size_t>(op.peer)]};
    } else if (members.empty()) {
      for (const RankRecords& other : ranks) {
        if (progress_on(other, *oldest) != nullptr) members.push_back(NameOf(other));
      }
    }
    for (int64_t member : members) {
      if (member == NameOf(r)) continue;
      auto found = by_name.find(member);
      if (found == by_name.end()) {
        edge.unasked.push_back(member);
        continue;
      }
      const RankRecords& other = *found->second;
      if (!other.answered) {
        edge.silent.push_back(member);
        continue;
      }
      const AxisProgress* theirs = progress_on(other, *oldest);
      if (theirs == nullptr) continue;
      const bool behind = IsPointToPoint(op.op)
                              ? theirs->waiting.seq == 0 || !IsPointToPoint(theirs->waiting.op)
                              : theirs->entered < op.collective_seq;
      if (behind) edge.absent.push_back(member);
    }
    // Behind members known: those not asked are left out; none known: they may be the ones.
    if (!edge.absent.empty() || !edge.silent.empty()) edge.unasked.clear();
    if (!edge.absent.empty() || !edge.silent.empty() || !edge.unasked.empty()) {
      edges[NameOf(r)] = std::move(edge);
    }
  }
  if (edges.empty()) return "";
  // Reachability, to find where the waits end: the sets of ranks that every rank reachable from
  // them can reach back (a rank waiting for nobody, or a cycle).
  std::map<int64_t, std::set<int64_t>> reach;
  for (const auto& [from, unused] : edges) {
    std::set<int64_t>& seen = reach[from];
    std::vector<int64_t> todo = {from};
    while (!todo.empty()) {
      const int64_t at = todo.back();
      todo.pop_back();
      auto edge = edges.find(at);
      if (edge == edges.end()) continue;
      for (const std::vector<int64_t>* next :
           {&edge->second.absent, &edge->second.silent, &edge->second.unasked}) {
        for (int64_t to : *next) {
          if (seen.insert(to).second) todo.push_back(to);
        }
      }
    }
  }
  auto reaches = [&](int64_t from, int64_t to) {
    auto it = reach.find(from);
    return it != reach.end() && it->second.count(to) > 0;
  };
  auto step = [&](int64_t from, const WaitEdge& edge) {
    std::string text = absl::StrFormat("rank %d waits in %s on axis '%s'", from,
                                       DescribeRecord(edge.axis->waiting), edge.axis->axis);
    if (!edge.axis->members.empty()) {
      absl::StrAppendFormat(&text, " (group %s)", GroupText(edge.axis->members));
    }
    const bool p2p = IsPointToPoint(edge.axis->waiting.op);
    if (!edge.absent.empty()) {
      absl::StrAppendFormat(&text, ", which %s %s", Ranks(edge.absent),
                            p2p ? "does not match" : "never entered");
    }
    if (!edge.silent.empty()) {
      absl::StrAppendFormat(&text, "%s %s did not answer (stopped or dead)",
                            edge.absent.empty() ? ", for which" : "; and", Ranks(edge.silent));
    }
    if (!edge.unasked.empty()) {
      absl::StrAppendFormat(&text, ", for %s, not asked (where %s stands is not known here)",
                            Ranks(edge.unasked), edge.unasked.size() == 1 ? "it" : "they");
    }
    return text;
  };
  std::vector<std::string> endings;
  std::set<int64_t> explained;
  for (const auto& [from, edge] : edges) {
    for (const std::vector<int64_t>* next : {&edge.absent, &edge.silent, &edge.unasked}) {
      for (int64_t to : *next) {
        if (explained.count(to) > 0) continue;
        // `to` ends the waits when everything it reaches reaches it back.
        bool terminal = true;
        if (auto it = reach.find(to); it != reach.end()) {
          for (int64_t r : it->second) terminal = terminal && reaches(r, to);
        }
        if (!terminal) continue;
        // One ending per set of ranks that wait for one another.
        explained.insert(to);
        if (auto it = reach.find(to); it != reach.end()) {
          explained.insert(it->second.begin(), it->second.end());
        }
        auto cycle_edge = edges.find(to);
        if (cycle_edge == edges.end()) {
          // It waits for nobody: it did not answer, was not asked, or it is somewhere no
          // watched collective is.
          std::string text = step(from, edge);
          auto asked = by_name.find(to);
          if (asked == by_name.end()) {
            // Already said by the step.
          } else if (const RankRecords& end = *asked->second; !end.answered) {
            // Already said by the step.
          } else if (!asked->second->blocked_in.empty()) {
            absl::StrAppendFormat(&text, "; rank %d waits in %s", to, asked->second->blocked_in);
          } else {
            absl::StrAppendFormat(&text, "; rank %d waits in no watched operation", to);
          }
          endings.push_back(std::move(text));
          continue;
        }
        // A cycle through `to`: walk it from `to`, staying among the ranks that reach `to`.
        std::vector<std::string> steps;
        int64_t at = to;
        std::set<int64_t> walked;
        while (walked.insert(at).second) {
          const WaitEdge& e = edges.at(at);
          steps.push_back(step(at, e));
          // Back to `to` if it can, else on to the first rank that leads back: the shortest way.
          int64_t next = at;
          for (const std::vector<int64_t>* list : {&e.absent, &e.silent, &e.unasked}) {
            for (int64_t candidate : *list) {
              if (candidate == to) next = to;
            }
          }
          for (const std::vector<int64_t>* list : {&e.absent, &e.silent, &e.unasked}) {
            for (int64_t candidate : *list) {
              if (next == at && reaches(candidate, to)) next = candidate;
            }
          }
          if (next == at) break;
          at = next;
        }
        endings.push_back(
            absl::StrFormat("%s: a cycle, each waiting for the next (collectives called in "
                            "different orders, or one skipped)",
                            absl::StrJoin(steps, "; ")));
      }
    }
  }
  return absl::StrJoin(endings, " | ");
}

namespace {

nlohmann::ordered_json RecordJson(const OpRecord& rec) {
  nlohmann::ordered_json j;
  j["seq"] = rec.seq;
  j["collective_seq"] = rec.collective_seq;
  j["op"] = std::string(OpKindName(rec.op));
  j["count"] = rec.count;
  j["datatype"] = std::string(DataTypeName(rec.type));
  j["peer"] = rec.peer;
  j["enqueue_ns"] = rec.enqueue_ns;
  j["start_ns"] = rec.start_ns;
  j["end_ns"] = rec.end_ns;
  j["deadline_ns"] = rec.deadline_ns;
  j["state"] = std::string(OpStateName(rec.state));
  return j;
}

}  // namespace

std::string FlightRecordJson(std::string_view axis, int64_t reporting_rank,
                             std::string_view diagnosis, const std::vector<RankRecords>& ranks,
                             std::string_view trace) {
  nlohmann::ordered_json out;
  out["version"] = kFlightRecordJsonVersion;
  out["axis"] = std::string(axis);
  out["reporting_rank"] = reporting_rank;
  out["diagnosis"] = std::string(diagnosis);
  out["trace"] = std::string(trace);
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  for (const RankRecords& r : ranks) {
    nlohmann::ordered_json entry;
    entry["rank"] = r.rank;
    entry["global_rank"] = r.global_rank;
    entry["answered"] = r.answered;
    entry["now_ns"] = r.now_ns;
    entry["blocked_in"] = r.blocked_in;
    nlohmann::ordered_json records = nlohmann::ordered_json::array();
    for (const OpRecord& rec : r.records) records.push_back(RecordJson(rec));
    entry["records"] = std::move(records);
    nlohmann::ordered_json axes = nlohmann::ordered_json::array();
    for (const AxisProgress& p : r.axes) {
      nlohmann::ordered_json j;
      j["axis"] = p.axis;
      j["group"] = absl::StrFormat("0x%016x", p.group);
      j["members"] = p.members;
      j["entered"] = p.entered;
      j["waiting"] = p.waiting.seq == 0 ? nlohmann::ordered_json(nullptr) : RecordJson(p.waiting);
      axes.push_back(std::move(j));
    }
    entry["axes"] = std::move(axes);
    all.push_back(std::move(entry));
  }
  out["ranks"] = std::move(all);
  return out.dump(2) + "\n";
}

}  // namespace nmesh::comm
