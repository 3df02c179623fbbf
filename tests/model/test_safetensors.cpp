// safetensors writer/reader round trip, and sharded checkpoints with an index.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/io/safetensors.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;

Tensor pattern(DType t, Shape shape, uint32_t seed) {
  Tensor x = Tensor::empty(t, std::move(shape));
  auto* p = static_cast<uint8_t*>(x.raw());
  uint32_t s = seed;
  for (size_t i = 0; i < x.nbytes(); ++i) {
    s = s * 1664525u + 1013904223u;
    p[i] = static_cast<uint8_t>(s >> 24);
  }
  return x;
}

void expect_bitwise_equal(const Tensor& a, const Tensor& b, const std::string& name) {
  ASSERT_EQ(a.dtype(), b.dtype()) << name;
  ASSERT_EQ(a.shape(), b.shape()) << name;
  EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.nbytes()), 0) << name << " differs";
}

TEST(Safetensors, RoundTripIsBitwise) {
  TempDir dir;
  std::map<std::string, Tensor> ts;
  ts["w.f32"] = pattern(DType::F32, {3, 5}, 1);
  ts["w.bf16"] = pattern(DType::BF16, {7}, 2);
  ts["w.f16"] = pattern(DType::F16, {2, 3, 1}, 3);
  ts["ids.i32"] = pattern(DType::I32, {5}, 4);
  ts["ids.i64"] = pattern(DType::I64, {1, 3}, 5);
  ts["scalar"] = pattern(DType::F32, {}, 6);
  ts["empty"] = Tensor::empty(DType::F32, {0, 4});
  const std::string path = dir.file("rt.safetensors");
  write_safetensors(path, ts, {{"format", "pt"}, {"note", "quote \" and ü"}});
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));

  // The header length is a multiple of 8 so every tensor starts aligned.
  std::string bytes = test::read_bytes(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8], '{');

  SafetensorsFile f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (const auto& [name, t] : ts) expect_bitwise_equal(f.tensors.at(name), t, name);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.metadata.at("note"), "quote \" and ü");
  EXPECT_EQ(f.files, std::vector<std::string>{path});
  // Memory-mapped tensors are aligned for their type.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.tensors.at("w.f32").raw()) % 4, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.tensors.at("ids.i64").raw()) % 8, 0u);
}

TEST(Safetensors, TensorsOutliveTheFileObjectAndAreCopyOnWrite) {
  TempDir dir;
  const std::string path = dir.file("cow.safetensors");
  write_safetensors(path, {{"x", Tensor::from_f32({1, 2, 3, 4}, {4})}});
  Tensor x;
  { x = read_safetensors(path).tensors.at("x"); }
  EXPECT_EQ(x.item(3), 4.0);
  x.data<float>()[0] = 42.0f;  // private mapping: the file keeps its bytes
  EXPECT_EQ(read_safetensors(path).tensors.at("x").item(0), 1.0);
}

TEST(Safetensors, OverwriteReplacesAtomically) {
  TempDir dir;
  const std::string path = dir.file("o.safetensors");
  write_safetensors(path, {{"a", Tensor::from_f32({1}, {1})}});
  write_safetensors(path, {{"b", Tensor::from_f32({2, 3}, {2})}});
  SafetensorsFile f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors.at("b").item(1), 3.0);
}

TEST(Safetensors, WriterErrorsNameThePath) {
  TempDir dir;
  const std::string path = dir.file("no_such_dir/x.safetensors");
  try {
    write_safetensors(path, {{"a", Tensor::from_f32({1}, {1})}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ".tmp"), std::string::npos) << e.what();
  }
  EXPECT_THROW(write_safetensors(dir.file("y.safetensors"), {{"a", Tensor()}}), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("y.safetensors.tmp")));
}

// Two shards and an index, as transformers writes them.
void write_sharded(const TempDir& dir, const std::map<std::string, Tensor>& a,
                   const std::map<std::string, Tensor>& b, const nlohmann::json& weight_map) {
  write_safetensors(dir.file("model-00001-of-00002.safetensors"), a, {{"format", "pt"}});
  write_safetensors(dir.file("model-00002-of-00002.safetensors"), b, {{"format", "pt"}});
  nlohmann::json idx = {{"metadata", {{"total_size", 123}}}, {"weight_map", weight_map}};
  test::write_bytes(dir.file("model.safetensors.index.json"), idx.dump(1));
}

TEST(Safetensors, ShardedLoad) {
  TempDir dir;
  std::map<std::string, Tensor> a = {{"x", pattern(DType::F32, {2, 2}, 7)},
                                     {"y", pattern(DType::BF16, {3}, 8)}};
  std::map<std::string, Tensor> b = {{"z", pattern(DType::F32, {5}, 9)}};
  write_sharded(dir, a, b,
                {{"x", "model-00001-of-00002.safetensors"},
                 {"y", "model-00001-of-00002.safetensors"},
                 {"z", "model-00002-of-00002.safetensors"}});
  SafetensorsFile f = read_safetensors_index(dir.file("model.safetensors.index.json"));
  ASSERT_EQ(f.tensors.size(), 3u);
  expect_bitwise_equal(f.tensors.at("x"), a.at("x"), "x");
  expect_bitwise_equal(f.tensors.at("y"), a.at("y"), "y");
  expect_bitwise_equal(f.tensors.at("z"), b.at("z"), "z");
  EXPECT_EQ(f.metadata.at("format"), "pt");
  EXPECT_EQ(f.files.size(), 2u);
}

std::string index_error(const TempDir& dir) {
  const std::string idx = dir.file("model.safetensors.index.json");
  try {
    read_safetensors_index(idx);
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(idx), std::string::npos) << "does not name the index: " << m;
    return m;
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Safetensors, ShardedErrors) {
  TempDir dir;
  std::map<std::string, Tensor> a = {{"x", pattern(DType::F32, {2}, 1)}};
  std::map<std::string, Tensor> b = {{"z", pattern(DType::F32, {2}, 2)}};
  // A mapped tensor that is not in its shard.
  write_sharded(
      dir, a, b,
      {{"x", "model-00001-of-00002.safetensors"}, {"z", "model-00001-of-00002.safetensors"}});
  EXPECT_NE(index_error(dir).find("tensor \"z\" is mapped to \"model-00001-of-00002.safetensors\""),
            std::string::npos);
  // A shard file that does not exist.
  write_sharded(dir, a, b, {{"x", "model-00003-of-00002.safetensors"}});
  EXPECT_NE(index_error(dir).find("no such file"), std::string::npos);
  // A shard path escaping the folder.
  write_sharded(dir, a, b, {{"x", "../model-00001-of-00002.safetensors"}});
  EXPECT_NE(index_error(dir).find("inside the index's folder"), std::string::npos);
  // No weight_map, and invalid JSON.
  test::write_bytes(dir.file("model.safetensors.index.json"), "{\"metadata\":{}}");
  EXPECT_NE(index_error(dir).find("missing field \"weight_map\""), std::string::npos);
  test::write_bytes(dir.file("model.safetensors.index.json"), "{\"weight_map\":");
  EXPECT_NE(index_error(dir).find("invalid JSON"), std::string::npos);
  test::write_bytes(dir.file("model.safetensors.index.json"),
                    "{\"weight_map\":" + std::string(200000, '[') + std::string(200000, ']') + "}");
  EXPECT_NE(
      index_error(dir).find("model.safetensors.index.json: JSON nested deeper than 512 levels"),
      std::string::npos)
      << index_error(dir);
}

}  // namespace
}  // namespace hone
