#include "metallic/graph/command_buffer.h"

#include <gtest/gtest.h>

#include "metallic/ops/copy.h"
#include "metallic/ops/creation.h"
#include "metallic/ops/elementwise.h"
#include "test_support.h"

namespace metallic {
namespace {

class CommandBufferTest : public test::BackendTest {};

// One "step": y = (x * w + b) then x = y / 2, repeated; state lives in preallocated tensors.
struct Step {
  Tensor x, w, b, y;
  void record(CommandBuffer& cb) const {
    cb.record("mul", [this] { binary(BinaryOp::Mul, x, w, y); });
    cb.record("add", [this] { binary(BinaryOp::Add, y, b, y); });
    cb.record("halve", [this] { binary(BinaryOp::Div, y, 2.0, false, x); });
  }
};

TEST_P(CommandBufferTest, EagerCommitRunsInOrder) {
  Step s{full(ctx, {4}, 1.0), full(ctx, {4}, 3.0), full(ctx, {4}, 1.0), zeros(ctx, {4})};
  CommandBuffer cb(ctx);
  s.record(cb);
  EXPECT_EQ(cb.size(), 3u);
  cb.commit();
  cb.wait();
  EXPECT_EQ(s.x.to_vector<float>(), std::vector<float>(4, 2.f));  // (1*3+1)/2
  cb.commit();
  cb.wait();
  EXPECT_EQ(s.x.to_vector<float>(), std::vector<float>(4, 3.5f));  // (2*3+1)/2
}

TEST_P(CommandBufferTest, CapturedReplayIsBitIdenticalToEager) {
  const Shape shape{3, 257};
  auto make = [&] {
    return Step{uniform(ctx, shape, 1, -1, 1), uniform(ctx, shape, 2, 0.5, 1.5), uniform(ctx, {257}, 3),
                zeros(ctx, shape)};
  };
  const Step eager = make(), replayed = make();
  CommandBuffer a(ctx), b(ctx);
  eager.record(a);
  replayed.record(b);
  b.capture();
  EXPECT_EQ(b.captured(), ctx->device().is_cuda());
  for (int i = 0; i < 5; ++i) {
    a.commit();
    b.commit();
  }
  a.wait();
  b.wait();
  EXPECT_EQ(eager.x.to_vector<float>(), replayed.x.to_vector<float>());
  EXPECT_EQ(eager.y.to_vector<float>(), replayed.y.to_vector<float>());
  // Capture only records: five replays moved the state exactly five steps from the start.
  const Step fresh = make();
  CommandBuffer c(ctx);
  fresh.record(c);
  for (int i = 0; i < 5; ++i) c.commit();
  c.wait();
  EXPECT_EQ(fresh.x.to_vector<float>(), replayed.x.to_vector<float>());
}

TEST_P(CommandBufferTest, RecordingRules) {
  CommandBuffer cb(ctx);
  EXPECT_METALLIC_ERROR(cb.record("nothing", nullptr), ErrorCode::InvalidArgument);
  const Tensor t = zeros(ctx, {2});
  cb.record("fill", [t] { fill(t, 1.0); });
  cb.capture();
  if (cb.captured())
    EXPECT_METALLIC_ERROR(cb.record("late", [t] { fill(t, 2.0); }), ErrorCode::InvalidArgument);
  cb.clear();
  EXPECT_EQ(cb.size(), 0u);
  EXPECT_FALSE(cb.captured());
  // A failing op raises its own error (while capturing on CUDA) and leaves the stream usable.
  cb.record("bad", [t] { binary(BinaryOp::Add, t, t, Tensor()); });
  if (ctx->device().is_cuda())
    EXPECT_METALLIC_ERROR(cb.capture(), ErrorCode::InvalidArgument);
  else
    EXPECT_METALLIC_ERROR(cb.commit(), ErrorCode::InvalidArgument);
  EXPECT_FALSE(cb.captured());
  fill(t, 4.0);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(2, 4.f));
}

INSTANTIATE_TEST_SUITE_P(Cpu, CommandBufferTest, ::testing::Values(Device::cpu()));
INSTANTIATE_TEST_SUITE_P(Cuda, CommandBufferTest, ::testing::Values(Device::cuda()));

}  // namespace
}  // namespace metallic
