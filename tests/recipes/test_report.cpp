// The training report: the SVG charts (ticks, ranges, point counts, NaN and degenerate series),
// the page's escaping, report.html and run.json written by a real `hone train`, and `hone report`
// rebuilding and overlaying runs, with its errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>

#include "autograd/error.h"
#include "recipes/report/html.h"
#include "recipes/report/svg_plot.h"
#include "report_helpers.h"
#include "tmpdir.h"

namespace fs = std::filesystem;
using hone::report::PlotSpec;
using hone::report::Series;
using hone::test::count_of;
using hone::test::curve_points;
using hone::test::run_hone;
using hone::test::slurp;
using hone::test::TempDir;
using hone::test::write_bytes;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Every point of the polylines, to check they lie in the plot area.
std::vector<std::pair<double, double>> coords(const std::string& svg) {
  std::vector<std::pair<double, double>> out;
  const std::regex pair(R"((-?[0-9.]+),(-?[0-9.]+))");
  const std::string key = "points=\"";
  for (size_t at = svg.find(key); at != std::string::npos; at = svg.find(key, at + 1)) {
    const size_t from = at + key.size();
    const std::string pts = svg.substr(from, svg.find('"', from) - from);
    for (std::sregex_iterator it(pts.begin(), pts.end(), pair), end; it != end; ++it)
      out.push_back({std::stod((*it)[1]), std::stod((*it)[2])});
  }
  return out;
}

PlotSpec one_series(std::vector<double> x, std::vector<double> y) {
  PlotSpec p;
  p.title = "t";
  p.series.push_back({"s", "#000", std::move(x), std::move(y)});
  return p;
}

}  // namespace

TEST(ReportTicks, NiceTicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(hone::report::nice_ticks(0, 1, 6), (std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1}));
  EXPECT_EQ(hone::report::nice_ticks(2, 3.5, 6), (std::vector<double>{2, 2.5, 3, 3.5}));
  EXPECT_EQ(hone::report::nice_ticks(0, 300, 6), (std::vector<double>{0, 100, 200, 300}));
  EXPECT_EQ(hone::report::nice_ticks(0, 2e-3, 6),
            (std::vector<double>{0, 5e-4, 1e-3, 1.5e-3, 2e-3}));
  EXPECT_EQ(hone::report::nice_ticks(-1, 1, 3), (std::vector<double>{-1, 0, 1}));  // no -0
  EXPECT_EQ(hone::report::nice_ticks(4, 4, 6), (std::vector<double>{4}));
  EXPECT_TRUE(hone::report::nice_ticks(kNaN, 1, 6).empty());
  EXPECT_TRUE(hone::report::nice_ticks(0, INFINITY, 6).empty());
}

TEST(ReportTicks, LabelsAreShortAndTellNeighboursApart) {
  using hone::report::tick_label;
  EXPECT_EQ(tick_label(0, 0.5), "0");
  EXPECT_EQ(tick_label(0.25, 0.05), "0.25");
  EXPECT_EQ(tick_label(2.5, 0.5), "2.5");
  EXPECT_EQ(tick_label(800, 200), "800");
  EXPECT_EQ(tick_label(1500, 500), "1.5k");
  EXPECT_EQ(tick_label(15000, 5000), "15k");
  EXPECT_EQ(tick_label(2.5e6, 5e5), "2.5M");
  EXPECT_EQ(tick_label(3e-4, 1e-4), "3e-4");
  EXPECT_EQ(tick_label(1.5e-3, 5e-4), "1.5e-3");
}

TEST(ReportPlot, OnePolylinePointPerRecordInsideThePlotArea) {
  std::vector<double> x, y;
  for (int i = 1; i <= 37; ++i) x.push_back(i), y.push_back(5.0 / i);
  PlotSpec p = one_series(x, y);
  const std::string svg = hone::report::svg_plot(p);
  EXPECT_EQ(curve_points(svg).at("s"), 37);
  EXPECT_NE(svg.find("data-points=\"37\""), std::string::npos);
  // The axes cover the data: x 1..37 within [0, 40], y within the rectangle drawn.
  const double left = 64, right = p.width - 20, top = 34, bottom = p.height - 42;
  for (const auto& [cx, cy] : coords(svg)) {
    EXPECT_GE(cx, left);
    EXPECT_LE(cx, right);
    EXPECT_GE(cy, top);
    EXPECT_LE(cy, bottom);
  }
  EXPECT_NE(svg.find(">40</text>"), std::string::npos);  // the x axis ends on a round tick
  EXPECT_NE(svg.find(">5</text>"), std::string::npos);   // the y axis reaches the largest value
}

