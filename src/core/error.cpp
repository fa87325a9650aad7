#include "metallic/core/error.h"

namespace metallic {

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::ShapeMismatch: return "shape mismatch";
    case ErrorCode::DTypeMismatch: return "dtype mismatch";
    case ErrorCode::OutOfMemory: return "out of memory";
    case ErrorCode::Device: return "device error";
    case ErrorCode::NotSupported: return "not supported";
    case ErrorCode::Format: return "format error";
    case ErrorCode::Io: return "i/o error";
    case ErrorCode::Internal: return "internal error";
  }
  return "unknown error";
}

Error::Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}

}  // namespace metallic
