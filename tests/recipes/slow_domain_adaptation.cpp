// Domain adaptation is real: stories260K (children's stories) fine-tuned with the recipes in
// recipes/configs/domain-*.yaml lowers held-out loss on Shakespeare and on Darwin by >= 40%
// (the bar of issue 3; a PyTorch run of the same set-up goes 5.45 -> 2.81 and 4.16 -> 2.11).
// About a minute each on 2 cores: labelled slow (`make test-all` runs them).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "common.h"
#include "tmpdir.h"
#include "train_helpers.h"

namespace {

void expect_adaptation(const std::string& config, const std::string& corpus) {
  HONE_REQUIRE_SHARED(data, corpus);
  hone::test::TempDir dir;
  hone::test::Outcome r = hone::test::run_hone("train " + hone::test::repo_file(config) +
                                               " output.dir=" + dir.file("run"));
  ASSERT_EQ(r.status, 0) << r.out;
  std::istringstream lines(hone::test::slurp(dir.file("run/metrics.jsonl")));
  std::string line;
  double first = -1, last = -1;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("val_loss")) continue;
    if (first < 0) first = j["val_loss"].get<double>();
    last = j["val_loss"].get<double>();
  }
  ASSERT_GT(first, 0);
  std::cout << config << ": held-out loss " << first << " -> " << last << " ("
            << 100.0 * (1.0 - last / first) << "% lower)\n";
  EXPECT_LE(last, 0.6 * first);
}

TEST(DomainAdaptation, ShakespeareLossDropsByAtLeast40Percent) {
  expect_adaptation("recipes/configs/domain-shakespeare.yaml", "corpora/tinyshakespeare/input.txt");
}

TEST(DomainAdaptation, DarwinLossDropsByAtLeast40Percent) {
  expect_adaptation("recipes/configs/domain-darwin.yaml", "corpora/origin_of_species/pg1228.txt");
}

}  // namespace
