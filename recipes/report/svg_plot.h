// Line charts as inline SVG text: linear axes with "nice" ticks (1, 2, 5 × 10^k), one polyline per
// series, an optional secondary x axis on top (a linear rescaling of the bottom one, e.g. tokens
// seen for steps). No script, no external resource: the text is a complete <svg> element.
#pragma once

#include <string>
#include <vector>

#include "data/jinja/pystring.h"

namespace hone::report {

struct Series {
  std::string name;   // legend text (escaped when drawn)
  std::string color;  // a CSS colour, e.g. "#1f77b4"
  std::vector<double> x, y;
  bool dashed = false;
  bool markers = false;  // a dot at every point (few points, e.g. held-out evaluations)
};

struct PlotSpec {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  int width = 600, height = 300;
  // A secondary x axis drawn on top: value = x * top_scale (0 = none), labelled top_label.
  double top_scale = 0;
  std::string top_label;
  bool legend = true;
};

// Up to about `max_ticks` round values covering [lo, hi] (lo <= hi, both finite): multiples of
// 1, 2 or 5 × 10^k inside the range. A degenerate range gives the single value.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks);

// A tick label: short, and exact enough to tell neighbouring ticks `step` apart (1e-05, 0.25,
// 1.5k, 3M).
std::string tick_label(double v, double step);

// The chart. Points whose x or y is not finite are left out of their polyline (and of the axis
// ranges); each polyline carries data-points="N", its point count. A series with one point is
// drawn as a dot; with no point it is only named in the legend. Charts with no data say so.
std::string svg_plot(const PlotSpec& spec);

// Text for HTML element content and attribute values: & < > " ' escaped (the Jinja `escape`
// filter's function, owned by data/).
using jinja::pystr::html_escape;

}  // namespace hone::report
