#include "metallic/model/generator.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "metallic/core/context.h"
#include "metallic/core/error.h"

namespace metallic {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Holds back the tail of the text that could still grow into a stop string, so that a stop string is
// never streamed out before it is recognised.
class StopFilter {
 public:
  explicit StopFilter(const std::vector<std::string>& stops) : stops_(stops) {}

  // Adds text; returns what is safe to emit. Sets stopped() when a stop string completed.
  std::string push(std::string_view text) {
    pending_ += text;
    size_t cut = std::string::npos;
    for (const std::string& s : stops_)
      if (!s.empty()) cut = std::min(cut, pending_.find(s));
    if (cut != std::string::npos) {
      stopped_ = true;
      std::string out = pending_.substr(0, cut);
      pending_.clear();
      return out;
    }
    size_t keep = 0;  // longest suffix of pending_ that is a proper prefix of a stop string
    for (const std::string& s : stops_)
      for (size_t n = std::min(s.size() - 1, pending_.size()); n > keep; --n)
        if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
          keep = n;
          break;
        }
    std::string out = pending_.substr(0, pending_.size() - keep);
    pending_.erase(0, pending_.size() - keep);
    return out;
  }
  std::string flush() { return std::exchange(pending_, {}); }
  bool stopped() const { return stopped_; }

 private:
  const std::vector<std::string>& stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace

Session::Session(std::shared_ptr<const Model> model, std::shared_ptr<const Tokenizer> tokenizer,
                 int64_t context)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)), cache_(model_->make_cache(context)) {
  check(tokenizer_->size() <= model_->config().n_vocab, ErrorCode::Format, "session: the tokenizer has ",
        tokenizer_->size(), " tokens but the model's vocabulary only ", model_->config().n_vocab);
}

Tensor Session::feed(std::span<const int32_t> ids) {
  Tensor logits = model_->prefill(ids, cache_, batch_);
  history_.insert(history_.end(), ids.begin(), ids.end());
  return logits;
}

void Session::set_batch(int64_t batch) {
  check(batch > 0, ErrorCode::InvalidArgument, "session: the prompt batch must be positive, got ", batch);
  batch_ = batch;
}

DecodeStep& Session::step(const SamplerOptions& options) {
  if (!step_ || step_->options() != options) step_ = std::make_unique<DecodeStep>(model_, options);
  return *step_;
}

std::vector<int32_t> Session::generate(std::span<const int32_t> prompt, const GenerationOptions& options,
                                       const TextCallback& on_text, GenerationStats* stats) {
  check(!prompt.empty(), ErrorCode::InvalidArgument, "generate: empty prompt");
  check(options.max_tokens >= 0, ErrorCode::InvalidArgument, "generate: negative token count");
  // Reuse the cached prefix; at least one prompt token is evaluated to get fresh logits.
  size_t common = 0;
  while (common < history_.size() && common < prompt.size() && history_[common] == prompt[common]) ++common;
  common = std::min(common, prompt.size() - 1);
  cache_.truncate(static_cast<int64_t>(common));
  history_.resize(common);
  const auto suffix = prompt.subspan(common);
  cache_.reserve(static_cast<int64_t>(suffix.size()) + std::max<int64_t>(options.max_tokens - 1, 0));

  std::vector<int32_t> stops = options.stop_tokens;
  if (!options.ignore_eos) {
    for (auto id : {tokenizer_->eos(), tokenizer_->eot()})
      if (id) stops.push_back(*id);
  }
  DecodeStep& decode = step(options.sampler);
  StreamDecoder decoder(*tokenizer_, true);
  StopFilter filter(options.stop_strings);
  GenerationStats local;
  GenerationStats& s = stats ? *stats : local;
  s = {};
  s.prompt_tokens = static_cast<int64_t>(suffix.size());
  s.stop_reason = "length";

  auto start = std::chrono::steady_clock::now();
  int32_t token = decode.sample(feed(suffix), history_);
  s.prompt_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  std::vector<int32_t> out;
  auto emit = [&](const std::string& text) { return text.empty() || !on_text || on_text(text); };
  while (static_cast<int64_t>(out.size()) < options.max_tokens) {
    if (std::find(stops.begin(), stops.end(), token) != stops.end()) {
      s.stop_reason = "eos";
      break;
    }
    out.push_back(token);
    const std::string text = filter.push(decoder.feed(token));
    if (!emit(text)) {
      s.stop_reason = "callback";
      break;
    }
    if (filter.stopped()) {
      s.stop_reason = "stop string";
      break;
    }
    if (static_cast<int64_t>(out.size()) == options.max_tokens) break;
    history_.push_back(token);
    token = decode.next(token, history_, cache_);
  }
  if (!filter.stopped() && s.stop_reason != "callback") emit(filter.push(decoder.flush()) + filter.flush());
  // The last sampled token was never evaluated: the cache holds everything before it.
  s.generated_tokens = static_cast<int64_t>(out.size());
  s.decode_seconds = seconds_since(start);
  return out;
}

}  // namespace metallic
