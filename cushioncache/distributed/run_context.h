// How a long job runs, apart from what it computes: the processes that share it, where
// its progress is saved, and whether it continues from there. The search and the tuner
// take it beside their options, so their settings (what is compared on resume and saved
// in reports) hold only what changes the result: a search may resume with another number
// of ranks or from a moved state file.
#pragma once

#include <string>

#include "cushioncache/distributed/process_group.h"

namespace cushioncache {

struct RunContext {
  // The processes sharing the work (not owned); null = this process alone.
  ProcessGroup* group = nullptr;
  // Where progress is saved (by the leader) as the job goes; empty = nowhere.
  std::string state_file;
  // Continue from state_file when it exists (a fresh start when it does not).
  bool resume = false;

  bool alone() const { return group == nullptr || group->world_size() == 1; }
  // Whether this process writes the state file: the leader, or the only process.
  bool writes_state() const { return !state_file.empty() && (group == nullptr || group->is_leader()); }
};

}  // namespace cushioncache
