#include "recipes/report/run_files.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>

#include "autograd/error.h"
#include "model/io/atomic_file.h"

namespace hone::report {

namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot read");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (in.bad()) throw Error(path + ": cannot read");
  return text;
}

std::string beside(const std::string& metrics_file, const char* name) {
  return (fs::path(metrics_file).parent_path() / name).string();
}

// The argument as the user wrote it, without trailing slashes ("runs/a/" names "runs/a").
std::string display_name(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

std::string run_info_path(const std::string& metrics_file) {
  return beside(metrics_file, "run.json");
}

std::string report_path(const std::string& metrics_file) {
  return beside(metrics_file, "report.html");
}

nlohmann::ordered_json read_run_info(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return nullptr;
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(read_text(path), nullptr, false);
  if (j.is_discarded()) throw Error(path + ": not valid JSON");
  if (!j.is_object()) throw Error(path + ": expected a JSON object");
  return j;
}

void write_run_info(const std::string& path, const nlohmann::ordered_json& info) {
  const std::string text =
      info.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  write_file_atomically(path, [&](AtomicWriter& w) { w.write(text); });
}

void write_report(const std::string& out, const std::vector<RunCurves>& runs) {
  const std::string page = render_report(runs);
  write_file_atomically(out, [&](AtomicWriter& w) { w.write(page); });
}

RunCurves load_run(const std::string& run) {
  std::error_code ec;
  const fs::file_status st = fs::status(run, ec);
  if (!fs::exists(st)) throw Error(run + ": no such run folder");
  const std::string metrics =
      fs::is_directory(st) ? (fs::path(run) / "metrics.jsonl").string() : run;
  if (!fs::is_regular_file(metrics, ec))
    throw Error(metrics + ": not found (a run folder holds the metrics.jsonl hone train writes)");
  RunCurves r = parse_metrics(read_text(metrics), metrics);
  r.name = display_name(run);
  r.info = read_run_info(run_info_path(metrics));
  if (r.info.is_object() && r.info.contains("recipe") && r.info["recipe"].is_string()) {
    r.recipe = r.info["recipe"].get<std::string>();
  } else {
    // A run without run.json (written before reports existed): the recipe.yaml beside it.
    const std::string recipe = beside(metrics, "recipe.yaml");
    if (fs::is_regular_file(recipe, ec)) r.recipe = read_text(recipe);
  }
  return r;
}

std::string run_report(const ReportOptions& o) {
  if (o.runs.empty()) throw Error("report: name at least one run folder");
  std::vector<RunCurves> runs;
  for (const std::string& r : o.runs) runs.push_back(load_run(r));
  // The names train gave the runs, when each has one and they differ; else the arguments.
  std::set<std::string> names;
  for (const RunCurves& r : runs)
    if (r.info.is_object() && r.info.contains("name") && r.info["name"].is_string())
      names.insert(r.info["name"].get<std::string>());
  if (names.size() == runs.size())
    for (RunCurves& r : runs) r.name = r.info["name"].get<std::string>();
  std::string out = o.out;
  if (out.empty()) {
    const fs::path first(o.runs[0]);
    out = runs.size() > 1           ? "report.html"
          : fs::is_directory(first) ? (first / "report.html").string()
                                    : report_path(o.runs[0]);
  }
  write_report(out, runs);
  return out;
}

}  // namespace hone::report
