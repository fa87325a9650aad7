// GGUF parsing. Every read goes through Cursor, which checks the bytes left before touching them; every count
// is checked against the bytes that could possibly encode it before anything is reserved, so the memory a
// parse uses stays within a small multiple of the file size whatever the file claims.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "metallic/core/error.h"
#include "metallic/model/gguf.h"

namespace metallic::gguf {

static_assert(std::endian::native == std::endian::little, "the reader copies little-endian fields directly");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
// Arrays nest only a level or two in practice; the bound keeps hostile nesting from exhausting the stack.
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4;

// Smallest number of bytes one element of `type` can occupy in the file; 0 for unknown types.
uint64_t min_encoded_size(ValueType type) {
  switch (type) {
    case ValueType::U8:
    case ValueType::I8:
    case ValueType::Bool: return 1;
    case ValueType::U16:
    case ValueType::I16: return 2;
    case ValueType::U32:
    case ValueType::I32:
    case ValueType::F32: return 4;
    case ValueType::U64:
    case ValueType::I64:
    case ValueType::F64:
    case ValueType::String: return 8;     // the length prefix
    case ValueType::Array: return 4 + 8;  // element type and count
  }
  return 0;
}

bool known_type(uint32_t raw) { return raw <= static_cast<uint32_t>(ValueType::F64); }

class Cursor {
 public:
  Cursor(const uint8_t* base, uint64_t size) : base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  // Raises a Format error unless `n` more bytes exist; `what` names the field being read.
  void need(uint64_t n, std::string_view what) const {
    if (n > remaining())
      fail(ErrorCode::Format, "gguf: ", what, ": needs ", n, " bytes but the file ends after ", remaining(),
           " (size ", size_, ") at byte ", pos_);
  }

  template <class T>
  T read(std::string_view what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }

  std::string read_string(std::string_view what) {
    const uint64_t at = pos_;
    const auto length = read<uint64_t>(what);
    if (length > remaining())
      fail(ErrorCode::Format, "gguf: ", what, ": string length ", length, " exceeds the ", remaining(),
           " bytes left at byte ", at);
    std::string text(reinterpret_cast<const char*>(base_ + pos_), length);
    pos_ += length;
    return text;
  }

  template <class T>
  std::vector<T> read_array(uint64_t count, std::string_view what) {
    need(count * sizeof(T), what);  // count was bounded by remaining() / sizeof(T) already
    std::vector<T> values(count);
    if (count) std::memcpy(values.data(), base_ + pos_, count * sizeof(T));
    pos_ += count * sizeof(T);
    return values;
  }

 private:
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

bool read_bool(Cursor& in, std::string_view what) {
  const uint64_t at = in.pos();
  const auto raw = in.read<uint8_t>(what);
  if (raw > 1)
    fail(ErrorCode::Format, "gguf: ", what, ": bool byte ", int(raw), " is neither 0 nor 1 at byte ", at);
  return raw == 1;
}

Value read_value(Cursor& in, ValueType type, const std::string& what, int depth);

Value read_array(Cursor& in, const std::string& what, int depth) {
  const uint64_t at = in.pos();
  if (depth >= kMaxArrayDepth)
    fail(ErrorCode::Format, "gguf: ", what, ": arrays nested deeper than ", kMaxArrayDepth, " at byte ", at);
  const auto raw_type = in.read<uint32_t>(what + " array type");
  if (!known_type(raw_type))
    fail(ErrorCode::Format, "gguf: ", what, ": unknown array element type ", raw_type, " at byte ", at);
  const auto type = static_cast<ValueType>(raw_type);
  const uint64_t count_at = in.pos();
  const auto count = in.read<uint64_t>(what + " array count");
  if (count > in.remaining() / min_encoded_size(type))
    fail(ErrorCode::Format, "gguf: ", what, ": array of ", count, " ", to_string(type), " cannot fit in the ",
         in.remaining(), " bytes left at byte ", count_at);
  switch (type) {
    case ValueType::U8: return in.read_array<uint8_t>(count, what);
    case ValueType::I8: return in.read_array<int8_t>(count, what);
    case ValueType::U16: return in.read_array<uint16_t>(count, what);
    case ValueType::I16: return in.read_array<int16_t>(count, what);
    case ValueType::U32: return in.read_array<uint32_t>(count, what);
    case ValueType::I32: return in.read_array<int32_t>(count, what);
    case ValueType::F32: return in.read_array<float>(count, what);
    case ValueType::U64: return in.read_array<uint64_t>(count, what);
    case ValueType::I64: return in.read_array<int64_t>(count, what);
    case ValueType::F64: return in.read_array<double>(count, what);
    case ValueType::Bool: {
      std::vector<bool> values(count);
      for (uint64_t i = 0; i < count; ++i) values[i] = read_bool(in, what);
      return values;
    }
    case ValueType::String: {
      std::vector<std::string> values;
      values.reserve(count);
      for (uint64_t i = 0; i < count; ++i) values.push_back(in.read_string(what));
      return values;
    }
    case ValueType::Array: {
      std::vector<Value> values;
      values.reserve(count);
      for (uint64_t i = 0; i < count; ++i) values.push_back(read_array(in, what, depth + 1));
      return values;
    }
  }
  fail(ErrorCode::Internal, "gguf: unhandled array type");
}

Value read_value(Cursor& in, ValueType type, const std::string& what, int depth) {
  switch (type) {
    case ValueType::U8: return in.read<uint8_t>(what);
    case ValueType::I8: return in.read<int8_t>(what);
    case ValueType::U16: return in.read<uint16_t>(what);
    case ValueType::I16: return in.read<int16_t>(what);
    case ValueType::U32: return in.read<uint32_t>(what);
    case ValueType::I32: return in.read<int32_t>(what);
    case ValueType::F32: return in.read<float>(what);
    case ValueType::U64: return in.read<uint64_t>(what);
    case ValueType::I64: return in.read<int64_t>(what);
    case ValueType::F64: return in.read<double>(what);
    case ValueType::Bool: return read_bool(in, what);
    case ValueType::String: return in.read_string(what);
    case ValueType::Array: return read_array(in, what, depth);
  }
  fail(ErrorCode::Internal, "gguf: unhandled value type");
}

// The integer held by `value`, if it holds one of the integer types.
template <class Out>
bool integer_of(const Value& value, Out& out) {
  return std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if (!std::in_range<Out>(v)) return false;
          out = static_cast<Out>(v);
          return true;
        } else {
          return false;
        }
      },
      value.storage());
}

