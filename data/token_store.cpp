#include "data/token_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>

#include "autograd/error.h"

namespace hone {

namespace {

constexpr char kMagic[8] = {'H', 'O', 'N', 'E', 'T', 'O', 'K', 'S'};
constexpr uint32_t kEndian = 0x01020304;
constexpr uint64_t kHeaderBytes = 64;

// The fixed part at the start of a store; the key text follows it, the ids start at
// payload_offset (a multiple of 64).
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t width;
  uint64_t count;
  uint64_t payload_hash;
  uint64_t payload_offset;
  uint32_t key_len;
  uint32_t endian;
  unsigned char pad[16];
};
static_assert(sizeof(Header) == kHeaderBytes);

uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}
uint64_t fmix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

std::string os_reason() {
  return std::strerror(errno);
}

uint64_t align64(uint64_t n) {
  return (n + 63) / 64 * 64;
}

}  // namespace

void Hash64::update(std::string_view s) {
  total_ += s.size();
  auto mix = [&](uint64_t w) {
    h_ ^= rotl(w * 0x87c37b91114253d5ull, 31) * 0x4cf5ad432745937full;
    h_ = rotl(h_, 27) * 5 + 0x52dce729;
  };
  size_t i = 0;
  while (carry_n_ > 0 && carry_n_ < 8 && i < s.size()) {
    carry_ |= static_cast<uint64_t>(static_cast<unsigned char>(s[i++])) << (8 * carry_n_++);
    if (carry_n_ == 8) {
      mix(carry_);
      carry_ = 0;
      carry_n_ = 0;
    }
  }
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);  // little-endian hosts only (x86-64, arm64)
    mix(w);
  }
  for (; i < s.size(); ++i)
    carry_ |= static_cast<uint64_t>(static_cast<unsigned char>(s[i])) << (8 * carry_n_++);
}

uint64_t Hash64::digest() const {
  uint64_t h = h_;
  if (carry_n_ > 0) h ^= rotl(carry_ * 0x87c37b91114253d5ull, 31) * 0x4cf5ad432745937full;
  return fmix(h ^ total_);
}

std::string hex64(uint64_t v) {
  static const char* d = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = d[v & 15];
  return s;
}

uint64_t hash_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open file for reading (" + os_reason() + ")");
  Hash64 h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = os_reason();
      ::close(fd);
      throw Error(path + ": read error (" + why + ")");
    }
    if (n == 0) break;
    h.update(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  ::close(fd);
  return h.digest();
}

TokenStore::~TokenStore() {
  if (map_ != nullptr) ::munmap(map_, map_len_);
}

namespace {

struct Mapped {
  void* map = nullptr;
  size_t len = 0;
  Header h{};
};

// Null map when the file is not a well-formed store (too short, wrong magic/version/width/size).
Mapped map_checked(int fd, const std::string& path) {
  Mapped m;
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw Error(path + ": cannot stat (" + os_reason() + ")");
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < kHeaderBytes) return m;
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw Error(path + ": cannot map token store (" + os_reason() + ")");
  std::memcpy(&m.h, p, sizeof(Header));
  const Header& h = m.h;
  const bool ok = std::memcmp(h.magic, kMagic, 8) == 0 && h.version == kTokenStoreVersion &&
                  h.endian == kEndian && (h.width == 2 || h.width == 4) &&
                  h.payload_offset == align64(kHeaderBytes + h.key_len) &&
                  h.count <= (size - std::min(size, h.payload_offset)) / h.width &&
                  h.payload_offset + h.count * h.width == size;
  if (!ok) {
    ::munmap(p, size);
    return m;
  }
  m.map = p;
  m.len = size;
  return m;
}

}  // namespace

std::shared_ptr<const TokenStore> TokenStore::open(const std::string& path,
                                                   const std::string& key) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  Mapped m;
  try {
    m = map_checked(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);  // the mapping keeps the file
  if (m.map == nullptr) return nullptr;
  const char* base = static_cast<const char*>(m.map);
  const std::string_view stored_key(base + kHeaderBytes, m.h.key_len);
  Hash64 h;
  if (stored_key == key) {
    h.update(std::string_view(base + m.h.payload_offset, m.h.count * m.h.width));
  }
  if (stored_key != key || h.digest() != m.h.payload_hash) {
    ::munmap(m.map, m.len);
    return nullptr;
  }
  std::shared_ptr<TokenStore> s(new TokenStore());
  s->path_ = path;
  s->map_ = m.map;
  s->map_len_ = m.len;
  s->ids_ = base + m.h.payload_offset;
  s->count_ = static_cast<int64_t>(m.h.count);
  s->width_ = static_cast<int>(m.h.width);
  return s;
}

