// A bump arena for per-step temporaries: allocation is a pointer increment, freeing is reset().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace metallic {

class Buffer;
class Context;

/// Bump allocator over large device allocations (chunks), 256-byte aligned. Every allocation takes a
/// serial number; reset() and release() retire the serials they free, and a Buffer whose serial is
/// retired refuses to hand out its pointer, so a stale tensor fails loudly instead of reading reused memory.
class MemoryPool {
 public:
  /// A position in the arena to return to with release().
  struct Mark {
    size_t chunk = 0;
    size_t offset = 0;
    size_t used = 0;
    uint64_t serial = 0;
  };
  /// Arena alignment in bytes.
  static constexpr size_t kAlignment = 256;

  MemoryPool(Context& context, size_t capacity, size_t chunk_bytes);
  ~MemoryPool();
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  /// `bytes` from the arena; OutOfMemory naming the request and the free bytes when the capacity is hit.
  std::shared_ptr<Buffer> allocate(size_t bytes);
  /// The current position.
  Mark mark() const;
  /// Frees everything allocated after `mark` was taken.
  void release(const Mark& mark);
  /// Frees everything.
  void reset() { release(Mark{}); }
  /// Whether the allocation with `serial` is still live.
  bool alive(uint64_t serial) const;

  size_t capacity() const { return capacity_; }
  /// Bytes handed out since the last reset (alignment padding included).
  size_t used() const { return used_; }
  /// Most bytes ever in use at once.
  size_t peak() const { return peak_; }
  /// Bytes of device memory the chunks occupy.
  size_t reserved() const { return reserved_; }

 private:
  struct Chunk {
    void* data;
    size_t size;
  };
  struct Retired {
    uint64_t first, last;  // half-open range of dead serials
  };

  Context& context_;
  size_t capacity_, chunk_bytes_;
  std::vector<Chunk> chunks_;
  size_t chunk_ = 0, offset_ = 0, used_ = 0;
  size_t reserved_ = 0, peak_ = 0;
  uint64_t next_serial_ = 1;
  std::vector<Retired> retired_;
  mutable std::mutex mutex_;
};

}  // namespace metallic