std::string type_name(const Value& value) {
  if (!value.is_array()) return std::string(to_string(value.type()));
  return detail::concat("array of ", to_string(value.array_type()));
}

}  // namespace

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// Owns the bytes a File points into: a read-only mapping, or a vector for in-memory images.
struct File::Mapping {
  void* address = nullptr;
  size_t length = 0;
  std::vector<uint8_t> bytes;

  ~Mapping() {
    if (address) munmap(address, length);
  }
};

File::File() = default;
File::File(File&&) noexcept = default;
File& File::operator=(File&&) noexcept = default;
File::~File() = default;

File File::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorCode::Io, "gguf: cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail(ErrorCode::Io, "gguf: cannot stat '", path, "': ", std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::Io, "gguf: '", path, "' is not a regular file");
  }
  File file;
  file.mapping_ = std::make_unique<Mapping>();
  file.size_ = static_cast<uint64_t>(st.st_size);
  if (file.size_ > 0) {
    void* address = mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (address == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(ErrorCode::Io, "gguf: cannot map '", path, "': ", std::strerror(err));
    }
    file.mapping_->address = address;
    file.mapping_->length = file.size_;
    file.base_ = static_cast<const uint8_t*>(address);
  }
  ::close(fd);  // the mapping keeps the file contents reachable
  try {
    file.parse();
  } catch (const Error& e) {
    throw Error(e.code(), detail::concat(e.what(), " (in '", path, "')"));
  }
  return file;
}

File File::from_bytes(std::vector<uint8_t> bytes) {
  File file;
  file.mapping_ = std::make_unique<Mapping>();
  file.mapping_->bytes = std::move(bytes);
  file.base_ = file.mapping_->bytes.data();
  file.size_ = file.mapping_->bytes.size();
  file.parse();
  return file;
}