TEST(ReportPlot, NonFinitePointsAreLeftOutAndDoNotBreakTheAxes) {
  const std::string svg =
      hone::report::svg_plot(one_series({1, 2, 3, 4, 5}, {1.0, kNaN, INFINITY, 2.0, -INFINITY}));
  EXPECT_EQ(curve_points(svg).at("s"), 2);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  EXPECT_EQ(svg.find("inf"), std::string::npos);
}

TEST(ReportPlot, SinglePointConstantSeriesAndNoPointsAllDraw) {
  const std::string one = hone::report::svg_plot(one_series({3}, {0.5}));
  EXPECT_EQ(curve_points(one).at("s"), 1);
  EXPECT_EQ(count_of(one, "<circle"), 1);  // a lone point is a dot: a polyline would not show
  EXPECT_EQ(one.find("nan"), std::string::npos);

  const std::string flat = hone::report::svg_plot(one_series({1, 2, 3}, {2, 2, 2}));
  EXPECT_EQ(curve_points(flat).at("s"), 3);
  EXPECT_EQ(flat.find("nan"), std::string::npos);
  EXPECT_NE(flat.find(">2.0</text>"), std::string::npos);  // the value sits inside the y axis

  const std::string none = hone::report::svg_plot(one_series({}, {}));
  EXPECT_EQ(curve_points(none).at("s"), 0);
  EXPECT_NE(none.find("no data yet"), std::string::npos);
  EXPECT_EQ(none.find("nan"), std::string::npos);
}

TEST(ReportPlot, SecondaryAxisShowsTheScaledValues) {
  PlotSpec p = one_series({0, 100}, {1, 2});
  p.top_scale = 2048;
  p.top_label = "tokens";
  const std::string svg = hone::report::svg_plot(p);
  EXPECT_NE(svg.find("class=\"top-tick\">200k</text>"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">tokens</text>"), std::string::npos);
}

