#include "metallic/graph/command_buffer.h"

#include "backend/runtime.h"
#include "metallic/core/context.h"
#include "metallic/core/error.h"

namespace metallic {

CommandBuffer::CommandBuffer(std::shared_ptr<Context> context) : context_(std::move(context)) {
  check(context_ != nullptr, ErrorCode::InvalidArgument, "CommandBuffer: null context");
}

void CommandBuffer::record(Operation op) {
  check(!captured(), ErrorCode::InvalidArgument, "CommandBuffer: cannot record '", op.name,
        "' after capture(); clear() first");
  check(static_cast<bool>(op.run), ErrorCode::InvalidArgument, "CommandBuffer: operation '", op.name,
        "' has nothing to run");
  ops_.push_back(std::move(op));
}

void CommandBuffer::commit() {
  if (captured()) {
    backend::runtime(context_->device().type).replay(context_->native(), executable_);
    return;
  }
  for (const Operation& op : ops_) op.run();
}

void CommandBuffer::wait() { context_->synchronize(); }

void CommandBuffer::capture() {
  if (captured() || !context_->device().is_cuda()) return;
  const backend::Runtime& rt = backend::runtime(context_->device().type);
  rt.begin_capture(context_->native());
  try {
    for (const Operation& op : ops_) op.run();
  } catch (...) {
    rt.end_capture(context_->native(), false);
    throw;
  }
  executable_ = rt.end_capture(context_->native(), true);
}

void CommandBuffer::clear() {
  ops_.clear();
  executable_.reset();
}

}  // namespace metallic
