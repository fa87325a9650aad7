#include "loading.h"

#include <chrono>
#include <climits>
#include <cstdio>
#include <sstream>

#include "metallic/core/error.h"
#include "metallic/model/synthetic.h"
#include "metallic/model/vocabulary.h"

namespace metallic::cli {

Device choose_device(const std::string& text) {
  if (!text.empty()) return Device::parse(text);
  return cuda_device_count() > 0 ? Device::cuda(0) : Device::cpu();
}

LoadedModel load_model(const std::string& path, const std::string& device) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModel m;
  m.context = Context::create(choose_device(device));
  int last = -1;
  auto progress = [&](int64_t done, int64_t total) {
    const int percent = total > 0 ? static_cast<int>(100 * done / total) : 100;
    if (percent == last) return;
    last = percent;
    const int filled = percent * 30 / 100;
    std::fprintf(stderr, "\rloading [%.*s%*s] %3d%%", filled, "##############################", 30 - filled,
                 "", percent);
    if (percent == 100) std::fprintf(stderr, "\n");
  };
  std::shared_ptr<const gguf::File> file;
  if (path.empty()) {
    std::fprintf(stderr,
                 "no model given (-m): using the built-in model with RANDOM weights; its text is noise\n");
    file = synthetic_model(SyntheticSpec::preset("builtin"), uniform_weight_type(DType::F32), 1);
    m.builtin = true;
  } else {
    file = std::make_shared<const gguf::File>(gguf::File::open(path));
  }
  m.model = Model::load(file, m.context, progress);
  m.tokenizer = std::make_shared<const Tokenizer>(vocabulary_from_gguf(*file));
  m.context->synchronize();
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

std::vector<int32_t> parse_token_ids(const std::string& text) {
  std::istringstream in(text);
  std::vector<int32_t> ids;
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    check(used == word.size() && v >= 0 && v <= INT32_MAX, ErrorCode::InvalidArgument, "'", word,
          "' is not a token id");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

double peak_mib(const Context& context) {
  return static_cast<double>(context.peak_allocated_bytes()) / (1 << 20);
}

}  // namespace metallic::cli
