// Reuse of large tensor buffers. A training step allocates the same activation sizes every step;
// handing freed blocks back to the next request of the same size avoids the page faults of fresh
// mmap'd memory (measured: most of a step's system time on a 135M model before this).
#pragma once

#include <cstddef>

namespace hone {

// 64-byte aligned block of at least `bytes`; from the cache when a block of that size is free.
void* block_alloc(size_t bytes);
// Returns a block obtained from block_alloc(bytes) to the cache (or frees it).
void block_free(void* p, size_t bytes);
// Frees every cached block; returns the bytes released.
size_t block_cache_release();
// Bytes currently held in the cache (not in use).
size_t block_cache_bytes();

// n uninitialised values of T from the cache for the lifetime of a scope: kernel scratch that is
// needed every step (a fresh allocation each time would page-fault it in again).
template <class T>
class ScopedBlock {
 public:
  explicit ScopedBlock(size_t n)
      : bytes_(n * sizeof(T)), p_(n ? static_cast<T*>(block_alloc(bytes_)) : nullptr) {}
  ~ScopedBlock() {
    if (p_) block_free(p_, bytes_);
  }
  ScopedBlock(const ScopedBlock&) = delete;
  ScopedBlock& operator=(const ScopedBlock&) = delete;
  T* data() const { return p_; }

 private:
  size_t bytes_;
  T* p_;
};

}  // namespace hone
