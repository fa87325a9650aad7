#include "metallic/core/dtype.h"

#include <array>

#include "metallic/core/error.h"

namespace metallic {
namespace {

// Block sizes and bytes follow ggml's type traits (ggml.c) so GGUF tensor sizes come out exact; the two
// grouped types last are eight of their base type's blocks.
constexpr std::array<DTypeInfo, kDTypeCount> kInfo = {{
    {"f32", 1, 4, 0, true},          {"f16", 1, 2, 1, true},          {"bf16", 1, 2, 30, true},
    {"f64", 1, 8, 28, true},         {"i8", 1, 1, 24, false},         {"i16", 1, 2, 25, false},
    {"i32", 1, 4, 26, false},        {"i64", 1, 8, 27, false},        {"u8", 1, 1, -1, false},
    {"q4_0", 32, 18, 2, false},      {"q4_1", 32, 20, 3, false},      {"q5_0", 32, 22, 6, false},
    {"q5_1", 32, 24, 7, false},      {"q8_0", 32, 34, 8, false},      {"q8_1", 32, 36, 9, false},
    {"q2_k", 256, 84, 10, false},    {"q3_k", 256, 110, 11, false},   {"q4_k", 256, 144, 12, false},
    {"q5_k", 256, 176, 13, false},   {"q6_k", 256, 210, 14, false},   {"q8_k", 256, 292, 15, false},
    {"iq2_xxs", 256, 66, 16, false}, {"iq2_xs", 256, 74, 17, false},  {"iq3_xxs", 256, 98, 18, false},
    {"iq1_s", 256, 50, 19, false},   {"iq4_nl", 32, 18, 20, false},   {"iq3_s", 256, 110, 21, false},
    {"iq2_s", 256, 82, 22, false},   {"iq4_xs", 256, 136, 23, false}, {"iq1_m", 256, 56, 29, false},
    {"tq1_0", 256, 54, 34, false},   {"tq2_0", 256, 66, 35, false},   {"mxfp4", 32, 17, 39, false},
    {"q4_0x8", 256, 144, -1, false}, {"q8_0x8", 256, 272, -1, false},
}};

}  // namespace

const DTypeInfo& info(DType dtype) {
  const auto index = static_cast<size_t>(dtype);
  check(index < kInfo.size(), ErrorCode::InvalidArgument, "unknown dtype value ", index);
  return kInfo[index];
}

int64_t storage_bytes(DType dtype, int64_t elements) {
  const DTypeInfo& i = info(dtype);
  check(elements >= 0 && elements % i.block_size == 0, ErrorCode::InvalidArgument,
        "storage_bytes: ", elements, " elements of ", i.name, " is not a multiple of its block size ",
        i.block_size);
  return elements / i.block_size * i.block_bytes;
}

std::optional<DType> dtype_from_ggml(int ggml_type) {
  for (size_t t = 0; t < kInfo.size(); ++t)
    if (kInfo[t].ggml_type == ggml_type) return static_cast<DType>(t);
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (size_t t = 0; t < kInfo.size(); ++t)
    if (kInfo[t].name == name) return static_cast<DType>(t);
  return std::nullopt;
}

}  // namespace metallic
