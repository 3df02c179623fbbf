#include "recipes/report/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace hone::report {

namespace {

// The round step (1, 2 or 5 × 10^k) nearest above `raw`.
double nice_step(double raw) {
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * mag;
}

struct Range {
  double lo = 0, hi = 1;
};

// [lo, hi] widened to whole tick steps; a single value gets room around it; no value gives [0, 1].
Range nice_range(double lo, double hi, bool any, int max_ticks) {
  if (!any) return {};
  if (lo == hi) {
    const double pad = lo == 0 ? 1.0 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  if (!std::isfinite(hi - lo)) return {lo, hi};  // beyond what a chart can show: as is
  const double step = nice_step((hi - lo) / std::max(1, max_ticks - 1));
  return {std::floor(lo / step) * step, std::ceil(hi / step) * step};
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

bool usable(double x, double y) {
  return std::isfinite(x) && std::isfinite(y);
}

// Rough width of `n` characters at the 11px legend font, for laying out the legend.
double text_width(const std::string& s) {
  return 6.6 * static_cast<double>(s.size());
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) return {lo};
  if (!std::isfinite(hi - lo)) return {lo, hi};
  const double step = nice_step((hi - lo) / std::max(1, max_ticks - 1));
  // Tick k is k·m·10^e (step = m·10^e, m in 1, 2, 5): computed so, a decimal tick is the double
  // nearest to it (0.6, not 3 × 0.2 = 0.6000000000000001).
  const double e = std::floor(std::log10(step) + 1e-9);
  const double pow10 = std::pow(10.0, std::abs(e));
  const double m = std::round(e < 0 ? step * pow10 : step / pow10);
  auto tick = [&](double k) { return e < 0 ? k * m / pow10 : k * m * pow10; };
  const double k0 = std::ceil(lo / step - 1e-9);
  std::vector<double> out;
  for (int i = 0; i < 1000; ++i) {
    double v = tick(k0 + i);
    if (v > hi + step * 1e-9) break;
    if (v == 0) v = 0;  // no "-0"
    out.push_back(v);
  }
  return out;
}

std::string tick_label(double v, double step) {
  if (v == 0 || !std::isfinite(v)) return v == 0 ? "0" : std::to_string(v);
  if (!(step > 0) || !std::isfinite(step)) step = std::abs(v);
  char buf[48];
  const double a = std::abs(v);
  // One notation per axis: decided by the step, which all its labels share.
  if (step < 1e-3 || a >= 1e15) {
    // Mantissa digits enough to separate ticks one step apart; exponent without leading zeros.
    const int digits = static_cast<int>(std::floor(std::log10(a)) - std::floor(std::log10(step)));
    std::snprintf(buf, sizeof buf, "%.*e", std::clamp(digits, 0, 6), v);
    std::string s = buf;
    const size_t e = s.find('e');
    std::string mant = s.substr(0, e), exp = s.substr(e + 1);
    const bool neg = exp[0] == '-';
    exp = exp.substr(1);
    exp.erase(0, std::min(exp.find_first_not_of('0'), exp.size() - 1));
    return mant + "e" + (neg ? "-" : "") + exp;
  }
  static const struct {
    double div;
    const char* suffix;
  } kUnits[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}, {1, ""}};
  for (const auto& u : kUnits) {
    if (a < u.div && u.div > 1) continue;  // SI prefixes as d3's format: 500k, 1.5M
    const double scaled_step = step / u.div;
    const int decimals = static_cast<int>(std::ceil(-std::log10(scaled_step) - 1e-9));
    std::snprintf(buf, sizeof buf, "%.*f%s", std::clamp(decimals, 0, 6), v / u.div, u.suffix);
    return buf;
  }
  return buf;  // unreachable: the last unit always matches
}

std::string svg_plot(const PlotSpec& spec) {
  constexpr int kTicks = 6;
  // Data ranges over the usable points of every series.
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  bool any = false;
  for (const Series& s : spec.series)
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      if (!any) x0 = x1 = s.x[i], y0 = y1 = s.y[i];
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
      any = true;
    }
  const Range xr = nice_range(x0, x1, any, kTicks), yr = nice_range(y0, y1, any, kTicks);

  // Legend rows under the chart, laid out left to right.
  const double left = 64, right = 20, top = spec.top_scale > 0 ? 58 : 34, bottom = 42;
  const double plot_w = spec.width - left - right;
  struct Entry {
    const Series* s;
    double x;
    int row;
  };
  std::vector<Entry> legend;
  if (spec.legend) {
    double x = left;
    int row = 0;
    for (const Series& s : spec.series) {
      const double w = 28 + text_width(s.name) + 16;
      if (x + w > left + plot_w && x > left) x = left, ++row;
      legend.push_back({&s, x, row});
      x += w;
    }
  }
  const int rows = legend.empty() ? 0 : legend.back().row + 1;
  const double plot_h = spec.height - top - bottom;
  const double height = spec.height + rows * 16.0 + (rows ? 6 : 0);  // legend under the x label
  auto px = [&](double x) { return left + (x - xr.lo) / (xr.hi - xr.lo) * plot_w; };
  auto py = [&](double y) { return top + plot_h - (y - yr.lo) / (yr.hi - yr.lo) * plot_h; };

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" width=\"" << spec.width
    << "\" height=\"" << num(height) << "\" viewBox=\"0 0 " << spec.width << " " << num(height)
    << "\" role=\"img\" aria-label=\"" << html_escape(spec.title) << "\">\n";
  o << "<text x=\"" << num(left) << "\" y=\"16\" class=\"title\">" << html_escape(spec.title)
    << "</text>\n";
  o << "<rect x=\"" << num(left) << "\" y=\"" << num(top) << "\" width=\"" << num(plot_w)
    << "\" height=\"" << num(plot_h) << "\" fill=\"none\" stroke=\"#888\"/>\n";

