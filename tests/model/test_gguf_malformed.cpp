// The strict GGUF reader on hand-made broken files: each gets one line "<file>: <problem>".
#include <gtest/gtest.h>

#include <string>

#include "model/io/gguf.h"
#include "tmpdir.h"

namespace hone {
namespace {

using test::TempDir;

// Little-endian byte building for hand-made files.
struct Bytes {
  std::string s;
  Bytes& u32(uint32_t v) {
    s.append(reinterpret_cast<const char*>(&v), 4);
    return *this;
  }
  Bytes& u64(uint64_t v) {
    s.append(reinterpret_cast<const char*>(&v), 8);
    return *this;
  }
  Bytes& str(const std::string& v) {
    u64(v.size());
    s += v;
    return *this;
  }
  Bytes& raw(const std::string& v) {
    s += v;
    return *this;
  }
  Bytes& pad(size_t align = 32) {
    s.append((align - s.size() % align) % align, '\0');
    return *this;
  }
};

Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
  Bytes b;
  b.raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  return b;
}

// One tensor info: name, dims (ggml order), type, offset.
void tensor_info(Bytes& b, const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                 uint64_t offset) {
  b.str(name).u32(static_cast<uint32_t>(ne.size()));
  for (uint64_t d : ne) b.u64(d);
  b.u32(type).u64(offset);
}

class Malformed : public ::testing::Test {
 protected:
  // Writes `bytes`, expects read_gguf to throw exactly one line starting "<path>: " and
  // containing `what`.
  void expect_error(const std::string& bytes, const std::string& what) {
    const std::string path = dir_.file("bad.gguf");
    test::write_bytes(path, bytes);
    try {
      read_gguf(path);
      ADD_FAILURE() << "no error; expected: " << what;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << "message: " << msg << "\nwanted: " << what;
    }
  }
  TempDir dir_;
};

TEST_F(Malformed, AValidHandMadeFileReads) {
  Bytes b = header(1, 1);
  b.str("general.architecture").u32(8).str("llama");
  tensor_info(b, "w", {4, 2}, 0, 0);
  b.pad().raw(std::string(32, '\0'));
  const std::string path = dir_.file("ok.gguf");
  test::write_bytes(path, b.s);
  GgufFile f = read_gguf(path);
  EXPECT_EQ(f.tensors.at(0).shape(), (Shape{2, 4}));
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
}

TEST_F(Malformed, BadMagic) {
  Bytes b;
  b.raw("GGML").u32(3).u64(0).u64(0);
  expect_error(b.s, "not a GGUF file (magic \"GGML\"");
  expect_error("GG", "not a GGUF file");
}

TEST_F(Malformed, Version) {
  expect_error(header(0, 0, 1).s, "GGUF version 1 is not supported");
  expect_error(header(0, 0, 4).s, "GGUF version 4 is not supported");
  expect_error(header(0, 0, 0x03000000).s, "big-endian");
}

TEST_F(Malformed, TruncatedHeader) {
  expect_error(std::string("GGUF\x03\0\0\0", 8), "tensor count at byte 8 needs 8 bytes");
}

TEST_F(Malformed, HugeTensorCount) {
  expect_error(header(1ull << 60, 0).s, "tensor count 1152921504606846976 is impossible");
  expect_error(header(UINT64_MAX, 0).s, "tensor count");
}

TEST_F(Malformed, HugeKvCount) {
  expect_error(header(0, 1ull << 62).s, "metadata key/value count 4611686018427387904");
}

TEST_F(Malformed, StringLengthPastTheEnd) {
  Bytes b = header(0, 1);
  b.u64(1000).raw("general.name");
  expect_error(b.s, "string length 1000 runs past the end of the file");
  Bytes v = header(0, 1);
  v.str("general.name").u32(8).u64(UINT64_MAX).raw("x");
  expect_error(v.s, "key \"general.name\" at byte 48: string length 18446744073709551615");
}

TEST_F(Malformed, ArrayLengthPastTheEnd) {
  Bytes b = header(0, 1);
  b.str("tokenizer.ggml.scores").u32(9).u32(6).u64(1ull << 40).raw(std::string(16, '\0'));
  expect_error(b.s, "array length 1099511627776 of FLOAT32 runs past the end");
  Bytes s = header(0, 1);
  s.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(3).str("a").str("b");
  expect_error(s.s, "array length 3 of STRING runs past the end");
}

TEST_F(Malformed, UnknownValueTypes) {
  Bytes b = header(0, 1);
  b.str("k").u32(13).u32(0);
  expect_error(b.s, "key \"k\": unknown value type 13");
  Bytes a = header(0, 1);
  a.str("k").u32(9).u32(77).u64(0);
  expect_error(a.s, "key \"k\": unknown array element type 77");
  Bytes c = header(0, 1);
  c.str("k").u32(7).raw("\x02");
  expect_error(c.s, "bool value 2");
}

TEST_F(Malformed, DuplicateKeyAndBadAlignment) {
  Bytes b = header(0, 2);
  b.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
  expect_error(b.s, "duplicate metadata key \"k\"");
  Bytes a = header(0, 1);
  a.str("general.alignment").u32(4).u32(24);
  expect_error(a.s, "general.alignment 24 is not a power of two");
}

TEST_F(Malformed, TensorOffsetPastTheEnd) {
  Bytes b = header(1, 0);
  tensor_info(b, "w", {8}, 0, 64);
  b.pad().raw(std::string(32, '\0'));
  expect_error(b.s,
               "tensor \"w\": data [64, +32) runs past the end of the data section (32 bytes)");
  Bytes h = header(1, 0);
  tensor_info(h, "w", {8}, 0, UINT64_MAX - 31);
  h.pad().raw(std::string(32, '\0'));
  expect_error(h.s, "runs past the end of the data section");
}

TEST_F(Malformed, MisalignedOffset) {
  Bytes b = header(1, 0);
  tensor_info(b, "w", {4}, 0, 4);
  b.pad().raw(std::string(64, '\0'));
  expect_error(b.s, "tensor \"w\": offset 4 is not a multiple of the alignment 32");
}

TEST_F(Malformed, DimsProductOverflow) {
  Bytes b = header(1, 0);
  tensor_info(b, "w", {1ull << 40, 1ull << 40}, 0, 0);
  b.pad();
  expect_error(b.s, "tensor \"w\": dims [1099511627776, 1099511627776]... overflow");
  Bytes z = header(1, 0);
  tensor_info(z, "w", {4, 0}, 0, 0);
  expect_error(z.s, "dimension 1 is 0");
  Bytes d = header(1, 0);
  tensor_info(d, "w", {1, 1, 1, 1, 1}, 0, 0);
  expect_error(d.s, "5 dimensions (must be 1 to 4)");
  // Elements fit int64 but bytes do not (F64: 8 bytes each).
  Bytes y = header(1, 0);
  tensor_info(y, "w", {1ull << 31, 1ull << 31}, 28, 0);
  expect_error(y.s, "overflow the byte size");
}

TEST_F(Malformed, UnknownAndBlockMisfitTypes) {
  Bytes b = header(1, 0);
  tensor_info(b, "w", {4}, 99, 0);
  expect_error(b.s, "tensor \"w\": unknown ggml type 99");
  Bytes r = header(1, 0);
  tensor_info(r, "w", {4}, 4, 0);  // 4 was Q4_2, removed from ggml
  expect_error(r.s, "unknown ggml type 4");
  Bytes q = header(1, 0);
  tensor_info(q, "w", {48}, 8, 0);
  expect_error(q.s, "ne[0] = 48 is not a multiple of Q8_0's block size 32");
}

TEST_F(Malformed, OverlapAndDuplicateTensors) {
  Bytes b = header(2, 0);
  tensor_info(b, "a", {16}, 0, 0);
  tensor_info(b, "b", {16}, 0, 32);
  b.pad().raw(std::string(128, '\0'));
  expect_error(b.s, "tensors \"a\" and \"b\" overlap");
  Bytes d = header(2, 0);
  tensor_info(d, "a", {4}, 0, 0);
  tensor_info(d, "a", {4}, 0, 32);
  d.pad().raw(std::string(64, '\0'));
  expect_error(d.s, "duplicate tensor name \"a\"");
}

TEST_F(Malformed, UnsupportedTypeIsNamedOnConversion) {
  Bytes b = header(1, 0);
  tensor_info(b, "w", {256}, 12, 0);  // Q4_K: 144 bytes per 256
  b.pad().raw(std::string(160, '\0'));
  const std::string path = dir_.file("q4k.gguf");
  test::write_bytes(path, b.s);
  GgufFile f = read_gguf(path);  // structurally valid
  EXPECT_EQ(f.tensors[0].nbytes, 144u);
  try {
    gguf_tensor(f, f.tensors[0]);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              path +
                  ": tensor \"w\": type Q4_K is not supported yet (supported: F32, F16, BF16, "
                  "Q8_0, Q4_0)");
  }
}

}  // namespace
}  // namespace hone
