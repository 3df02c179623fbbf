// The report in a real browser (ctest label "browser"): headless Chromium renders the report.html
// of a real training run through scripts/report-screenshot.sh (the script that makes the README's
// docs/report.png); the DOM it built holds every curve with every point, its console stayed
// silent, and the screenshot is a real image. Skips where no Chromium is installed.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <sstream>

#include "report_helpers.h"
#include "tmpdir.h"

namespace fs = std::filesystem;
using hone::test::count_of;
using hone::test::curve_points;
using hone::test::slurp;
using hone::test::TempDir;

namespace {

uint32_t big_endian(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<unsigned char>(s[at + i]);
  return v;
}

}  // namespace

TEST(ReportBrowser, ChromiumDrawsEveryCurveWithoutConsoleErrors) {
  TempDir dir;
  const std::string run = dir.file("run");
  const auto trained = hone::test::train_small_run(run, 6, 3);
  ASSERT_EQ(trained.status, 0) << trained.out;

  const std::string png = dir.file("report.png"), dom = dir.file("dom.html"),
                    log = dir.file("chromium.log");
  const auto shot =
      hone::test::run_command("bash " + hone::test::repo_file("scripts/report-screenshot.sh") +
                              " " + run + "/report.html " + png + " " + dom + " " + log + " 2>&1");
  if (shot.status == 77) GTEST_SKIP() << "no chromium installed (make browser-deps): " << shot.out;
  ASSERT_EQ(shot.status, 0) << shot.out << slurp(log);

  // The DOM after rendering: the five charts' curves, each with all its points.
  const std::string page = slurp(dom);
  ASSERT_NE(page.find("hone training report"), std::string::npos) << page.substr(0, 2000);
  const auto curves = curve_points(page);
  EXPECT_EQ(curves.at("train loss"), 6);
  EXPECT_EQ(curves.at("held-out loss"), 3);
  EXPECT_EQ(count_of(page, "<polyline"), 5);  // loss: train + held-out; lr; grad norm; tokens/s
  EXPECT_EQ(count_of(page, "<svg"), 4);
  EXPECT_NE(page.find("data-when=\"after\""), std::string::npos);

  // Nothing said on the console: no script error, no resource refused or missing.
  std::istringstream lines(slurp(log));
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.find(":CONSOLE"), std::string::npos) << line;
    EXPECT_EQ(line.find("Uncaught"), std::string::npos) << line;
  }

  // A PNG of the window's size, with content: a blank 1280x2000 page compresses to ~10 KB.
  const std::string image = slurp(png);
  ASSERT_GT(image.size(), 33u);
  EXPECT_EQ(image.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(image.substr(12, 4), "IHDR");
  EXPECT_EQ(big_endian(image, 16), 1280u);
  EXPECT_EQ(big_endian(image, 20), 2000u);
  EXPECT_GT(image.size(), 40u * 1024) << "the screenshot looks blank";
}
