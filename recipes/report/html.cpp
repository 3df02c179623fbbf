#include "recipes/report/html.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "autograd/error.h"
#include "recipes/report/svg_plot.h"

namespace hone::report {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A metric field: a number, or NaN when absent or null (JSON has no NaN; nlohmann writes null).
double field(const nlohmann::json& rec, const char* key, const std::string& where) {
  const auto it = rec.find(key);
  if (it == rec.end() || it->is_null()) return kNaN;
  if (!it->is_number())
    throw Error(where + ": \"" + key + "\" must be a number (got " + it->dump() + ")");
  return it->get<double>();
}

// Colours told apart in print and by most colour-blind readers (the Tableau 10 set).
const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                "#9467bd", "#8c564b", "#e377c2", "#17becf"};
const char* colour(size_t run, bool second) {
  // One run: the two curves of a chart get two colours; several: one colour per run.
  return kPalette[(run + (second ? 3 : 0)) % (sizeof kPalette / sizeof kPalette[0])];
}

std::string fmt(double v, const char* f = "%.4g") {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

double last_finite(const std::vector<double>& v) {
  for (auto it = v.rbegin(); it != v.rend(); ++it)
    if (std::isfinite(*it)) return *it;
  return kNaN;
}

double first_finite(const std::vector<double>& v) {
  for (double x : v)
    if (std::isfinite(x)) return x;
  return kNaN;
}

// Mean of the finite values (the throughput summary).
double mean_finite(const std::vector<double>& v) {
  double s = 0;
  int64_t n = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++n;
  return n ? s / static_cast<double>(n) : kNaN;
}

// A JSON value as table text: strings bare, arrays joined by commas.
std::string show(const nlohmann::ordered_json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : ", ") + show(e);
    return s;
  }
  return v.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// A two-column table of an object's fields (model, adapter, data), in its order.
void key_table(std::ostringstream& o, const std::string& title, const nlohmann::ordered_json& obj) {
  if (!obj.is_object() || obj.empty()) return;
  o << "<table class=\"kv\"><caption>" << html_escape(title) << "</caption>\n";
  for (const auto& [k, v] : obj.items())
    o << "<tr><th>" << html_escape(k) << "</th><td>" << html_escape(show(v)) << "</td></tr>\n";
  o << "</table>\n";
}

