// GGUF files: a validating reader over a read-only memory map (or an in-memory copy) and a writer.
//
// The reader checks every count, length and offset against the bytes that remain before it allocates or
// dereferences anything, so a malformed or hostile file ends in a metallic::Error with ErrorCode::Format
// whose message names the field and its byte offset, never in a crash or a huge allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "metallic/core/dtype.h"

namespace metallic::gguf {

/// Metadata value type ids as stored in the file.
enum class ValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

/// Lower-case name of a value type, e.g. "u32", "string", "array".
std::string_view to_string(ValueType type);

/// One metadata value: a scalar, a string, or an array. Arrays of scalars and strings are stored as one typed
/// vector (a 150k-entry vocabulary is one std::vector<std::string>, not 150k values); only arrays of arrays
/// hold a vector of nested Values.
class Value {
 public:
  /// Every representation a value can take; the alternative fixes both the type and, for arrays, the element
  /// type (so empty arrays keep their element type).
  using Storage =
      std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string, uint64_t,
                   int64_t, double, std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
                   std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>, std::vector<float>,
                   std::vector<bool>, std::vector<std::string>, std::vector<uint64_t>, std::vector<int64_t>,
                   std::vector<double>, std::vector<Value>>;

  /// An empty u8 array; mostly useful as a placeholder before assignment.
  Value() = default;
  /// A value of any Storage alternative, e.g. Value(uint32_t{32}) or Value(std::vector<float>{...}).
  template <class T,
            class = std::enable_if_t<
                std::is_constructible_v<Storage, T&&> && !std::is_same_v<std::decay_t<T>, const char*> &&
                !std::is_same_v<std::decay_t<T>, char*> && !std::is_same_v<std::decay_t<T>, Value>>>
  Value(T&& value) : data_(std::forward<T>(value)) {}
  /// A string value (a bare string literal would otherwise convert to bool).
  Value(const char* text) : data_(std::string(text)) {}
  /// A string value.
  Value(std::string_view text) : data_(std::string(text)) {}

  /// The stored type; Array for every kind of array.
  ValueType type() const;
  /// For arrays, the element type (Array for arrays of arrays); for scalars and strings, type().
  ValueType array_type() const;
  /// True when this value is an array of any element type.
  bool is_array() const { return type() == ValueType::Array; }
  /// Number of elements of an array; 1 for scalars and strings.
  size_t array_size() const;

  /// The stored T, or nullptr when the value holds another alternative.
  template <class T>
  const T* get_if() const {
    return std::get_if<T>(&data_);
  }
  /// The raw representation, for visiting.
  const Storage& storage() const { return data_; }

  friend bool operator==(const Value& a, const Value& b) { return a.data_ == b.data_; }

 private:
  Storage data_;
};

/// One key/value pair of the metadata, kept in file order.
struct KeyValue {
  std::string key;
  Value value;
};

/// One tensor as described by the file: name, type, shape (ggml order: dims[0] is the row length) and where
/// its bytes lie.
struct TensorInfo {
  std::string name;
  DType dtype;                ///< type of the stored elements (block types included)
  std::vector<int64_t> dims;  ///< ggml order, ne0 first; 1 to 4 entries, each >= 1
  uint64_t offset;            ///< byte offset of the data relative to the start of the data section
  uint64_t bytes;             ///< stored size in bytes (from the element count and the dtype's block layout)
  const uint8_t* data;        ///< first byte of the data; valid while the File (or a move of it) lives

  /// Product of the dims.
  int64_t elements() const;
};

/// A parsed GGUF file (version 2 or 3). Move-only; tensor data pointers point into the mapping it owns.
class File {
 public:
  /// Maps `path` read-only and parses it. Throws ErrorCode::Io when the file cannot be opened or mapped,
  /// ErrorCode::Format when its contents are malformed.
  static File open(const std::string& path);
  /// Parses a GGUF image held in memory (tests, fuzzing, files produced in memory by the Writer).
  static File from_bytes(std::vector<uint8_t> bytes);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  /// GGUF format version (2 or 3).
  uint32_t version() const { return version_; }
  /// Alignment of tensor data: `general.alignment` when present, else 32.
  uint64_t alignment() const { return alignment_; }
  /// File offset at which the tensor data section starts.
  uint64_t data_offset() const { return data_offset_; }
  /// Size of the whole file in bytes.
  uint64_t file_size() const { return size_; }

