// The training report page: one self-contained HTML file (inline CSS and SVG, no script, no
// external resource) with the loss curves, learning rate, gradient norm and throughput of one or
// more runs, each run's model and adapter, its resolved recipe and its before/after samples.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hone::report {

// One run's metrics, as metrics.jsonl records them, plus what run.json and recipe.yaml add.
struct RunCurves {
  std::string name;  // how the report names the run (legend, headings)
  // One entry per training record (a record with "loss"), in file order; NaN where a field is
  // missing or null.
  std::vector<double> step, loss, lr, grad_norm, tokens_per_s, elapsed_s;
  // One entry per evaluation record (a record with "val_loss").
  std::vector<double> val_step, val_loss;
  // run.json (model, adapter, samples, tokens_per_step), in its order; null when absent.
  nlohmann::ordered_json info;
  std::string recipe;  // the resolved recipe (YAML); "" when unknown
};

// Parses metrics.jsonl text. Throws Error("<source>:<line>: <problem>") for a line that is not a
// JSON object, has no numeric "step", or has a non-numeric metric. Blank lines are skipped.
RunCurves parse_metrics(const std::string& text, const std::string& source);

// The whole page. Several runs are overlaid, one colour per run.
std::string render_report(const std::vector<RunCurves>& runs);

}  // namespace hone::report
