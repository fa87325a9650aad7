// libFuzzer entry for the GGUF reader: any input must either parse or raise metallic::Error; a crash, a
// sanitizer report, a hang or a huge allocation is a bug. A parsed file has every tensor byte and every
// metadata value touched, so out-of-range pointers show up under AddressSanitizer.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "metallic/core/error.h"
#include "metallic/model/gguf.h"

namespace {

size_t touch(const metallic::gguf::Value& value) {
  size_t sum =
      value.array_size() + static_cast<size_t>(value.type()) + static_cast<size_t>(value.array_type());
  if (const auto* strings = value.get_if<std::vector<std::string>>())
    for (const std::string& s : *strings) sum += s.size() ? static_cast<uint8_t>(s.back()) : 0;
  if (const auto* nested = value.get_if<std::vector<metallic::gguf::Value>>())
    for (const auto& element : *nested) sum += touch(element);
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = metallic::gguf::File::from_bytes(std::vector<uint8_t>(data, data + size));
    volatile size_t sink = 0;
    for (const auto& kv : file.metadata()) sink = sink + touch(kv.value) + kv.key.size();
    for (const auto& t : file.tensors()) {
      uint8_t acc = 0;
      for (uint64_t i = 0; i < t.bytes; ++i) acc ^= t.data[i];
      sink = sink + acc;
    }
    // The lookups used by model loaders must cope with whatever the file holds.
    try {
      sink = sink + file.get_string_array("tokenizer.ggml.tokens").size();
    } catch (const metallic::Error&) {
    }
    try {
      sink = sink + static_cast<size_t>(file.get_int("general.alignment"));
    } catch (const metallic::Error&) {
    }
  } catch (const metallic::Error&) {
  }
  return 0;
}
