// libFuzzer target: a recipe YAML through parse_recipe (the text form load_recipe uses), then
// to_yaml of what parsed, which must parse back.
#include <cstdlib>

#include "fuzz_common.h"
#include "recipes/recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(hone::fuzz::as_view(data, size));
  hone::RecipeConfig cfg;
  try {
    cfg = hone::parse_recipe(text, "recipe.yaml", "/nonexistent");
  } catch (const hone::Error& e) {
    hone::fuzz::expected(e);
    return 0;
  }
  // A recipe that parsed is written into every checkpoint and read back on resume: its YAML must
  // parse again without error.
  const hone::RecipeConfig back = hone::parse_recipe(hone::to_yaml(cfg), "resolved.yaml", "/");
  if (!(back == cfg)) std::abort();  // to_yaml promises a YAML that parses back to an equal config
  return 0;
}
