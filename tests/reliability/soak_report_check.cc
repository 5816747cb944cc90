// soak_report_check: checks the reports `nmesh soak --report-dir DIR` wrote, on their own (no
// nmesh code: the JSON is read as text).
//
//   soak_report_check --dir DIR --np N [--gone R,...] [--steps S] [--events K] [--action A]
//                     [--dead R,...] [--world-after W] [--spares K] [--fault-unix-s T]
//
// Every rank of 0..N-1 not in --gone must have written DIR/rank<R>.json with "rank" R, a status of
// "completed" or "spare", "steps" (S for a completed rank, with --steps) and "events" whose fields
// have their types (every completed rank the same steps); a rank in --gone must have written none.
// Every survivor must report the same recoveries (action, dead, world_before, world_after, in
// order; a spare's list ends at the one that made it a spare). With --events, --action, --dead and
// --world-after, the recoveries must be these; with --spares, that many ranks must be spares.
// Prints one line of numbers for scripts:
//   soak_report_check: ok reports=N completed=C spares=K events=E dead=[...] world=B->A
//     resume_max=X agree_max=Y rebuild_max=Z [detect_max=D since_fault=F]
// where detect is the error's time less --fault-unix-s, and since_fault the last survivor's next
// completed step less it. Exit 0 when every check passes, 1 otherwise (naming what failed), 2 on
// bad arguments.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace {

using nlohmann::json;

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) values.push_back(std::stoll(item));
  }
  return values;
}

std::string ListText(const std::vector<int64_t>& values) {
  std::string text = "[";
  for (size_t i = 0; i < values.size(); ++i) text += (i ? "," : "") + std::to_string(values[i]);
  return text + "]";
}

int failures = 0;
void Fail(const std::string& what) {
  std::cerr << "soak_report_check: FAIL: " << what << "\n";
  ++failures;
}

