// Reading report pages back in tests: the point count of each named curve, counted from the
// polyline's own coordinates (not from its data-points label).
#pragma once

#include <map>
#include <sstream>
#include <string>

#include "train_helpers.h"

namespace hone::test {

// data-series name -> the number of "x,y" pairs in the polyline that follows it. Works on the
// page hone writes and on the DOM a browser serialises from it.
inline std::map<std::string, int> curve_points(const std::string& html) {
  std::map<std::string, int> out;
  const std::string tag = "data-series=\"";
  for (size_t at = html.find(tag); at != std::string::npos; at = html.find(tag, at + 1)) {
    const size_t name_end = html.find('"', at + tag.size());
    const std::string name = html.substr(at + tag.size(), name_end - at - tag.size());
    const size_t poly = html.find("<polyline", name_end);
    const size_t pts = html.find("points=\"", poly);
    const size_t pts_end = html.find('"', pts + 8);
    std::istringstream in(html.substr(pts + 8, pts_end - pts - 8));
    int n = 0;
    for (std::string pair; in >> pair;) n += pair.find(',') != std::string::npos;
    out[name] = n;
  }
  return out;
}

// How often `needle` occurs in `hay`.
inline int count_of(const std::string& hay, const std::string& needle) {
  int n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

// A tiny real training run for report tests: `steps` steps, an evaluation every `eval_every`.
inline Outcome train_small_run(const std::string& dir, int steps, int eval_every) {
  const std::string recipe = write_small_recipe(dir + ".yaml", dir, steps);
  return run_hone("train " + recipe + " eval.every=" + std::to_string(eval_every) +
                  " checkpoint.every=0");
}

}  // namespace hone::test
