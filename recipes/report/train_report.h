// What `hone train` adds to its report: run.json (model, adapter, data, tokens per step, the
// resolved recipe, a greedy sample before and after training) and report.html, rewritten
// atomically beside metrics.jsonl at every evaluation and at the end. Rank 0 alone holds one.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "recipes/run_setup.h"

namespace hone::report {

class TrainReport {
 public:
  // `run` is prepared (model, tokenizer, data, adapters); `resolved` is the resolved recipe.
  // A resumed run keeps the "before" sample of the run.json it finds.
  TrainReport(const Run& run, const std::string& resolved, bool resumed);

  // Greedy continuations of a prompt from the held-out data (else the training data), with
  // the adapters as they are now. Skipped when this process holds only a pipeline stage.
  void sample_before(Run& run);
  void sample_after(Run& run);

  // Rewrites run.json and report.html from the metrics written so far.
  void write(const std::string& metrics_text) const;

  const nlohmann::ordered_json& info() const { return info_; }

 private:
  std::string sample(Run& run) const;
  std::string metrics_file_;
  nlohmann::ordered_json info_;
};

}  // namespace hone::report
