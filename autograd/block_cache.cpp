#include "autograd/block_cache.h"

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "autograd/error.h"

namespace hone {

namespace {

// Blocks below this size come from malloc's own free lists, which already reuse them.
constexpr size_t kMinCached = size_t{1} << 16;

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // exact size -> blocks
  size_t bytes = 0;
};

// Never destroyed, so tensors released during static destruction can still return their blocks.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

}  // namespace

void* block_alloc(size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  if (bytes >= kMinCached) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(bytes);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.bytes -= bytes;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw Error("out of memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void block_free(void* p, size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  if (bytes < kMinCached) {
    std::free(p);
    return;
  }
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.free_blocks[bytes].push_back(p);
  c.bytes += bytes;
}

size_t block_cache_release() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t released = c.bytes;
  for (auto& [size, blocks] : c.free_blocks)
    for (void* p : blocks) std::free(p);
  c.free_blocks.clear();
  c.bytes = 0;
  return released;
}

size_t block_cache_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

}  // namespace hone