TEST(ReportPage, RecipeSamplesAndNamesAreEscaped) {
  hone::report::RunCurves r = hone::report::parse_metrics(
      "{\"step\":0,\"val_loss\":3.0}\n{\"step\":1,\"loss\":2.5,\"lr\":0.001}\n", "m.jsonl");
  r.name = "run <b>&";
  r.recipe = "data:\n  train: </pre><script>alert(1)</script>\n";
  r.info = {{"model", {{"path", "a\"b<c>"}}},
            {"samples", {{"prompt", "<i>ROMEO:"}, {"before", "x & y"}, {"after", "</pre>"}}}};
  const std::string page = hone::report::render_report({r});
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_NE(page.find("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(page.find("run &lt;b&gt;&amp;"), std::string::npos);
  EXPECT_NE(page.find("a&#34;b&lt;c&gt;"), std::string::npos);
  EXPECT_NE(page.find("&lt;i&gt;ROMEO:"), std::string::npos);
  EXPECT_NE(page.find("x &amp; y"), std::string::npos);
  // Self-contained: nothing fetched.
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org/2000/svg"));
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(page.find("src="), std::string::npos);
}

TEST(ReportPage, MetricsParsingNamesTheFileLineAndProblem) {
  using hone::report::parse_metrics;
  const auto r = parse_metrics(
      "\n{\"step\":1,\"loss\":2,\"lr\":null}\n\n{\"step\":2,\"val_loss\":1}\n", "m.jsonl");
  EXPECT_EQ(r.step.size(), 1u);
  EXPECT_TRUE(std::isnan(r.lr[0]));  // null: the value NaN was written as
  EXPECT_EQ(r.val_step, std::vector<double>{2});
  auto message = [](const std::string& text) {
    try {
      parse_metrics(text, "m.jsonl");
    } catch (const hone::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("{\"step\":1,\"loss\":2}\n{\"step\":2,\"lo"),
            "m.jsonl:2: not a JSON object (malformed line)");
  EXPECT_EQ(message("[1,2]\n"), "m.jsonl:1: not a JSON object (got [1,2])");
  EXPECT_EQ(message("{\"loss\":2}\n"), "m.jsonl:1: no numeric \"step\"");
  EXPECT_EQ(message("{\"step\":1,\"loss\":\"low\"}\n"),
            "m.jsonl:1: \"loss\" must be a number (got \"low\")");
}

// One real run shared by the tests below: 6 steps, evaluations at 0, 3 and 6.
class ReportRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    run_ = dir_->file("run");
    outcome_ = new hone::test::Outcome(hone::test::train_small_run(run_, 6, 3));
  }
  static void TearDownTestSuite() {
    delete outcome_;
    delete dir_;
  }
  void SetUp() override { ASSERT_EQ(outcome_->status, 0) << outcome_->out; }
  static TempDir* dir_;
  static std::string run_;
  static hone::test::Outcome* outcome_;
};
TempDir* ReportRun::dir_ = nullptr;
std::string ReportRun::run_;
hone::test::Outcome* ReportRun::outcome_ = nullptr;

TEST_F(ReportRun, TrainWritesAReportWithEveryRecordAndSamples) {
  const std::string page = slurp(run_ + "/report.html");
  ASSERT_FALSE(page.empty());
  const auto curves = curve_points(page);
  EXPECT_EQ(curves.at("train loss"), 6);              // logging.every 1: one record per step
  EXPECT_EQ(curves.at("held-out loss"), 3);           // steps 0, 3 and 6
  EXPECT_EQ(count_of(page, "data-points=\"6\""), 4);  // train loss, lr, grad norm, tokens/s
  // The run.json beside it: what only the training process knew.
  const nlohmann::json info = nlohmann::json::parse(slurp(run_ + "/run.json"));
  EXPECT_EQ(info["name"], "run");
  EXPECT_EQ(info["tokens_per_step"], 4 * 64);
  EXPECT_EQ(info["adapter"]["rank"], 4);
  EXPECT_GT(info["adapter"]["trainable parameters"].get<int64_t>(), 0);
  EXPECT_EQ(info["model"]["layers"], 5);
  EXPECT_FALSE(info["samples"]["prompt"].get<std::string>().empty());
  EXPECT_FALSE(info["samples"]["before"].get<std::string>().empty());
  EXPECT_FALSE(info["samples"]["after"].get<std::string>().empty());
  EXPECT_NE(info["recipe"].get<std::string>().find("rank: 4"), std::string::npos);
  EXPECT_NE(page.find("data-when=\"after\""), std::string::npos);
  EXPECT_NE(page.find("tokens seen"), std::string::npos);
  for (const auto& e : fs::directory_iterator(run_)) EXPECT_NE(e.path().extension(), ".tmp");
}

TEST_F(ReportRun, ReportRebuildsTheSamePageTrainWrote) {
  const std::string out = dir_->file("again.html");
  const auto r = run_hone("report " + run_ + " -o " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(slurp(out), slurp(run_ + "/report.html"));
}

TEST_F(ReportRun, ReportOverlaysTwoRunsOneColourEach) {
  // A second run folder written by hand: 4 records, an evaluation, no run.json.
  const std::string other = dir_->file("other");
  fs::create_directories(other);
  write_bytes(other + "/metrics.jsonl",
              "{\"step\":0,\"val_loss\":6.5}\n"
              "{\"step\":1,\"loss\":6.4,\"lr\":0.001,\"grad_norm\":1.0,\"tokens_per_s\":900}\n"
              "{\"step\":2,\"loss\":6.1,\"lr\":0.001,\"grad_norm\":0.9,\"tokens_per_s\":950}\n"
              "{\"step\":3,\"loss\":5.9,\"lr\":0.001,\"grad_norm\":0.8,\"tokens_per_s\":980}\n"
              "{\"step\":4,\"loss\":5.7,\"lr\":0.001,\"grad_norm\":0.7,\"tokens_per_s\":990}\n"
              "{\"step\":4,\"val_loss\":6.0}\n");
  write_bytes(other + "/recipe.yaml", "lora:\n  rank: 2\n");
  const std::string out = dir_->file("both.html");
  const auto r = run_hone("report " + run_ + " " + other + "/ -o " + out);
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string page = slurp(out);
  const auto curves = curve_points(page);
  // Named by the folders as given (the second has no run.json naming it).
  EXPECT_EQ(curves.at(run_ + " train loss"), 6);
  EXPECT_EQ(curves.at(run_ + " held-out loss"), 3);
  EXPECT_EQ(curves.at(other + " train loss"), 4);
  EXPECT_EQ(curves.at(other + " held-out loss"), 2);
  EXPECT_EQ(curves.at(other), 4);  // the lr, grad norm and throughput charts
  // One colour per run, the same in every chart.
  EXPECT_GE(count_of(page, "stroke=\"#1f77b4\""), 5);
  EXPECT_GE(count_of(page, "stroke=\"#d62728\""), 5);
  EXPECT_NE(page.find("rank: 2"), std::string::npos);  // the recipe.yaml beside the metrics
}

TEST_F(ReportRun, BadRunsFailClearlyAndWriteNothing) {
  const std::string out = dir_->file("bad.html");
  auto r = run_hone("report " + run_ + " " + dir_->file("missing") + " -o " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("hone: " + dir_->file("missing") + ": no such run folder"),
            std::string::npos)
      << r.out;

  const std::string empty = dir_->file("empty");
  fs::create_directories(empty);
  r = run_hone("report " + empty + " -o " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(empty + "/metrics.jsonl: not found"), std::string::npos) << r.out;

  const std::string broken = dir_->file("broken");
  fs::create_directories(broken);
  write_bytes(broken + "/metrics.jsonl", "{\"step\":1,\"loss\":2}\n{\"step\":2,\"loss\":2\n");
  r = run_hone("report " + run_ + " " + broken + " -o " + out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(broken + "/metrics.jsonl:2: not a JSON object (malformed line)"),
            std::string::npos)
      << r.out;

  write_bytes(broken + "/metrics.jsonl", "{\"step\":1,\"loss\":2}\n");
  write_bytes(broken + "/run.json", "{\"name\": ");
  r = run_hone("report " + broken);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find(broken + "/run.json: not valid JSON"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(broken + "/report.html"));

  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  r = run_hone("report");
  EXPECT_EQ(r.status, 1);
}

TEST(ReportResume, AResumedRunKeepsTheFirstSampleAndExtendsTheCurves) {
  TempDir dir;
  const std::string run = dir.file("run");
  const std::string recipe = hone::test::write_small_recipe(dir.file("r.yaml"), run, 3);
  auto r = run_hone("train " + recipe + " eval.every=2");
  ASSERT_EQ(r.status, 0) << r.out;
  const nlohmann::json first = nlohmann::json::parse(slurp(run + "/run.json"));
  r = run_hone("train " + recipe + " eval.every=2 training.max_steps=5 --resume");
  ASSERT_EQ(r.status, 0) << r.out;
  const nlohmann::json info = nlohmann::json::parse(slurp(run + "/run.json"));
  EXPECT_EQ(info["samples"]["before"], first["samples"]["before"]);
  EXPECT_FALSE(info["samples"]["after"].get<std::string>().empty());
  EXPECT_EQ(info["total_steps"], 5);
  const auto curves = curve_points(slurp(run + "/report.html"));
  EXPECT_EQ(curves.at("train loss"), 5);  // the first run's 3 records and the resumed run's 2
  // Evaluations at 0 and 2, then 4 and 5 (the checkpoint a run resumes from is saved before the
  // first run's final evaluation, so its metrics end before it).
  EXPECT_EQ(curves.at("held-out loss"), 4);
}
