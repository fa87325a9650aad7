// A small Llama-architecture model with random weights, built in memory, so the engine runs without a download.
#pragma once

#include <cstdint>
#include <memory>

#include "metallic/model/gguf.h"

namespace metallic {

/// A GGUF image (llama arch, 4 layers, hidden 256, GQA 8/4, vocab 512 with byte tokens, f32 weights drawn
/// from N(0, 0.02) with `seed`). Its output is meaningless text: it exists to exercise the engine.
std::shared_ptr<const gguf::File> builtin_model(uint64_t seed = 1);

}  // namespace metallic
