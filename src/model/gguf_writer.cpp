// GGUF v3 emission. The layout matches what ggml and the gguf Python package write (tensor offsets packed in
// insertion order, each tensor padded with zeros to the alignment, the last one included), so a file read and
// written back with the same content comes out byte for byte the same.
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "metallic/core/error.h"
#include "metallic/model/gguf.h"

namespace metallic::gguf {
namespace {

constexpr uint32_t kVersion = 3;

class Sink {
 public:
  explicit Sink(std::vector<uint8_t>& out) : out_(out) {}

  template <class T>
  void put(T value) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &value, sizeof(T));
  }
  void put_string(const std::string& text) {
    put<uint64_t>(text.size());
    out_.insert(out_.end(), text.begin(), text.end());
  }
  void put_bytes(const uint8_t* data, size_t n) { out_.insert(out_.end(), data, data + n); }
  void pad_to(uint64_t alignment) {
    out_.resize(out_.size() + (alignment - out_.size() % alignment) % alignment, 0);
  }

 private:
  std::vector<uint8_t>& out_;
};

// Writes the payload of `value` (no type tag); `nested` arrays carry their own element type and count.
void put_payload(Sink& out, const Value& value) {
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out.put_string(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          out.put<uint8_t>(v ? 1 : 0);
        } else if constexpr (std::is_arithmetic_v<T>) {
          out.put<T>(v);
        } else {
          out.put<uint32_t>(static_cast<uint32_t>(value.array_type()));
          out.put<uint64_t>(v.size());
          for (const auto& element : v) {
            using E = std::decay_t<decltype(element)>;
            if constexpr (std::is_same_v<T, std::vector<bool>>) {
              out.put<uint8_t>(element ? 1 : 0);
            } else if constexpr (std::is_same_v<E, std::string>) {
              out.put_string(element);
            } else if constexpr (std::is_same_v<E, Value>) {
              check(element.is_array(), ErrorCode::InvalidArgument,
                    "gguf writer: an array of arrays holds a non-array element of type ",
                    to_string(element.type()));
              put_payload(out, element);
            } else {
              out.put<E>(element);
            }
          }
        }
      },
      value.storage());
}

}  // namespace

void Writer::add(std::string key, Value value) {
  for (const KeyValue& kv : metadata_)
    check(kv.key != key, ErrorCode::InvalidArgument, "gguf writer: duplicate metadata key '", key, "'");
  metadata_.push_back({std::move(key), std::move(value)});
}

void Writer::add_tensor(std::string name, DType dtype, std::vector<int64_t> dims, const void* data,
                        size_t bytes) {
  const uint64_t size = checked_size(name, dtype, dims);
  check(bytes == size, ErrorCode::InvalidArgument, "gguf writer: tensor '", name, "': got ", bytes,
        " bytes, ", info(dtype).name, " needs ", size);
  const auto* first = static_cast<const uint8_t*>(data);
  tensors_.push_back(
      {std::move(name), dtype, std::move(dims), size, std::vector<uint8_t>(first, first + bytes), {}});
}

void Writer::add_tensor(std::string name, DType dtype, std::vector<int64_t> dims,
                        std::function<void(uint8_t* out)> produce) {
  const uint64_t size = checked_size(name, dtype, dims);
  tensors_.push_back({std::move(name), dtype, std::move(dims), size, {}, std::move(produce)});
}

uint64_t Writer::checked_size(const std::string& name, DType dtype, const std::vector<int64_t>& dims) const {
  for (const Tensor& t : tensors_)
    check(t.name != name, ErrorCode::InvalidArgument, "gguf writer: duplicate tensor '", name, "'");
  const DTypeInfo& ti = info(dtype);
  check(ti.ggml_type >= 0, ErrorCode::InvalidArgument, "gguf writer: tensor '", name, "': ", ti.name,
        " has no GGUF type id");
  check(!dims.empty() && dims.size() <= 4, ErrorCode::InvalidArgument, "gguf writer: tensor '", name,
        "': ", dims.size(), " dims (1 to 4 allowed)");
  int64_t elements = 1;
  for (int64_t d : dims) {
    check(d >= 1, ErrorCode::InvalidArgument, "gguf writer: tensor '", name, "': dim ", d,
          " is not positive");
    check(!__builtin_mul_overflow(elements, d, &elements), ErrorCode::InvalidArgument,
          "gguf writer: tensor '", name, "': element count overflows");
  }
  check(dims[0] % ti.block_size == 0, ErrorCode::InvalidArgument, "gguf writer: tensor '", name,
        "': row length ", dims[0], " is not a multiple of the ", ti.name, " block size ", ti.block_size);
  return static_cast<uint64_t>(storage_bytes(dtype, elements));
}

uint64_t Writer::alignment() const {
  for (const KeyValue& kv : metadata_) {
    if (kv.key != "general.alignment") continue;
    uint64_t alignment = 0;
    const bool ok = std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
            if (!std::in_range<uint64_t>(v)) return false;
            alignment = static_cast<uint64_t>(v);
            return alignment != 0 && std::has_single_bit(alignment);
          } else {
            return false;
          }
        },
        kv.value.storage());
    check(ok, ErrorCode::InvalidArgument, "gguf writer: 'general.alignment' must be a power-of-two integer");
    return alignment;
  }
  return 32;
}

std::vector<uint8_t> Writer::header() const {
  const uint64_t align = alignment();
  std::vector<uint8_t> bytes;
  Sink out(bytes);
  out.put<uint32_t>(0x46554747);  // "GGUF"
  out.put<uint32_t>(kVersion);
  out.put<uint64_t>(tensors_.size());
  out.put<uint64_t>(metadata_.size());
  for (const KeyValue& kv : metadata_) {
    out.put_string(kv.key);
    out.put<uint32_t>(static_cast<uint32_t>(kv.value.type()));
    put_payload(out, kv.value);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    out.put_string(t.name);
    out.put<uint32_t>(static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) out.put<uint64_t>(static_cast<uint64_t>(d));
    out.put<uint32_t>(static_cast<uint32_t>(info(t.dtype).ggml_type));
    out.put<uint64_t>(offset);
    offset += t.size + (align - t.size % align) % align;
  }
  out.pad_to(align);
  return bytes;
}

void Writer::tensor_bytes(const Tensor& t, std::vector<uint8_t>& out) const {
  const uint64_t align = alignment();
  out.assign(t.size + (align - t.size % align) % align, 0);
  if (t.produce)
    t.produce(out.data());
  else
    std::copy(t.data.begin(), t.data.end(), out.begin());
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> bytes = header(), chunk;
  for (const Tensor& t : tensors_) {
    tensor_bytes(t, chunk);
    bytes.insert(bytes.end(), chunk.begin(), chunk.end());
  }
  return bytes;
}

void Writer::write(const std::string& path) const {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail(ErrorCode::Io, "gguf writer: cannot create '", path, "': ", std::strerror(errno));
  // Tensors are produced and written one at a time, so files larger than memory can be written.
  std::vector<uint8_t> chunk = header();
  bool ok = std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size();
  try {
    for (size_t i = 0; ok && i < tensors_.size(); ++i) {
      tensor_bytes(tensors_[i], chunk);
      ok = std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size();
    }
  } catch (...) {
    std::fclose(f);
    throw;
  }
  const bool closed = std::fclose(f) == 0;
  check(ok && closed, ErrorCode::Io, "gguf writer: short write to '", path, "'");
}

}  // namespace metallic::gguf
