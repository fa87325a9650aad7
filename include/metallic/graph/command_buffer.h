// Recording a sequence of bound ops and running it eagerly or, on CUDA, as a replayed graph.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace metallic {

class Context;

/// An op bound to its tensors: calling it queues the op's kernels on its context's stream.
/// The callable must write only into tensors allocated before recording (no allocation, no host sync),
/// which is what makes it capturable.
struct Operation {
  std::string name;
  std::function<void()> run;
};

/// An ordered list of Operations for one context. commit() queues them on the context's stream;
/// wait() blocks until they are done. After capture() (CUDA), commit() replays one CUDA graph instead
/// of launching each kernel, with bit-identical results; on the CPU capture() keeps eager execution.
class CommandBuffer {
 public:
  explicit CommandBuffer(std::shared_ptr<Context> context);

  /// Appends `op`; InvalidArgument once captured (the graph would no longer match).
  void record(Operation op);
  /// Shorthand for record({name, run}).
  void record(std::string name, std::function<void()> run) {
    record(Operation{std::move(name), std::move(run)});
  }
  /// Number of recorded ops.
  size_t size() const { return ops_.size(); }
  /// Queues the recorded ops (or the captured graph) on the stream.
  void commit();
  /// Blocks until all committed work is done.
  void wait();
  /// Records the ops into a CUDA graph for replay; an op that fails while captured raises its error
  /// and leaves the buffer uncaptured.
  void capture();
  /// Whether commit() replays a captured graph.
  bool captured() const { return executable_ != nullptr; }
  /// Forgets the recorded ops and any captured graph.
  void clear();

 private:
  std::shared_ptr<Context> context_;
  std::vector<Operation> ops_;
  std::shared_ptr<void> executable_;
};

}  // namespace metallic
