// check_finite_weights: a NaN or an infinity anywhere in a base model's weights is found and
// named, in every storage type the loaders return.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "common.h"
#include "model/io/finite_weights.h"
#include "model/io/model_files.h"
#include "tmpdir.h"

namespace hone {
namespace {

std::string error_of(const std::map<std::string, Tensor>& m) {
  try {
    check_finite_weights(m, "model.bin");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// n values of 0.5 (odd sizes reach the scan's chunk edges), converted to `dtype`.
Tensor halves(int64_t n, DType dtype) {
  return Tensor::from_f32(std::vector<float>(static_cast<size_t>(n), 0.5f), {n}).to(dtype);
}

TEST(FiniteWeights, FindsNanAndInfInEveryFloatType) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(),
                       std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  for (DType dt : {DType::F32, DType::F64, DType::BF16, DType::F16}) {
    for (int64_t n : {1, 7, 4095, 4096, 4097, 10001}) {
      for (float b : bad) {
        for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
          std::vector<float> v(static_cast<size_t>(n), 0.5f);
          v[static_cast<size_t>(at)] = b;
          std::map<std::string, Tensor> m;
          m["a.weight"] = halves(5, dt);
          m["b.weight"] = Tensor::from_f32(v, {n}).to(dt);
          m["c.weight"] = halves(n, dt);
          const std::string e = error_of(m);
          EXPECT_EQ(e.rfind("model.bin: tensor b.weight: non-finite value (", 0), 0u) << e;
          EXPECT_NE(e.find(") at element " + std::to_string(at) + " of " + std::to_string(n) +
                           "; the base model's weights are damaged"),
                    std::string::npos)
              << dtype_name(dt) << " n=" << n << " at=" << at << ": " << e;
          // Every finite value passes, including the largest and the subnormals.
          v[static_cast<size_t>(at)] = dt == DType::F16 ? 65504.0f : 3.0e38f;
          if (dt == DType::BF16 || dt == DType::F16) v[0] = 1e-40f;
          m["b.weight"] = Tensor::from_f32(v, {n}).to(dt);
          EXPECT_EQ(error_of(m), "") << dtype_name(dt) << " n=" << n << " at=" << at;
        }
      }
    }
  }
}

TEST(FiniteWeights, FindsANonFiniteBlockScaleInQuantizedTensors) {
  for (DType dt : {DType::Q8_0, DType::Q4_0}) {
    std::map<std::string, Tensor> m;
    m["q.weight"] = halves(32 * 5, dt);
    EXPECT_EQ(error_of(m), "") << dtype_name(dt);
    // Block 3's f16 scale (the first 2 bytes of each 34- or 18-byte block) becomes NaN.
    const uint16_t nan16 = 0x7e00;
    std::memcpy(static_cast<char*>(m["q.weight"].raw()) + 3 * dtype_size(dt), &nan16, 2);
    EXPECT_NE(error_of(m).find("tensor q.weight: non-finite value (nan) at element 96 of 160"),
              std::string::npos)
        << error_of(m);
  }
}

// The real thing: a NaN written into the bytes of one tensor of the tiny-llama fixture.
TEST(FiniteWeights, NamesTheDamagedTensorOfARealModel) {
  HONE_REQUIRE_SHARED(src, "fixtures/models/tiny-llama");
  test::TempDir dir;
  for (const char* f : {"config.json", "model.safetensors"})
    std::filesystem::copy_file(src + "/" + f, dir.file(f));
  EXPECT_NO_THROW(check_finite_weights(load_model_files(dir.path().string()).tensors, "x"));
  std::string bytes = test::read_bytes(dir.file("model.safetensors"));
  uint64_t header_len;
  std::memcpy(&header_len, bytes.data(), 8);
  const auto header = nlohmann::json::parse(bytes.substr(8, header_len));
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  ASSERT_EQ(header.at(name).at("dtype"), "F32");
  const uint64_t begin = header.at(name).at("data_offsets").at(0).get<uint64_t>();
  const float nan = std::nanf("");
  std::memcpy(&bytes[8 + header_len + begin + 17 * sizeof(float)], &nan, sizeof nan);
  test::write_bytes(dir.file("model.safetensors"), bytes);
  ModelFiles files = load_model_files(dir.path().string());
  EXPECT_THROW(
      {
        try {
          check_finite_weights(files.tensors, files.source);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find(files.source + ": tensor " + name +
                                               ": non-finite value (nan) at element 17"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      Error);
}

}  // namespace
}  // namespace hone
