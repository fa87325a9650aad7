#include "metallic/core/memory_pool.h"

#include <algorithm>

#include "backend/runtime.h"
#include "metallic/core/buffer.h"
#include "metallic/core/context.h"
#include "metallic/core/error.h"

namespace metallic {

MemoryPool::MemoryPool(Context& context, size_t capacity, size_t chunk_bytes)
    : context_(context), capacity_(capacity), chunk_bytes_(std::max(chunk_bytes, kAlignment)) {}

MemoryPool::~MemoryPool() {
  const auto& rt = backend::runtime(context_.device().type);
  for (const Chunk& c : chunks_) rt.deallocate(context_.device(), c.data, context_.native().stream);
}

std::shared_ptr<Buffer> MemoryPool::allocate(size_t bytes) {
  std::lock_guard lock(mutex_);
  const size_t size = std::max<size_t>((bytes + kAlignment - 1) / kAlignment * kAlignment, kAlignment);
  size_t skipped = 0;  // tail bytes of chunks left behind; they count as used until the next release
  while (chunk_ < chunks_.size() && offset_ + size > chunks_[chunk_].size) {
    skipped += chunks_[chunk_].size - offset_;
    ++chunk_;
    offset_ = 0;
  }
  if (chunk_ == chunks_.size()) {
    const size_t want = std::max(size, chunk_bytes_);
    check(reserved_ + want <= capacity_, ErrorCode::OutOfMemory, "memory pool on ",
          context_.device().to_string(), ": cannot allocate ", bytes, " bytes; ", capacity_ - used_ - skipped,
          " of ", capacity_, " bytes free");
    void* data =
        backend::runtime(context_.device().type).allocate(context_.device(), want, context_.native().stream);
    chunks_.push_back({data, want});
    reserved_ += want;
  }
  void* p = static_cast<char*>(chunks_[chunk_].data) + offset_;
  offset_ += size;
  used_ += skipped + size;
  peak_ = std::max(peak_, used_);
  return Buffer::from_pool(context_.shared_from_this(), p, bytes, this, next_serial_++);
}

MemoryPool::Mark MemoryPool::mark() const {
  std::lock_guard lock(mutex_);
  return {chunk_, offset_, used_, next_serial_};
}

void MemoryPool::release(const Mark& mark) {
  std::lock_guard lock(mutex_);
  check(mark.used <= used_ && mark.serial <= next_serial_, ErrorCode::InvalidArgument,
        "memory pool: release to a mark taken after a later reset or release");
  const uint64_t first = std::max<uint64_t>(mark.serial, 1);
  if (first < next_serial_) {
    // Retired ranges are kept merged: a reset collapses them all into one.
    std::erase_if(retired_, [&](const Retired& r) { return r.first >= first; });
    if (!retired_.empty() && retired_.back().last >= first)
      retired_.back().last = next_serial_;
    else
      retired_.push_back({first, next_serial_});
  }
  chunk_ = mark.chunk;
  offset_ = mark.offset;
  used_ = mark.used;
}

bool MemoryPool::alive(uint64_t serial) const {
  std::lock_guard lock(mutex_);
  for (const Retired& r : retired_)
    if (serial >= r.first && serial < r.last) return false;
  return serial < next_serial_;
}

}  // namespace metallic
