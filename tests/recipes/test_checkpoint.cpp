#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "recipes/checkpoint.h"
#include "tmpdir.h"

using namespace hone;

TEST(Checkpoint, RoundTripsTensorsAndStringsBitwise) {
  test::TempDir dir;
  CheckpointData d;
  Tensor f = Tensor::empty(DType::F32, {3, 5});
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = 0.1f * static_cast<float>(i) - 0.7f;
  Tensor n = Tensor::empty(DType::I64, {2});
  n.data<int64_t>()[0] = -1;
  n.data<int64_t>()[1] = static_cast<int64_t>(0xfedcba9876543210ull);  // a u64 RNG state
  d.tensors["lora/values"] = f;
  d.tensors["optim/step"] = n;
  d.tensors["empty"] = Tensor::empty(DType::F32, {0});
  d.strings["recipe"] = "model:\n  path: x.bin\n";
  d.strings["metrics"] = std::string(200000, 'm');  // past HDF5's 64 KiB attribute limit
  d.strings["blank"] = "";
  write_checkpoint(dir.file("c.h5"), d);
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.h5.tmp")));

  CheckpointData r = read_checkpoint(dir.file("c.h5"));
  ASSERT_EQ(r.tensors.size(), 3u);
  EXPECT_EQ(r.tensors.at("lora/values").shape(), f.shape());
  for (int64_t i = 0; i < f.numel(); ++i)
    EXPECT_EQ(r.tensors.at("lora/values").data<float>()[i], f.data<float>()[i]);
  EXPECT_EQ(r.tensors.at("optim/step").data<int64_t>()[1], n.data<int64_t>()[1]);
  EXPECT_EQ(r.strings, d.strings);
}

TEST(Checkpoint, OverwriteKeepsTheOldFileUntilTheNewOneIsComplete) {
  test::TempDir dir;
  CheckpointData a;
  a.strings["which"] = "first";
  write_checkpoint(dir.file("c.h5"), a);
  CheckpointData bad;
  bad.tensors["x"] = Tensor::empty(DType::BF16, {2});  // not storable: fails mid-write
  EXPECT_THROW(write_checkpoint(dir.file("c.h5"), bad), Error);
  EXPECT_FALSE(std::filesystem::exists(dir.file("c.h5.tmp")));
  EXPECT_EQ(read_checkpoint(dir.file("c.h5")).strings.at("which"), "first");
}

TEST(Checkpoint, ErrorsNameTheFile) {
  test::TempDir dir;
  try {
    read_checkpoint(dir.file("missing.h5"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing.h5"), std::string::npos);
  }
  std::ofstream(dir.file("junk.h5")) << "not hdf5";
  try {
    read_checkpoint(dir.file("junk.h5"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.h5"), std::string::npos);
  }
  EXPECT_THROW(write_checkpoint(dir.file("no/such/dir/c.h5"), CheckpointData{}), Error);
}