void File::parse() {
  Cursor in(base_, size_);
  const auto magic = in.read<uint32_t>("magic");
  if (magic != kMagic)
    fail(ErrorCode::Format, "gguf: bad magic 0x", std::hex, magic, std::dec,
         " (expected \"GGUF\") at byte 0");
  version_ = in.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    if (version_ == 0x02000000 || version_ == 0x03000000)
      fail(ErrorCode::Format, "gguf: big-endian files are not supported (version field ", version_,
           ") at byte 4");
    fail(ErrorCode::Format, "gguf: unsupported version ", version_, " (2 and 3 are read) at byte 4");
  }
  const uint64_t tensor_count_at = in.pos();
  const auto tensor_count = in.read<uint64_t>("tensor count");
  const uint64_t kv_count_at = in.pos();
  const auto kv_count = in.read<uint64_t>("metadata count");
  // A key/value pair takes at least a key length, a type and one value byte; a tensor info at least a name
  // length, n_dims, one dim, a type and an offset.
  constexpr uint64_t kMinKv = 8 + 4 + 1, kMinTensor = 8 + 4 + 8 + 4 + 8;
  if (kv_count > in.remaining() / kMinKv)
    fail(ErrorCode::Format, "gguf: metadata count ", kv_count, " cannot fit in the ", in.remaining(),
         " bytes left at byte ", kv_count_at);
  if (tensor_count > in.remaining() / kMinTensor)
    fail(ErrorCode::Format, "gguf: tensor count ", tensor_count, " cannot fit in the ", in.remaining(),
         " bytes left at byte ", tensor_count_at);

  metadata_.reserve(kv_count);
  for (uint64_t i = 0; i < kv_count; ++i) {
    const uint64_t key_at = in.pos();
    std::string key = in.read_string(detail::concat("metadata key #", i));
    const std::string what = detail::concat("metadata '", key, "'");
    if (key_index_.count(key)) fail(ErrorCode::Format, "gguf: duplicate ", what, " at byte ", key_at);
    const uint64_t type_at = in.pos();
    const auto raw_type = in.read<uint32_t>(what + " type");
    if (!known_type(raw_type))
      fail(ErrorCode::Format, "gguf: ", what, ": unknown value type ", raw_type, " at byte ", type_at);
    Value value = read_value(in, static_cast<ValueType>(raw_type), what, 0);
    key_index_.emplace(key, metadata_.size());
    metadata_.push_back({std::move(key), std::move(value)});
  }

  if (const Value* value = find("general.alignment")) {
    uint64_t alignment = 0;
    if (!integer_of(*value, alignment) || alignment == 0 || !std::has_single_bit(alignment))
      fail(ErrorCode::Format, "gguf: metadata 'general.alignment' must be a power-of-two integer, got ",
           type_name(*value), alignment ? detail::concat(" ", alignment) : std::string());
    alignment_ = alignment;
  }

  std::vector<uint64_t> offset_fields;  // where each tensor's offset was read, for error messages
  tensors_.reserve(tensor_count);
  offset_fields.reserve(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const uint64_t name_at = in.pos();
    std::string name = in.read_string(detail::concat("tensor #", i, " name"));
    const std::string what = detail::concat("tensor '", name, "'");
    if (tensor_index_.count(name)) fail(ErrorCode::Format, "gguf: duplicate ", what, " at byte ", name_at);
    const uint64_t n_dims_at = in.pos();
    const auto n_dims = in.read<uint32_t>(what + " n_dims");
    if (n_dims == 0 || n_dims > kMaxDims)
      fail(ErrorCode::Format, "gguf: ", what, ": n_dims ", n_dims, " outside 1..", kMaxDims, " at byte ",
           n_dims_at);
    std::vector<int64_t> dims(n_dims);
    int64_t elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim_at = in.pos();
      const auto dim = in.read<uint64_t>(what + " dim");
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(ErrorCode::Format, "gguf: ", what, ": dim ", d, " = ", static_cast<int64_t>(dim),
             " is not positive at byte ", dim_at);
      dims[d] = static_cast<int64_t>(dim);
      if (__builtin_mul_overflow(elements, dims[d], &elements))
        fail(ErrorCode::Format, "gguf: ", what, ": element count overflows at dim ", d, " at byte ", dim_at);
    }
    const uint64_t type_at = in.pos();
    const auto raw_type = in.read<uint32_t>(what + " type");
    const auto dtype = raw_type <= static_cast<uint32_t>(std::numeric_limits<int>::max())
                           ? dtype_from_ggml(static_cast<int>(raw_type))
                           : std::nullopt;
    if (!dtype)
      fail(ErrorCode::Format, "gguf: ", what, ": unknown tensor type ", raw_type, " at byte ", type_at);
    const DTypeInfo& ti = info(*dtype);
    if (dims[0] % ti.block_size != 0)
      fail(ErrorCode::Format, "gguf: ", what, ": row length ", dims[0], " is not a multiple of the ", ti.name,
           " block size ", ti.block_size, " at byte ", type_at);
    int64_t bytes = 0;
    if (__builtin_mul_overflow(elements / ti.block_size, ti.block_bytes, &bytes))
      fail(ErrorCode::Format, "gguf: ", what, ": byte size overflows at byte ", type_at);
    const uint64_t offset_at = in.pos();
    const auto offset = in.read<uint64_t>(what + " offset");
    if (offset % alignment_ != 0)
      fail(ErrorCode::Format, "gguf: ", what, ": data offset ", offset,
           " is not a multiple of the alignment ", alignment_, " at byte ", offset_at);
    tensor_index_.emplace(name, tensors_.size());
    tensors_.push_back(
        {std::move(name), *dtype, std::move(dims), offset, static_cast<uint64_t>(bytes), nullptr});
    offset_fields.push_back(offset_at);
  }

  const uint64_t header_end = in.pos();
  data_offset_ = header_end + (alignment_ - header_end % alignment_) % alignment_;
  if (data_offset_ < header_end)
    fail(ErrorCode::Format, "gguf: alignment ", alignment_, " overflows the data offset at byte ",
         header_end);
  if (tensors_.empty()) return;
  if (data_offset_ > size_)
    fail(ErrorCode::Format, "gguf: tensor data section at ", data_offset_, " starts past end of file (size ",
         size_, ") at byte ", header_end);
  const uint64_t data_size = size_ - data_offset_;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    TensorInfo& t = tensors_[i];
    if (t.offset > data_size)
      fail(ErrorCode::Format, "gguf: tensor '", t.name, "': data offset ", t.offset,
           " past end of file (size ", size_, ", data at ", data_offset_, ") at byte ", offset_fields[i]);
    if (t.bytes > data_size - t.offset)
      fail(ErrorCode::Format, "gguf: tensor '", t.name, "': ", t.bytes, " bytes at data offset ", t.offset,
           " run past end of file (size ", size_, ", data at ", data_offset_, ") at byte ", offset_fields[i]);
    t.data = base_ + data_offset_ + t.offset;
  }
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const TensorInfo& prev = tensors_[order[k - 1]];
    const TensorInfo& cur = tensors_[order[k]];
    if (cur.offset < prev.offset + prev.bytes)
      fail(ErrorCode::Format, "gguf: tensor '", cur.name, "': data at offset ", cur.offset,
           " overlaps tensor '", prev.name, "' (offset ", prev.offset, ", ", prev.bytes, " bytes) at byte ",
           offset_fields[order[k]]);
  }
}

