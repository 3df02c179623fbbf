#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "recipes/checkpoint.h"
#include "recipes/checksum.h"
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

// A write that fails says why, in the OS's words (it was "cannot create HDF5 file", no cause).
TEST(Checkpoint, WriteErrorsGiveTheOsReason) {
  test::TempDir dir;
  std::ofstream(dir.file("a-file")) << "x";
  const std::string path = dir.file("a-file/c.h5");  // its parent is a regular file
  try {
    write_checkpoint(path, CheckpointData{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Not a directory"), std::string::npos) << e.what();
  }
}

// checksum64's promise: any single flipped bit changes it, wherever it lands (stripes and tail),
// and so do the length and the seed.
TEST(Checksum, EverySingleBitFlipChangesTheChecksum) {
  std::string bytes(103, '\0');  // three 32-byte stripes and a 7-byte tail
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 37 + 11);
  const uint64_t want = checksum64(bytes);
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int b = 0; b < 8; ++b) {
      std::string c = bytes;
      c[i] = static_cast<char>(c[i] ^ (1 << b));
      EXPECT_NE(checksum64(c), want) << "byte " << i << " bit " << b;
    }
  }
  EXPECT_NE(checksum64(bytes + std::string(1, '\0')), want);  // a zero pad is not the same
  EXPECT_NE(checksum64(bytes, 1), want);
  EXPECT_EQ(checksum64(bytes), want);  // and it is a function of its input
}
