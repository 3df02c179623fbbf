// Every malformed-header case of the safetensors spec gives a one-line Error naming the file and
// the problem. Also built into test_io_asan, so these error paths run under ASan + UBSan.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "model/io/safetensors.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;

// Raw file: u64 header length (the real one unless overridden), header, data bytes.
std::string raw(const std::string& header, const std::string& data = "", uint64_t len = 0) {
  uint64_t n = len == 0 ? header.size() : len;
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s + header + data;
}

// Loads `bytes` as a safetensors file and returns the error message (fails if none).
std::string error_for(const TempDir& dir, const std::string& bytes) {
  const std::string path = dir.file("bad.safetensors");
  test::write_bytes(path, bytes);
  try {
    read_safetensors(path);
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "no error for a malformed file";
  return "";
}

#define EXPECT_ERROR(bytes, problem)                                                              \
  do {                                                                                            \
    std::string m_ = error_for(dir, bytes);                                                       \
    EXPECT_NE(m_.find(problem), std::string::npos) << "got: " << m_ << "\nwanted: " << (problem); \
  } while (0)

const std::string k8 = std::string(8, '\x01');  // 8 data bytes: two f32 values

TEST(SafetensorsMalformed, TooShort) {
  TempDir dir;
  EXPECT_ERROR(std::string("\x05\x00\x00", 3), "too short");
  EXPECT_ERROR(std::string(), "0 bytes");
}

TEST(SafetensorsMalformed, HeaderLengthBeyondFile) {
  TempDir dir;
  EXPECT_ERROR(raw("{}", "", 912), "header length 912 exceeds the file size 10");
  EXPECT_ERROR(raw("{}", "", UINT64_MAX - 1), "exceeds the file size");
}

TEST(SafetensorsMalformed, HeaderLengthBeyondCap) {
  TempDir dir;
  const std::string path = dir.file("huge.safetensors");
  test::write_bytes(path, raw("{}", "", 200'000'000));
  std::filesystem::resize_file(path, 200'000'100);  // sparse: cheap on disk
  try {
    read_safetensors(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the limit"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsMalformed, NotJson) {
  TempDir dir;
  EXPECT_ERROR(raw("{abc"), "header: invalid JSON: ");
  EXPECT_ERROR(raw("[1, 2]"), "does not start with '{'");
  EXPECT_ERROR(raw("PK\x03\x04 zip"), "does not start with '{'");
  EXPECT_ERROR(raw(""), "header is empty");
  EXPECT_ERROR(raw("{}  x"), "header: invalid JSON");  // padding must be spaces
  EXPECT_ERROR(raw("{\"a\xff\":1}"), "not valid UTF-8");
  EXPECT_ERROR(raw("{\"\xc0\xaf\":1}"), "not valid UTF-8");  // overlong '/'
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]} // c}", k8),
               "header: invalid JSON");
}

// 200,000 levels of arrays overflowed the stack (SIGSEGV) when the error message rendered the
// value; the parse now stops at 512 levels.
TEST(SafetensorsMalformed, DeepNesting) {
  TempDir dir;
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  EXPECT_ERROR(raw("{\"t\":" + deep + "}"), "header: JSON nested deeper than 512 levels");
  EXPECT_ERROR(raw("{\"__metadata__\":{\"a\":" + deep + "}}"),
               "header: JSON nested deeper than 512 levels");
  // 512 levels are fine as JSON (and then rejected as a tensor entry).
  const std::string d512 = "{\"t\":" + std::string(511, '[') + std::string(511, ']') + "}";
  EXPECT_ERROR(raw(d512), "tensor \"t\": expected an object");
}