struct Recovery {
  std::string action;
  std::vector<int64_t> dead;
  int64_t world_before = 0;
  int64_t world_after = 0;
  bool operator==(const Recovery& o) const {
    return action == o.action && dead == o.dead && world_before == o.world_before &&
           world_after == o.world_after;
  }
  std::string Text() const {
    return action + " dead " + ListText(dead) + " world " + std::to_string(world_before) + "->" +
           std::to_string(world_after);
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  int64_t np = -1;
  std::set<int64_t> gone;
  std::optional<int64_t> steps, events, world_after, spares;
  std::optional<std::string> action;
  std::optional<std::vector<int64_t>> dead;
  std::optional<double> fault_unix;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "soak_report_check: " << flag << " needs a value\n";
      return 2;
    }
    const std::string value = argv[++i];
    try {
      if (flag == "--dir")
        dir = value;
      else if (flag == "--np")
        np = std::stoll(value);
      else if (flag == "--gone")
        for (int64_t r : ParseList(value)) gone.insert(r);
      else if (flag == "--steps")
        steps = std::stoll(value);
      else if (flag == "--events")
        events = std::stoll(value);
      else if (flag == "--action")
        action = value;
      else if (flag == "--dead")
        dead = ParseList(value);
      else if (flag == "--world-after")
        world_after = std::stoll(value);
      else if (flag == "--spares")
        spares = std::stoll(value);
      else if (flag == "--fault-unix-s")
        fault_unix = std::stod(value);
      else {
        std::cerr << "soak_report_check: unknown flag " << flag << "\n";
        return 2;
      }
    } catch (const std::exception&) {
      std::cerr << "soak_report_check: bad value for " << flag << ": " << value << "\n";
      return 2;
    }
  }
  if (dir.empty() || np < 1) {
    std::cerr << "usage: soak_report_check --dir DIR --np N [...]\n";
    return 2;
  }

  int64_t completed = 0, spare_count = 0, reports = 0;
  std::optional<int64_t> completed_steps;  // every completed rank must report the same
  double resume_max = 0, agree_max = 0, rebuild_max = 0;
  double detect_max = -1e300, resumed_last = -1e300;
  std::vector<Recovery> agreed;  // the longest list seen
  int64_t agreed_from = -1;
  std::vector<std::pair<int64_t, std::vector<Recovery>>> all;
  for (int64_t r = 0; r < np; ++r) {
    const std::string path = dir + "/rank" + std::to_string(r) + ".json";
    std::ifstream file(path);
    if (gone.count(r) != 0) {
      if (file.good()) Fail("rank " + std::to_string(r) + " is gone but wrote " + path);
      continue;
    }
    if (!file.good()) {
      Fail("rank " + std::to_string(r) + " wrote no report (" + path + ")");
      continue;
    }
    ++reports;
    json report;
    try {
      report = json::parse(file);
    } catch (const std::exception& e) {
      Fail(path + ": not JSON: " + e.what());
      continue;
    }
    const std::string where = "rank " + std::to_string(r) + ": ";
    if (!report.contains("rank") || report["rank"] != r)
      Fail(where + "\"rank\" is not " + std::to_string(r));
    const std::string status = report.value("status", "");
    if (status == "completed") {
      ++completed;
      const int64_t done = report.value("steps", int64_t{-1});
      if (completed_steps.has_value() && done != *completed_steps) {
        Fail(where + "completed " + std::to_string(done) + " steps, another rank " +
             std::to_string(*completed_steps));
      }
      completed_steps = done;
      if (steps.has_value() && report.value("steps", int64_t{-1}) != *steps) {
        Fail(where + "completed " + report["steps"].dump() + " steps, expected " +
             std::to_string(*steps));
      }
    } else if (status == "spare") {
      ++spare_count;
    } else {
      Fail(where + "status '" + status + "'" +
           (report.contains("error") ? " (" + report["error"].get<std::string>() + ")" : ""));
    }
    if (!report.contains("steps") || !report["steps"].is_number_integer())
      Fail(where + "no \"steps\"");
    if (!report.contains("events") || !report["events"].is_array()) {
      Fail(where + "no \"events\" array");
      continue;
    }
    std::vector<Recovery> recoveries;
    for (const json& e : report["events"]) {
      const bool typed = e.contains("step") && e["step"].is_number_integer() &&
                         e.contains("action") && e["action"].is_string() && e.contains("dead") &&
                         e["dead"].is_array() && e.contains("culprit") &&
                         e["culprit"].is_string() && e.contains("world_before") &&
                         e["world_before"].is_number_integer() && e.contains("world_after") &&
                         e["world_after"].is_number_integer() && e.contains("resume_s") &&
                         e["resume_s"].is_number();
      if (!typed) {
        Fail(where + "an event lacks a field or has the wrong type: " + e.dump());
        continue;
      }
      Recovery rec{e["action"], e["dead"].get<std::vector<int64_t>>(), e["world_before"],
                   e["world_after"]};
      recoveries.push_back(rec);
      const double resume = e["resume_s"];
      if (status == "completed" && resume < 0) Fail(where + "an event with no step after it");
      resume_max = std::max(resume_max, resume);
      agree_max = std::max(agree_max, e.value("agree_s", 0.0));
      rebuild_max = std::max(rebuild_max, e.value("rebuild_s", 0.0));
      if (fault_unix.has_value() && &e == &report["events"].front()) {
        detect_max = std::max(detect_max, e.value("failed_unix_s", 0.0) - *fault_unix);
        if (status == "completed") {
          resumed_last = std::max(resumed_last, e.value("resumed_unix_s", 0.0) - *fault_unix);
        }
      }
    }
    if (recoveries.size() > agreed.size()) {
      agreed = recoveries;
      agreed_from = r;
    }
    all.emplace_back(r, std::move(recoveries));
  }
  // Every survivor's recoveries are a prefix of the longest list (a spare stops early), and the
  // completed ranks have all of them.
  for (const auto& [r, recoveries] : all) {
    for (size_t i = 0; i < recoveries.size(); ++i) {
      if (!(recoveries[i] == agreed[i])) {
        Fail("rank " + std::to_string(r) + " and rank " + std::to_string(agreed_from) +
             " disagree on recovery " + std::to_string(i) + ": " + recoveries[i].Text() + " vs " +
             agreed[i].Text());
      }
    }
  }
  if (events.has_value() && static_cast<int64_t>(agreed.size()) != *events) {
    Fail("the survivors report " + std::to_string(agreed.size()) + " recoveries, expected " +
         std::to_string(*events));
  }
  if (!agreed.empty()) {
    if (action.has_value() && agreed[0].action != *action) {
      Fail("the recovery was '" + agreed[0].action + "', expected '" + *action + "'");
    }
    if (dead.has_value() && agreed[0].dead != *dead) {
      Fail("the survivors agreed on dead " + ListText(agreed[0].dead) + ", expected " +
           ListText(*dead));
    }
    if (world_after.has_value() && agreed.back().world_after != *world_after) {
      Fail("the new world has " + std::to_string(agreed.back().world_after) + " ranks, expected " +
           std::to_string(*world_after));
    }
  }
  if (spares.has_value() && spare_count != *spares) {
    Fail(std::to_string(spare_count) + " spares, expected " + std::to_string(*spares));
  }
  std::printf(
      "soak_report_check: %s reports=%lld completed=%lld spares=%lld events=%zu dead=%s "
      "world=%lld->%lld resume_max=%.3f agree_max=%.3f rebuild_max=%.3f",
      failures == 0 ? "ok" : "FAILED", static_cast<long long>(reports),
      static_cast<long long>(completed), static_cast<long long>(spare_count), agreed.size(),
      agreed.empty() ? "[]" : ListText(agreed[0].dead).c_str(),
      static_cast<long long>(agreed.empty() ? 0 : agreed[0].world_before),
      static_cast<long long>(agreed.empty() ? 0 : agreed.back().world_after), resume_max, agree_max,
      rebuild_max);
  if (fault_unix.has_value() && !agreed.empty()) {
    std::printf(" detect_max=%.3f since_fault=%.3f", detect_max, resumed_last);
  }
  std::printf("\n");
  return failures == 0 ? 0 : 1;
}
