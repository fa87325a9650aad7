// The one exception type of the library and the helpers that raise it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace metallic {

/// What kind of failure an Error reports; callers branch on this, not on message text.
enum class ErrorCode {
  InvalidArgument,
  ShapeMismatch,
  DTypeMismatch,
  OutOfMemory,
  Device,
  NotSupported,
  Format,
  Io,
  Internal,
};

/// Stable lower-case name of an error code, e.g. "shape mismatch".
std::string_view to_string(ErrorCode code);

/// Every failure the library reports: a code plus a message naming the op and the offending values.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  /// The category of the failure.
  ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

/// Throws an Error whose message is the streamed concatenation of `parts`.
template <class... Parts>
[[noreturn]] void fail(ErrorCode code, const Parts&... parts) {
  throw Error(code, detail::concat(parts...));
}

/// Throws an Error with `code` and the streamed `parts` unless `condition` holds.
template <class... Parts>
void check(bool condition, ErrorCode code, const Parts&... parts) {
  if (!condition) fail(code, parts...);
}

}  // namespace metallic
