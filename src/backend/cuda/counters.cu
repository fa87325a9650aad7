#include <memory>
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/counters.h"
#include "metallic/core/context.h"
#include "metallic/core/resource_cache.h"

namespace metallic::cuda {
namespace {

struct CountersKey {
  int device;
  int64_t count;
  std::string owner;
  bool operator==(const CountersKey&) const = default;
  size_t hash() const { return hash_fields(device, count, std::string_view(owner)); }
};

struct Counters {
  Tensor counters;
};

}  // namespace

int* zeroed_counters(const Tensor& like, int64_t needed, std::string_view owner, cudaStream_t stream) {
  int64_t count = 256;
  while (count < needed) count *= 2;
  auto& cache = like.context()->cache();
  const auto entry =
      cache.get_or_create<Counters>(CountersKey{like.device().index, count, std::string(owner)}, [&] {
        auto c = std::make_shared<Counters>();
        c->counters = Tensor::empty(like.context(), Shape{count}, DType::I32);
        MTL_CUDA_CHECK(cudaMemsetAsync(c->counters.data(), 0, count * sizeof(int), stream));
        return c;
      });
  return entry->counters.data_as<int>();  // the cache keeps the tensor alive
}

}  // namespace metallic::cuda