const Value* File::find(std::string_view key) const {
  const auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const Value& File::require(std::string_view key) const {
  const Value* value = find(key);
  if (!value) fail(ErrorCode::Format, "gguf: missing metadata key '", key, "'");
  return *value;
}

namespace {

[[noreturn]] void wrong_type(std::string_view key, const Value& value, std::string_view expected) {
  fail(ErrorCode::Format, "gguf: metadata '", key, "' has type ", type_name(value), ", expected ", expected);
}

template <class T>
const T& typed(std::string_view key, const Value& value, std::string_view expected) {
  const T* v = value.get_if<T>();
  if (!v) wrong_type(key, value, expected);
  return *v;
}

template <class Out>
Out integer(std::string_view key, const Value& value) {
  Out out{};
  if (!integer_of(value, out)) {
    if (value.is_array() || value.type() == ValueType::String || value.type() == ValueType::Bool ||
        value.type() == ValueType::F32 || value.type() == ValueType::F64)
      wrong_type(key, value, "an integer");
    fail(ErrorCode::Format, "gguf: metadata '", key, "' holds an integer out of range for ",
         std::is_signed_v<Out> ? "int64" : "uint32");
  }
  return out;
}

float floating(std::string_view key, const Value& value) {
  if (const float* f = value.get_if<float>()) return *f;
  if (const double* d = value.get_if<double>()) return static_cast<float>(*d);
  wrong_type(key, value, "f32");
}

}  // namespace

const std::string& File::get_string(std::string_view key) const {
  return typed<std::string>(key, require(key), "string");
}
std::string File::get_string(std::string_view key, std::string_view fallback) const {
  const Value* v = find(key);
  return v ? typed<std::string>(key, *v, "string") : std::string(fallback);
}
int64_t File::get_int(std::string_view key) const { return integer<int64_t>(key, require(key)); }
int64_t File::get_int(std::string_view key, int64_t fallback) const {
  const Value* v = find(key);
  return v ? integer<int64_t>(key, *v) : fallback;
}
uint32_t File::get_u32(std::string_view key) const { return integer<uint32_t>(key, require(key)); }
uint32_t File::get_u32(std::string_view key, uint32_t fallback) const {
  const Value* v = find(key);
  return v ? integer<uint32_t>(key, *v) : fallback;
}
float File::get_f32(std::string_view key) const { return floating(key, require(key)); }
float File::get_f32(std::string_view key, float fallback) const {
  const Value* v = find(key);
  return v ? floating(key, *v) : fallback;
}
bool File::get_bool(std::string_view key) const { return typed<bool>(key, require(key), "bool"); }
bool File::get_bool(std::string_view key, bool fallback) const {
  const Value* v = find(key);
  return v ? typed<bool>(key, *v, "bool") : fallback;
}
const std::vector<std::string>& File::get_string_array(std::string_view key) const {
  return typed<std::vector<std::string>>(key, require(key), "array of string");
}
const std::vector<float>& File::get_f32_array(std::string_view key) const {
  return typed<std::vector<float>>(key, require(key), "array of f32");
}
const std::vector<int32_t>& File::get_i32_array(std::string_view key) const {
  return typed<std::vector<int32_t>>(key, require(key), "array of i32");
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& File::tensor(std::string_view name) const {
  const TensorInfo* t = find_tensor(name);
  if (!t) fail(ErrorCode::Format, "gguf: no tensor named '", name, "'");
  return *t;
}

}  // namespace metallic::gguf