  // Grid lines and tick labels; the step between ticks decides the labels' precision.
  auto step_of = [](const std::vector<double>& t) { return t.size() > 1 ? t[1] - t[0] : 0.0; };
  const std::vector<double> xt = nice_ticks(xr.lo, xr.hi, kTicks);
  const std::vector<double> yt = nice_ticks(yr.lo, yr.hi, kTicks);
  o << "<g class=\"grid\" stroke=\"#e4e4e4\">\n";
  for (double v : xt)
    o << "<line x1=\"" << num(px(v)) << "\" y1=\"" << num(top) << "\" x2=\"" << num(px(v))
      << "\" y2=\"" << num(top + plot_h) << "\"/>\n";
  for (double v : yt)
    o << "<line x1=\"" << num(left) << "\" y1=\"" << num(py(v)) << "\" x2=\"" << num(left + plot_w)
      << "\" y2=\"" << num(py(v)) << "\"/>\n";
  o << "</g>\n<g class=\"ticks\" font-size=\"11\" fill=\"#444\">\n";
  for (double v : xt)
    o << "<text x=\"" << num(px(v)) << "\" y=\"" << num(top + plot_h + 14)
      << "\" text-anchor=\"middle\">" << tick_label(v, step_of(xt)) << "</text>\n";
  for (double v : yt)
    o << "<text x=\"" << num(left - 6) << "\" y=\"" << num(py(v) + 4) << "\" text-anchor=\"end\">"
      << tick_label(v, step_of(yt)) << "</text>\n";
  if (spec.top_scale > 0) {
    const std::vector<double> tt =
        nice_ticks(xr.lo * spec.top_scale, xr.hi * spec.top_scale, kTicks);
    for (double v : tt)
      o << "<text x=\"" << num(px(v / spec.top_scale)) << "\" y=\"" << num(top - 6)
        << "\" text-anchor=\"middle\" class=\"top-tick\">" << tick_label(v, step_of(tt))
        << "</text>\n";
    o << "<text x=\"" << num(left + plot_w / 2) << "\" y=\"" << num(top - 22)
      << "\" text-anchor=\"middle\" class=\"axis-label\">" << html_escape(spec.top_label)
      << "</text>\n";
  }
  o << "<text x=\"" << num(left + plot_w / 2) << "\" y=\"" << num(top + plot_h + 32)
    << "\" text-anchor=\"middle\" class=\"axis-label\">" << html_escape(spec.x_label)
    << "</text>\n";
  o << "<text transform=\"translate(14," << num(top + plot_h / 2)
    << ") rotate(-90)\" text-anchor=\"middle\" class=\"axis-label\">" << html_escape(spec.y_label)
    << "</text>\n</g>\n";
  if (!any)
    o << "<text x=\"" << num(left + plot_w / 2) << "\" y=\"" << num(top + plot_h / 2)
      << "\" text-anchor=\"middle\" class=\"no-data\" fill=\"#888\">no data yet</text>\n";

  // One polyline per series (its usable points, in order), dots where asked or alone.
  for (const Series& s : spec.series) {
    std::ostringstream pts, dots;
    int64_t n = 0;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!usable(s.x[i], s.y[i])) continue;
      pts << (n ? " " : "") << num(px(s.x[i])) << "," << num(py(s.y[i]));
      dots << "<circle cx=\"" << num(px(s.x[i])) << "\" cy=\"" << num(py(s.y[i]))
           << "\" r=\"3\" fill=\"" << html_escape(s.color) << "\"/>";
      ++n;
    }
    o << "<g class=\"series\" data-series=\"" << html_escape(s.name) << "\">\n<polyline points=\""
      << pts.str() << "\" data-points=\"" << n << "\" fill=\"none\" stroke=\""
      << html_escape(s.color) << "\" stroke-width=\"1.6\" stroke-linejoin=\"round\""
      << (s.dashed ? " stroke-dasharray=\"6 3\"" : "") << "/>\n";
    if (s.markers || n == 1) o << dots.str() << "\n";
    o << "</g>\n";
  }
  for (const Entry& e : legend) {
    const double y = spec.height + e.row * 16.0 + 8;
    o << "<g class=\"legend\"><line x1=\"" << num(e.x) << "\" y1=\"" << num(y - 4) << "\" x2=\""
      << num(e.x + 22) << "\" y2=\"" << num(y - 4) << "\" stroke=\"" << html_escape(e.s->color)
      << "\" stroke-width=\"2\"" << (e.s->dashed ? " stroke-dasharray=\"6 3\"" : "")
      << "/><text x=\"" << num(e.x + 28) << "\" y=\"" << num(y) << "\" font-size=\"11\">"
      << html_escape(e.s->name) << "</text></g>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace hone::report
