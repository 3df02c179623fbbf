// A compact, memory-mapped token store: the ids of a tokenized corpus file as uint16 (vocabulary
// up to 65536) or uint32, behind a header that records how they were made. Cached beside the
// corpus and reused across runs; a store whose header, key or checksum does not match is rebuilt.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hone {

// Bumped whenever the file layout or the way a corpus is cut and tokenized changes, so older
// stores are rebuilt instead of trusted.
inline constexpr uint32_t kTokenStoreVersion = 1;

// A 64-bit hash over bytes fed in any number of pieces (the same value however they are cut).
class Hash64 {
 public:
  void update(std::string_view bytes);
  uint64_t digest() const;

 private:
  uint64_t h_ = 0x9E3779B97F4A7C15ull;
  uint64_t carry_ = 0;
  int carry_n_ = 0;
  uint64_t total_ = 0;
};

std::string hex64(uint64_t v);

// Hash of a file's bytes. Throws hone::Error naming the file when it cannot be read.
uint64_t hash_file(const std::string& path);

// Read-only token ids: a mapped store file (or an unlinked temporary one).
class TokenStore {
 public:
  ~TokenStore();
  TokenStore(const TokenStore&) = delete;
  TokenStore& operator=(const TokenStore&) = delete;

  // Maps `path` and checks it against `key` (the text a builder wrote). Returns null when the
  // file is absent, is not a token store of this version, has another key, or fails its
  // checksum (the caller rebuilds); throws only on errors reading a valid-looking file.
  static std::shared_ptr<const TokenStore> open(const std::string& path, const std::string& key);

  int64_t size() const { return count_; }
  int width() const { return width_; }  // bytes per id: 2 or 4
  int64_t mapped_bytes() const { return static_cast<int64_t>(map_len_); }
  int32_t operator[](int64_t i) const {
    return width_ == 2 ? static_cast<const uint16_t*>(ids_)[i]
                       : static_cast<int32_t>(static_cast<const uint32_t*>(ids_)[i]);
  }
  const std::string& path() const { return path_; }

 private:
  friend class TokenStoreWriter;
  TokenStore() = default;

  std::string path_;
  void* map_ = nullptr;
  size_t map_len_ = 0;
  const void* ids_ = nullptr;
  int64_t count_ = 0;
  int width_ = 4;
};

// Writes a store: ids are appended in chunks, then `finish` makes the file (atomically: a
// temporary beside `path`, fsynced and renamed over it) and maps it. With an empty `path` the
// store lives in an unlinked temporary file under `tmp_dir` ($TMPDIR or /tmp when empty).
class TokenStoreWriter {
 public:
  TokenStoreWriter(std::string path, std::string key, int32_t vocab_size,
                   const std::string& tmp_dir = "");
  ~TokenStoreWriter();
  TokenStoreWriter(const TokenStoreWriter&) = delete;
  TokenStoreWriter& operator=(const TokenStoreWriter&) = delete;

  // Throws hone::Error when an id is outside [0, vocab_size).
  void append(const int32_t* ids, size_t n);
  std::shared_ptr<const TokenStore> finish();

  const std::string& temp_path() const { return tmp_; }

 private:
  void flush();
  void write_all(const void* data, size_t n, uint64_t offset);

  std::string path_, key_, tmp_;
  int fd_ = -1;
  int width_;
  int32_t vocab_;
  uint64_t payload_offset_ = 0;
  uint64_t written_ = 0;  // ids written
  std::vector<unsigned char> buf_;
  Hash64 hash_;
};

// The byte size of a store of `tokens` ids for a vocabulary of `vocab_size` (header and key
// included), for the memory planner.
int64_t token_store_bytes(int64_t tokens, int32_t vocab_size, size_t key_bytes = 512);

// The ids and key a store at `path` holds, without checking them; {-1, ""} when it is not a
// token store. For the planner, which reuses an existing store's count.
struct TokenStoreInfo {
  int64_t tokens = -1;
  std::string key;
};
TokenStoreInfo peek_token_store(const std::string& path);

}  // namespace hone