std::string string_at(const nlohmann::ordered_json& j, const char* key) {
  if (!j.is_object()) return "";
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The secondary axis of the loss chart: tokens per step, when every run has the same one.
double shared_tokens_per_step(const std::vector<RunCurves>& runs) {
  double t = 0;
  for (const RunCurves& r : runs) {
    const auto it = r.info.is_object() ? r.info.find("tokens_per_step") : r.info.end();
    if (it == r.info.end() || !it->is_number() || !(it->get<double>() > 0)) return 0;
    if (t != 0 && t != it->get<double>()) return 0;
    t = it->get<double>();
  }
  return t;
}

const char* kStyle = R"(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
  margin: 24px; max-width: 1240px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-bottom: 16px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.plot { background: #fff; border: 1px solid #eee; max-width: 100%; height: auto; }
svg .title { font-size: 13px; font-weight: 600; }
svg .axis-label { font-size: 11px; fill: #555; }
svg .top-tick { font-size: 10px; fill: #777; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; }
table.summary th, table.summary td { border-bottom: 1px solid #eee; padding-right: 18px; }
table.kv { display: inline-table; margin-right: 32px; }
table.kv th { color: #555; font-weight: 500; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
pre { background: #f6f6f6; padding: 8px 10px; white-space: pre-wrap; word-break: break-word;
  margin: 4px 0 10px; }
pre.recipe { max-height: 360px; overflow: auto; font-size: 12px; }
.samples { display: flex; gap: 16px; }
.samples > div { flex: 1; min-width: 0; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 6px;
  vertical-align: -1px; }
)";

}  // namespace

RunCurves parse_metrics(const std::string& text, const std::string& source) {
  RunCurves r;
  std::istringstream in(text);
  std::string line;
  for (int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = source + ":" + std::to_string(n);
    nlohmann::json rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (rec.is_discarded()) throw Error(where + ": not a JSON object (malformed line)");
    if (!rec.is_object()) throw Error(where + ": not a JSON object (got " + rec.dump() + ")");
    const double step = field(rec, "step", where);
    if (!std::isfinite(step)) throw Error(where + ": no numeric \"step\"");
    if (rec.contains("loss")) {
      r.step.push_back(step);
      r.loss.push_back(field(rec, "loss", where));
      r.lr.push_back(field(rec, "lr", where));
      r.grad_norm.push_back(field(rec, "grad_norm", where));
      r.tokens_per_s.push_back(field(rec, "tokens_per_s", where));
      r.elapsed_s.push_back(field(rec, "elapsed_s", where));
    }
    if (rec.contains("val_loss")) {
      r.val_step.push_back(step);
      r.val_loss.push_back(field(rec, "val_loss", where));
    }
  }
  return r;
}

std::string render_report(const std::vector<RunCurves>& runs) {
  const bool several = runs.size() > 1;
  std::ostringstream o;
  std::string names;
  for (const RunCurves& r : runs) names += (names.empty() ? "" : ", ") + r.name;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    << "<title>hone report: " << html_escape(names) << "</title>\n<style>" << kStyle
    << "</style>\n</head>\n<body>\n";
  o << "<h1>hone training report</h1>\n<div class=\"sub\">" << html_escape(names) << "</div>\n";

  // The summary: one row per run.
  o << "<table class=\"summary\">\n<tr><th>run</th><th>steps</th><th>train loss (first → "
       "last)</th><th>held-out loss (first → last)</th><th>mean tokens/s</th><th>time</th></tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunCurves& r = runs[i];
    std::string steps = fmt(last_finite(r.step), "%.0f");
    if (r.info.is_object() && r.info.contains("total_steps"))
      steps += " / " + show(r.info["total_steps"]);
    o << "<tr><td><span class=\"swatch\" style=\"background:" << colour(i, false) << "\"></span>"
      << html_escape(r.name) << "</td><td>" << html_escape(steps) << "</td><td>"
      << fmt(first_finite(r.loss)) << " → " << fmt(last_finite(r.loss)) << "</td><td>"
      << fmt(first_finite(r.val_loss)) << " → " << fmt(last_finite(r.val_loss)) << "</td><td>"
      << fmt(mean_finite(r.tokens_per_s), "%.0f") << "</td><td>"
      << fmt(last_finite(r.elapsed_s), "%.1f s") << "</td></tr>\n";
  }
  o << "</table>\n";

  // Loss: training and held-out, against steps (tokens on top when the runs agree on them).
  PlotSpec loss{"Loss", "step", "cross-entropy (nats/token)", {}, 1200, 400, 0, "", true};
  loss.top_scale = shared_tokens_per_step(runs);
  loss.top_label = "tokens seen (batch × grad_accum × seq_len per step)";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunCurves& r = runs[i];
    const std::string pre = several ? r.name + " " : "";
    loss.series.push_back({pre + "train loss", colour(i, false), r.step, r.loss, false, false});
    loss.series.push_back(
        {pre + "held-out loss", colour(i, !several), r.val_step, r.val_loss, true, true});
  }
  o << "<h2>Loss</h2>\n" << svg_plot(loss);

  // The optimiser's view: learning rate, gradient norm (before clipping), throughput.
  auto small = [&](const char* title, const char* y_label, auto member) {
    PlotSpec p{title, "step", y_label, {}, 394, 260, 0, "", several};
    for (size_t i = 0; i < runs.size(); ++i)
      p.series.push_back({runs[i].name, colour(i, false), runs[i].step, runs[i].*member});
    return svg_plot(p);
  };
  o << "<h2>Optimisation</h2>\n<div class=\"charts\">\n"
    << small("Learning rate", "lr", &RunCurves::lr)
    << small("Gradient norm", "global L2 norm (before clipping)", &RunCurves::grad_norm)
    << small("Throughput", "tokens/s", &RunCurves::tokens_per_s) << "</div>\n";

  // Each run: model, adapter, samples before and after, the resolved recipe.
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunCurves& r = runs[i];
    o << "<h2><span class=\"swatch\" style=\"background:" << colour(i, false) << "\"></span>"
      << html_escape(r.name) << "</h2>\n";
    if (r.info.is_object()) {
      key_table(o, "Model", r.info.value("model", nlohmann::ordered_json::object()));
      key_table(o, "Adapter", r.info.value("adapter", nlohmann::ordered_json::object()));
      key_table(o, "Data", r.info.value("data", nlohmann::ordered_json::object()));
      const nlohmann::ordered_json samples =
          r.info.value("samples", nlohmann::ordered_json::object());
      const std::string prompt = string_at(samples, "prompt");
      if (!prompt.empty()) {
        o << "<h3>Samples (greedy, " << html_escape(show(samples.value("new_tokens", 0)))
          << " new tokens after the prompt)</h3>\n<div class=\"samples\">\n";
        for (const char* when : {"before", "after"}) {
          const std::string text = string_at(samples, when);
          o << "<div><b>" << when << " training</b><pre class=\"sample\" data-when=\"" << when
            << "\"><u>" << html_escape(prompt) << "</u>"
            << (text.empty() ? "<i>(not yet)</i>" : html_escape(text)) << "</pre></div>\n";
        }
        o << "</div>\n";
      }
    } else {
      o << "<p class=\"sub\">No run.json beside the metrics: model, adapter and samples "
           "unknown.</p>\n";
    }
    if (!r.recipe.empty())
      o << "<details open><summary>Resolved recipe</summary><pre class=\"recipe\">"
        << html_escape(r.recipe) << "</pre></details>\n";
  }
  o << "</body>\n</html>\n";
  return o.str();
}

}  // namespace hone::report
