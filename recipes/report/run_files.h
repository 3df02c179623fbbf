// A run's report files beside its metrics.jsonl: run.json (what only the training process knows:
// model, adapter, samples, tokens per step, the resolved recipe) and report.html. `hone report`
// rebuilds the page from these files alone.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "recipes/report/html.h"

namespace hone::report {

// <folder of metrics_file>/run.json and <folder of metrics_file>/report.html.
std::string run_info_path(const std::string& metrics_file);
std::string report_path(const std::string& metrics_file);

// run.json's object; null when the file does not exist. Throws Error naming the file when it
// cannot be read or is not a JSON object.
nlohmann::ordered_json read_run_info(const std::string& path);
// Replaces `path` atomically (text that is not valid UTF-8 is written with U+FFFD).
void write_run_info(const std::string& path, const nlohmann::ordered_json& info);

// The page for `runs`, written atomically to `out`.
void write_report(const std::string& out, const std::vector<RunCurves>& runs);

// One run read back from disk: `run` is a folder holding metrics.jsonl, or a metrics .jsonl file.
// run.json and recipe.yaml beside it are optional. Throws Error naming the missing or malformed
// file (and line).
RunCurves load_run(const std::string& run);

struct ReportOptions {
  std::vector<std::string> runs;  // folders (or metrics files), at least one
  std::string out;                // "" = report.html beside the one run's metrics, or ./report.html
};

// `hone report`: reads every run first (any error before anything is written), then writes the
// page. Returns the path written.
std::string run_report(const ReportOptions& options);

}  // namespace hone::report