TEST(SafetensorsMalformed, EntryFields) {
  TempDir dir;
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", k8),
               "tensor \"t\": missing field \"shape\"");
  EXPECT_ERROR(raw("{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}", k8),
               "missing field \"dtype\"");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", k8),
               "missing field \"data_offsets\"");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", k8),
               "unexpected field \"x\"");
  EXPECT_ERROR(raw("{\"t\":[1]}", k8), "tensor \"t\": expected an object");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", k8),
               "shape: expected an array");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", k8),
               "shape: -2 is negative");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", k8),
               "shape: expected a non-negative integer, got 2.5");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", k8),
               "data_offsets: expected [begin, end]");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", k8),
               "data_offsets: expected a non-negative integer");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", k8),
               "dtype: expected a string");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                   "\"data_offsets\":[0,8]}}",
                   k8),
               "too large");
}

TEST(SafetensorsMalformed, Metadata) {
  TempDir dir;
  EXPECT_ERROR(raw("{\"__metadata__\":{\"format\":1}}"),
               "__metadata__: \"format\": expected a string");
  EXPECT_ERROR(raw("{\"__metadata__\":[]}"), "__metadata__: expected an object");
}

TEST(SafetensorsMalformed, BadDtype) {
  TempDir dir;
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", k8),
               "tensor \"t\": unknown dtype \"Q7\"");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}", k8),
               "dtype I8 is not supported");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", k8),
               "unknown dtype \"f32\"");
}

TEST(SafetensorsMalformed, OffsetsOutOfRange) {
  TempDir dir;
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", k8),
               "data_offsets [0, 16] out of range of the data buffer (8 bytes)");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", k8),
               "end is before begin");
}

TEST(SafetensorsMalformed, SizeMismatch) {
  TempDir dir;
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", k8),
               "span 8 bytes but shape [3] of F32 needs 12 bytes");
  EXPECT_ERROR(raw("{\"t\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", k8),
               "needs 4 bytes");
}

TEST(SafetensorsMalformed, OverlapAndHoles) {
  TempDir dir;
  EXPECT_ERROR(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   k8),
               "tensors \"a\" and \"b\" overlap");
  EXPECT_ERROR(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                   k8),
               "overlap");
  EXPECT_ERROR(raw("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", k8),
               "bytes 0 to 4 of the data buffer are not covered");
  EXPECT_ERROR(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                   k8 + "1234"),
               "bytes 4 to 8 of the data buffer are not covered");
  EXPECT_ERROR(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", k8),
               "data buffer is 8 bytes but the tensors cover 4");
  EXPECT_ERROR(raw("{}", k8), "data buffer is 8 bytes but the tensors cover 0");
}

TEST(SafetensorsMalformed, DuplicateKeys) {
  TempDir dir;
  EXPECT_ERROR(raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                   k8),
               "duplicate key \"a\"");
  EXPECT_ERROR(raw("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],"
                   "\"data_offsets\":[0,8]}}",
                   k8),
               "duplicate key \"dtype\"");
}

TEST(SafetensorsMalformed, WellFormedEdgeCasesLoad) {
  TempDir dir;
  const std::string path = dir.file("ok.safetensors");
  // Trailing-space padding, an empty tensor, and a header length that leaves f32 data at an odd
  // address (must be copied, not read misaligned).
  float v[2] = {1.5f, -2.25f};
  std::string data(reinterpret_cast<const char*>(v), 8);
  std::string header =
      "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
      "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} ";
  while (header.size() % 4 != 1) header += ' ';
  test::write_bytes(path, raw(header, data));
  SafetensorsFile f = read_safetensors(path);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors.at("e").numel(), 0);
  EXPECT_EQ(f.tensors.at("e").shape(), (Shape{0, 3}));
  EXPECT_EQ(f.tensors.at("t").item(0), 1.5);
  EXPECT_EQ(f.tensors.at("t").item(1), -2.25);
  // Empty header object with no data is a valid (empty) file.
  test::write_bytes(path, raw("{}"));
  EXPECT_TRUE(read_safetensors(path).tensors.empty());
}

TEST(SafetensorsMalformed, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("nope.safetensors");
  try {
    read_safetensors(path);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": No such file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hone
