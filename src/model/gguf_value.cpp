// Metadata values: type names and the type, element type and size of each stored representation.
#include <string>
#include <type_traits>

#include "metallic/model/gguf.h"

namespace metallic::gguf {

std::string_view to_string(ValueType type) {
  switch (type) {
    case ValueType::U8: return "u8";
    case ValueType::I8: return "i8";
    case ValueType::U16: return "u16";
    case ValueType::I16: return "i16";
    case ValueType::U32: return "u32";
    case ValueType::I32: return "i32";
    case ValueType::F32: return "f32";
    case ValueType::Bool: return "bool";
    case ValueType::String: return "string";
    case ValueType::Array: return "array";
    case ValueType::U64: return "u64";
    case ValueType::I64: return "i64";
    case ValueType::F64: return "f64";
  }
  return "unknown";
}

ValueType Value::type() const {
  static constexpr ValueType kScalar[] = {ValueType::U8,     ValueType::I8,  ValueType::U16, ValueType::I16,
                                          ValueType::U32,    ValueType::I32, ValueType::F32, ValueType::Bool,
                                          ValueType::String, ValueType::U64, ValueType::I64, ValueType::F64};
  const size_t index = data_.index();
  return index < std::size(kScalar) ? kScalar[index] : ValueType::Array;
}

ValueType Value::array_type() const {
  return std::visit(
      [this](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::vector<uint8_t>>)
          return ValueType::U8;
        else if constexpr (std::is_same_v<T, std::vector<int8_t>>)
          return ValueType::I8;
        else if constexpr (std::is_same_v<T, std::vector<uint16_t>>)
          return ValueType::U16;
        else if constexpr (std::is_same_v<T, std::vector<int16_t>>)
          return ValueType::I16;
        else if constexpr (std::is_same_v<T, std::vector<uint32_t>>)
          return ValueType::U32;
        else if constexpr (std::is_same_v<T, std::vector<int32_t>>)
          return ValueType::I32;
        else if constexpr (std::is_same_v<T, std::vector<float>>)
          return ValueType::F32;
        else if constexpr (std::is_same_v<T, std::vector<bool>>)
          return ValueType::Bool;
        else if constexpr (std::is_same_v<T, std::vector<std::string>>)
          return ValueType::String;
        else if constexpr (std::is_same_v<T, std::vector<uint64_t>>)
          return ValueType::U64;
        else if constexpr (std::is_same_v<T, std::vector<int64_t>>)
          return ValueType::I64;
        else if constexpr (std::is_same_v<T, std::vector<double>>)
          return ValueType::F64;
        else if constexpr (std::is_same_v<T, std::vector<Value>>)
          return ValueType::Array;
        else
          return type();
      },
      data_);
}

size_t Value::array_size() const {
  return std::visit(
      [](const auto& v) -> size_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (requires { v.size(); } && !std::is_same_v<T, std::string>)
          return v.size();
        else
          return 1;
      },
      data_);
}

}  // namespace metallic::gguf