TokenStoreInfo peek_token_store(const std::string& path) {
  TokenStoreInfo info;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return info;
  Mapped m;
  try {
    m = map_checked(fd, path);
  } catch (const Error&) {
    m = Mapped{};
  }
  ::close(fd);
  if (m.map == nullptr) return info;
  info.tokens = static_cast<int64_t>(m.h.count);
  info.key.assign(static_cast<const char*>(m.map) + kHeaderBytes, m.h.key_len);
  ::munmap(m.map, m.len);
  return info;
}

int64_t token_store_bytes(int64_t tokens, int32_t vocab_size, size_t key_bytes) {
  const int64_t width = vocab_size <= 65536 ? 2 : 4;
  return static_cast<int64_t>(align64(kHeaderBytes + key_bytes)) + tokens * width;
}

TokenStoreWriter::TokenStoreWriter(std::string path, std::string key, int32_t vocab_size,
                                   const std::string& tmp_dir)
    : path_(std::move(path)),
      key_(std::move(key)),
      width_(vocab_size <= 65536 ? 2 : 4),
      vocab_(vocab_size) {
  if (vocab_size <= 0) throw Error("token store: vocabulary size must be > 0");
  std::string dir = tmp_dir;
  if (dir.empty()) {
    const char* env = std::getenv("TMPDIR");
    dir = env != nullptr && *env != '\0' ? env : "/tmp";
  }
  std::string tmpl = path_.empty() ? dir + "/hone-tokens-XXXXXX" : path_ + ".tmp.XXXXXX";
  fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd_ < 0) {
    throw Error(tmpl.substr(0, tmpl.size() - 7) + ": cannot create token store (" + os_reason() +
                ")");
  }
  tmp_ = tmpl;
  ::fchmod(fd_, 0644);  // mkstemp makes it 0600; a cache is for every user of the corpus
  if (path_.empty()) ::unlink(tmp_.c_str());  // anonymous: gone when unmapped
  payload_offset_ = align64(kHeaderBytes + key_.size());
  buf_.reserve(1 << 20);
}

TokenStoreWriter::~TokenStoreWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    if (!path_.empty()) ::unlink(tmp_.c_str());
  }
}

void TokenStoreWriter::write_all(const void* data, size_t n, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Error(tmp_ + ": cannot write token store (" + os_reason() + ")");
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void TokenStoreWriter::flush() {
  if (buf_.empty()) return;
  const uint64_t n = buf_.size() / static_cast<size_t>(width_);
  write_all(buf_.data(), buf_.size(), payload_offset_ + (written_ - n) * width_);
  hash_.update(std::string_view(reinterpret_cast<const char*>(buf_.data()), buf_.size()));
  buf_.clear();
}

void TokenStoreWriter::append(const int32_t* ids, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_) {
      throw Error("token store: the tokenizer produced id " + std::to_string(id) +
                  " outside its vocabulary of " + std::to_string(vocab_));
    }
    const auto v = static_cast<uint32_t>(id);
    unsigned char b[4];
    std::memcpy(b, &v, 4);
    buf_.insert(buf_.end(), b, b + width_);  // little-endian: the low bytes first
    ++written_;
    if (buf_.size() >= (1u << 20)) flush();
  }
}

std::shared_ptr<const TokenStore> TokenStoreWriter::finish() {
  flush();
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kTokenStoreVersion;
  h.width = static_cast<uint32_t>(width_);
  h.count = written_;
  h.payload_hash = hash_.digest();
  h.payload_offset = payload_offset_;
  h.key_len = static_cast<uint32_t>(key_.size());
  h.endian = kEndian;
  std::vector<char> head(payload_offset_, '\0');
  std::memcpy(head.data(), &h, sizeof h);
  std::memcpy(head.data() + kHeaderBytes, key_.data(), key_.size());
  write_all(head.data(), head.size(), 0);
  if (written_ == 0) {
    // An empty payload still makes a valid (header-only) file of the right size.
    if (::ftruncate(fd_, static_cast<off_t>(payload_offset_)) != 0)
      throw Error(tmp_ + ": cannot write token store (" + os_reason() + ")");
  }
  if (!path_.empty()) {
    if (::fsync(fd_) != 0) throw Error(tmp_ + ": cannot sync token store (" + os_reason() + ")");
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw Error(path_ + ": cannot rename token store into place (" + os_reason() + ")");
    const std::string dir = std::filesystem::path(path_).parent_path().string();
    const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }
  Mapped m = map_checked(fd_, path_.empty() ? tmp_ : path_);
  ::close(fd_);
  fd_ = -1;
  if (m.map == nullptr) throw Error(tmp_ + ": token store reads back malformed");
  std::shared_ptr<TokenStore> s(new TokenStore());
  s->path_ = path_;
  s->map_ = m.map;
  s->map_len_ = m.len;
  s->ids_ = static_cast<const char*>(m.map) + m.h.payload_offset;
  s->count_ = static_cast<int64_t>(m.h.count);
  s->width_ = static_cast<int>(m.h.width);
  return s;
}

}  // namespace hone
