#include "metallic/core/buffer.h"

#include "backend/runtime.h"
#include "metallic/core/context.h"
#include "metallic/core/error.h"
#include "metallic/core/memory_pool.h"

namespace metallic {

std::shared_ptr<Buffer> Buffer::allocate(const std::shared_ptr<Context>& context, size_t bytes) {
  check(context != nullptr, ErrorCode::InvalidArgument, "Buffer::allocate: null context");
  std::shared_ptr<Buffer> b(new Buffer());
  b->data_ =
      backend::runtime(context->device().type).allocate(context->device(), bytes, context->native().stream);
  b->context_ = context;
  b->size_ = bytes;
  b->owned_ = true;
  context->track_allocation(static_cast<int64_t>(bytes));
  return b;
}

std::shared_ptr<Buffer> Buffer::wrap(const std::shared_ptr<Context>& context, void* data, size_t bytes,
                                     std::shared_ptr<const void> keep_alive) {
  check(context != nullptr, ErrorCode::InvalidArgument, "Buffer::wrap: null context");
  std::shared_ptr<Buffer> b(new Buffer());
  b->context_ = context;
  b->data_ = data;
  b->size_ = bytes;
  b->keep_alive_ = std::move(keep_alive);
  return b;
}

std::shared_ptr<Buffer> Buffer::from_pool(const std::shared_ptr<Context>& context, void* data, size_t bytes,
                                          const MemoryPool* pool, uint64_t serial) {
  std::shared_ptr<Buffer> b = wrap(context, data, bytes, nullptr);
  b->pool_ = pool;
  b->serial_ = serial;
  return b;
}

Buffer::~Buffer() {
  if (!owned_) return;
  backend::runtime(context_->device().type).deallocate(context_->device(), data_, context_->native().stream);
  context_->track_allocation(-static_cast<int64_t>(size_));
}

bool Buffer::valid() const { return pool_ == nullptr || pool_->alive(serial_); }

void* Buffer::data() const {
  check(valid(), ErrorCode::InvalidArgument,
        "tensor memory used after its memory pool was reset (allocation #", serial_, " on ",
        device().to_string(), ")");
  return data_;
}

const Device& Buffer::device() const { return context_->device(); }

}  // namespace metallic
