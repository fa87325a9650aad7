// `metallic inspect FILE.gguf`: the header, the metadata and the tensor table of a GGUF file.
#include <cstdio>
#include <sstream>
#include <string>

#include "command.h"
#include "metallic/model/gguf.h"

namespace metallic::cli {
namespace {

// Arrays longer than this are summarised by their type, length and first few elements.
constexpr size_t kShownElements = 8;
constexpr size_t kMaxStringChars = 80;

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size() && i < kMaxStringChars; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxStringChars) out += "...";
  return out + "\"";
}

std::string describe(const gguf::Value& value) {
  std::ostringstream out;
  std::visit(
      [&](const auto& v) {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::string>) {
          out << quoted(v);
        } else if constexpr (std::is_same_v<T, bool>) {
          out << (v ? "true" : "false");
        } else if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>) {
          out << static_cast<int>(v);
        } else if constexpr (std::is_arithmetic_v<T>) {
          out << v;
        } else {
          out << "[" << gguf::to_string(value.array_type()) << " x " << v.size() << "]";
          if (v.empty()) return;
          out << " ";
          const size_t shown = v.size() < kShownElements ? v.size() : kShownElements;
          for (size_t i = 0; i < shown; ++i) {
            if (i) out << ", ";
            using E = typename T::value_type;
            if constexpr (std::is_same_v<E, gguf::Value> || std::is_same_v<E, std::string>)
              out << describe(gguf::Value(v[i]));
            else if constexpr (std::is_same_v<E, bool>)
              out << (v[i] ? "true" : "false");
            else if constexpr (sizeof(E) == 1)
              out << static_cast<int>(v[i]);
            else
              out << v[i];
          }
          if (shown < v.size()) out << ", ...";
        }
      },
      value.storage());
  return out.str();
}

void inspect(const std::string& path) {
  const gguf::File file = gguf::File::open(path);
  std::printf("file: %s\nversion: %u\nalignment: %llu\nsize: %llu bytes (tensor data at %llu)\n",
              path.c_str(), file.version(), static_cast<unsigned long long>(file.alignment()),
              static_cast<unsigned long long>(file.file_size()),
              static_cast<unsigned long long>(file.data_offset()));
  std::printf("\nmetadata (%zu):\n", file.metadata().size());
  for (const gguf::KeyValue& kv : file.metadata()) {
    const std::string type = kv.value.is_array() ? "array" : std::string(gguf::to_string(kv.value.type()));
    std::printf("  %-40s %-6s %s\n", kv.key.c_str(), type.c_str(), describe(kv.value).c_str());
  }
  std::printf("\ntensors (%zu):\n", file.tensors().size());
  std::printf("  %-40s %-8s %-24s %12s\n", "name", "type", "shape", "bytes");
  uint64_t total = 0;
  for (const gguf::TensorInfo& t : file.tensors()) {
    std::string shape = "[";
    for (size_t d = 0; d < t.dims.size(); ++d) shape += (d ? ", " : "") + std::to_string(t.dims[d]);
    shape += "]";
    std::printf("  %-40s %-8s %-24s %12llu\n", t.name.c_str(), std::string(name(t.dtype)).c_str(),
                shape.c_str(), static_cast<unsigned long long>(t.bytes));
    total += t.bytes;
  }
  std::printf("  total %llu bytes\n", static_cast<unsigned long long>(total));
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Print the header, metadata and tensor table of a GGUF file");
  auto path = std::make_shared<std::string>();
  cmd->add_option("file", *path, "GGUF file")->required();
  cmd->callback([path] { inspect(*path); });
}

}  // namespace metallic::cli