  /// All metadata in file order.
  const std::vector<KeyValue>& metadata() const { return metadata_; }
  /// The value stored under `key`, or nullptr.
  const Value* find(std::string_view key) const;

  // Typed getters. A missing key or a value of another type raises ErrorCode::Format naming the key and the
  // types involved; the overloads with a fallback return it when the key is absent (a wrong type still
  // fails).

  /// A string value.
  const std::string& get_string(std::string_view key) const;
  std::string get_string(std::string_view key, std::string_view fallback) const;
  /// An integer value of any integer type that fits in int64_t.
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t fallback) const;
  /// An integer value of any integer type that fits in uint32_t.
  uint32_t get_u32(std::string_view key) const;
  uint32_t get_u32(std::string_view key, uint32_t fallback) const;
  /// A floating-point value (f32, or f64 narrowed to float).
  float get_f32(std::string_view key) const;
  float get_f32(std::string_view key, float fallback) const;
  /// A bool value.
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool fallback) const;
  /// An array of strings (e.g. tokenizer.ggml.tokens, tokenizer.ggml.merges).
  const std::vector<std::string>& get_string_array(std::string_view key) const;
  /// An array of f32 (e.g. tokenizer.ggml.scores).
  const std::vector<float>& get_f32_array(std::string_view key) const;
  /// An array of i32 (e.g. tokenizer.ggml.token_type).
  const std::vector<int32_t>& get_i32_array(std::string_view key) const;

  /// All tensors in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// The tensor called `name`, or nullptr.
  const TensorInfo* find_tensor(std::string_view name) const;
  /// The tensor called `name`; raises ErrorCode::Format when the file has none.
  const TensorInfo& tensor(std::string_view name) const;

 private:
  struct Mapping;
  File();
  void parse();
  const Value& require(std::string_view key) const;

  std::unique_ptr<Mapping> mapping_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::map<std::string, size_t, std::less<>> key_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

/// Builds a GGUF v3 file: metadata in insertion order, then tensor infos, then tensor data, each tensor
/// aligned to `general.alignment` (when added as an integer key) or 32, with zero padding.
class Writer {
 public:
  /// Appends a metadata pair; a duplicate key raises ErrorCode::InvalidArgument.
  void add(std::string key, Value value);
  /// Appends a tensor; `data` must hold exactly the bytes the dtype and dims call for (copied).
  void add_tensor(std::string name, DType dtype, std::vector<int64_t> dims, const void* data, size_t bytes);
  /// Appends a tensor whose bytes `produce` writes (exactly the size the dtype and dims call for) when the
  /// file is written, so that large files never sit in memory whole.
  void add_tensor(std::string name, DType dtype, std::vector<int64_t> dims,
                  std::function<void(uint8_t* out)> produce);

  /// The complete file image.
  std::vector<uint8_t> to_bytes() const;
  /// Writes the image to `path` (ErrorCode::Io on failure).
  void write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> dims;
    uint64_t size;
    std::vector<uint8_t> data;              // owned bytes, or
    std::function<void(uint8_t*)> produce;  // bytes made on demand
  };
  uint64_t alignment() const;
  uint64_t checked_size(const std::string& name, DType dtype, const std::vector<int64_t>& dims) const;
  std::vector<uint8_t> header() const;
  // The tensor's bytes followed by the zero padding up to the alignment.
  void tensor_bytes(const Tensor& t, std::vector<uint8_t>& out) const;

  std::vector<KeyValue> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace metallic::gguf
