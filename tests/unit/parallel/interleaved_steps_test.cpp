// The interleaved schedule's steps (parallel::interleaved_steps) walked for every stage of many
// layouts at once, without MPI: every message a stage sends is the one its neighbour's receive
// expects, every forward and backward finds its buffer already received, and the ring completes
// under blocking point-to-point messages -- a send done only once its receive is posted (NCCL;
// large MPI messages), and eager sends (small MPI messages) -- so a layout the real rings of
// parallel_mpi_test do not run cannot deadlock either.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/error.h"
#include "parallel/pipeline_schedule.h"

namespace spin::parallel {
namespace {

using A = PipelineAction;

// A message's place: which ring direction from which stage, and its index in that stream.
struct Message {
  bool gradient;
  int from;
  int index;
  auto operator<=>(const Message&) const = default;
};

struct Layout {
  int stages, chunks, micro_batches;
  bool forward_only;
  std::string name() const {
    return "p " + std::to_string(stages) + ", v " + std::to_string(chunks) + ", m " + std::to_string(micro_batches) +
           (forward_only ? " (forwards only)" : "");
  }
};

class Ring {
 public:
  explicit Ring(const Layout& layout) : layout_(layout) {
    for (int s = 0; s < layout.stages; ++s) {
      steps_.push_back(interleaved_steps(s, layout.stages, layout.chunks, layout.micro_batches, layout.forward_only));
    }
  }

  // Every send's payload (the virtual stage and micro-batch it comes from) is what the matching
  // receive expects, and nothing is left unmatched.
  void expect_messages_match() const {
    const int p = layout_.stages, v = layout_.chunks;
    for (const bool gradient : {false, true}) {
      for (int from = 0; from < p; ++from) {
        const int to = gradient ? (from + p - 1) % p : (from + 1) % p;
        std::vector<A> sent, expected;
        for (const InterleavedStep& step : steps_[static_cast<std::size_t>(from)]) {
          if (!gradient && step.send_output) {
            // The receiver's forward this output feeds: the same chunk, or round the ring the next.
            sent.push_back({A::Forward, step.forward->micro_batch, step.forward->chunk + (from == p - 1 ? 1 : 0)});
          }
          if (gradient && step.send_grad) {
            sent.push_back({A::Backward, step.backward->micro_batch, step.backward->chunk - (from == 0 ? 1 : 0)});
          }
        }
        for (const InterleavedStep& step : steps_[static_cast<std::size_t>(to)]) {
          const std::optional<A>& r = gradient ? step.receive_grad : step.receive_input;
          if (r) expected.push_back(*r);
        }
        EXPECT_EQ(sent, expected) << layout_.name() << (gradient ? ": gradients" : ": activations") << " from stage "
                                  << from;
        for (const A& a : sent) {
          EXPECT_TRUE(a.chunk >= 0 && a.chunk < v) << layout_.name();
        }
      }
    }
  }

  // Each forward (backward) that is not the model's first (last) takes a buffer received in an
  // earlier step's exchange. `why`: the first that does not (empty when all do); `most`: the most
  // buffers a stage held at once.
  struct Buffers {
    std::string why;
    int most = 0;
  };
  Buffers buffers_arrive_first() const {
    const int p = layout_.stages, v = layout_.chunks;
    Buffers r;
    for (int s = 0; s < p; ++s) {
      std::map<std::tuple<bool, int, int>, int> held;  // (gradient, chunk, micro-batch) -> buffers
      int live = 0;
      const auto take = [&](bool gradient, const A& a) {
        if (held[{gradient, a.chunk, a.micro_batch}]-- != 1 && r.why.empty()) {
          r.why = layout_.name() + ": stage " + std::to_string(s) + (gradient ? " backward" : " forward") + " mb " +
                  std::to_string(a.micro_batch) + " chunk " + std::to_string(a.chunk) + " has no buffer";
        }
        --live;
      };
      const auto receive = [&](bool gradient, const A& a) {
        ++held[{gradient, a.chunk, a.micro_batch}];
        r.most = std::max(r.most, ++live);
      };
      for (const InterleavedStep& step : steps_[static_cast<std::size_t>(s)]) {
        if (step.forward && !(s == 0 && step.forward->chunk == 0)) take(false, *step.forward);
        if (step.backward && !(s == p - 1 && step.backward->chunk == v - 1)) take(true, *step.backward);
        if (step.receive_input) receive(false, *step.receive_input);
        if (step.receive_grad) receive(true, *step.receive_grad);
      }
    }
    return r;
  }

  // Runs the ring's exchanges under blocking messages: a stage finishes its current step's
  // exchange once each receive's send is posted and (unless `eager`) each send's receive. True
  // when every stage gets through all its steps.
  bool completes(bool eager) const {
    const int p = layout_.stages;
    // Where each message is posted: (stage, step) of its send and of its receive.
    std::map<Message, int> send_step, receive_step;
    std::vector<std::vector<std::vector<std::pair<Message, bool>>>> ops(static_cast<std::size_t>(p));  // (msg, is_send)
    for (int s = 0; s < p; ++s) {
      std::map<std::pair<bool, int>, int> sends, receives;  // (gradient, peer) -> messages so far
      const int next = (s + 1) % p, prev = (s + p - 1) % p;
      for (const InterleavedStep& step : steps_[static_cast<std::size_t>(s)]) {
        auto& here = ops[static_cast<std::size_t>(s)].emplace_back();
        const int at = static_cast<int>(ops[static_cast<std::size_t>(s)].size()) - 1;
        auto add = [&](bool gradient, int from, bool is_send, int peer) {
          auto& counter = is_send ? sends : receives;
          const Message m{gradient, from, counter[{gradient, peer}]++};
          (is_send ? send_step : receive_step)[m] = at;
          here.push_back({m, is_send});
        };
        if (step.send_output) add(false, s, true, next);
        if (step.send_grad) add(true, s, true, prev);
        if (step.receive_input) add(false, prev, false, prev);
        if (step.receive_grad) add(true, next, false, next);
      }
    }
    std::vector<int> at(static_cast<std::size_t>(p), 0);  // each stage's current step
    auto posted = [&](const Message& m, bool send) {
      const auto& where = send ? send_step : receive_step;
      const auto it = where.find(m);
      if (it == where.end()) return false;
      const int stage = send ? m.from : (m.gradient ? (m.from + p - 1) % p : (m.from + 1) % p);
      return at[static_cast<std::size_t>(stage)] >= it->second;
    };
    for (bool progress = true; progress;) {
      progress = false;
      for (int s = 0; s < p; ++s) {
        auto& cur = at[static_cast<std::size_t>(s)];
        const auto& mine = ops[static_cast<std::size_t>(s)];
        while (cur < static_cast<int>(mine.size())) {
          bool done = true;
          for (const auto& [m, is_send] : mine[static_cast<std::size_t>(cur)]) {
            if (is_send && eager) continue;
            done = done && posted(m, !is_send);
          }
          if (!done) break;
          ++cur;
          progress = true;
        }
      }
    }
    for (int s = 0; s < p; ++s) {
      if (at[static_cast<std::size_t>(s)] != static_cast<int>(ops[static_cast<std::size_t>(s)].size())) return false;
    }
    return true;
  }

  const std::vector<InterleavedStep>& steps(int stage) const { return steps_[static_cast<std::size_t>(stage)]; }
  void replace(int stage, std::vector<InterleavedStep> steps) {
    steps_[static_cast<std::size_t>(stage)] = std::move(steps);
  }

 private:
  Layout layout_;
  std::vector<std::vector<InterleavedStep>> steps_;
};

TEST(InterleavedSteps, GroupsAreStagesOrTheSmallestWhoseLastGroupFillsThePipeline) {
  EXPECT_EQ(interleaved_group(4, 8), 4);
  EXPECT_EQ(interleaved_group(4, 4), 4);
  EXPECT_EQ(interleaved_group(4, 6), 6);   // 4 + 2 and 5 + 1 leave too few; one group
  EXPECT_EQ(interleaved_group(4, 9), 5);   // 5 + 4
  EXPECT_EQ(interleaved_group(4, 13), 7);  // 4, 5 and 6 leave 1, 3 and 1; 7 + 6
  EXPECT_EQ(interleaved_group(2, 7), 4);   // 2 and 3 leave 1; 4 + 3
  EXPECT_THROW(interleaved_group(4, 3), Error);
}

TEST(InterleavedSteps, TablesTakeTheLastGroupWhole) {
  // Megatron's example: p 2, v 2, N 3, m 5.
  const std::vector<A> table = interleaved_table(3, 2, 5, A::Forward);
  std::vector<std::pair<int, int>> got;
  for (const A& a : table) got.push_back({a.micro_batch, a.chunk});
  EXPECT_EQ(got, (std::vector<std::pair<int, int>>{
                     {0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}, {3, 0}, {4, 0}, {3, 1}, {4, 1}}));
}

TEST(InterleavedSteps, EveryLayoutMatchesItsMessagesHoldsItsBuffersAndCompletes) {
  int layouts = 0;
  for (int p = 2; p <= 5; ++p) {
    for (int v = 1; v <= 4; ++v) {
      for (int m = p; m <= 4 * p + 1; ++m) {
        const Layout layout{p, v, m, false};
        const Ring ring(layout);
        ring.expect_messages_match();
        const Ring::Buffers buffers = ring.buffers_arrive_first();
        EXPECT_EQ(buffers.why, "");
        EXPECT_LE(buffers.most, 2 * v * m) << layout.name();
        EXPECT_TRUE(ring.completes(false)) << layout.name() << " deadlocks with rendezvous sends";
        EXPECT_TRUE(ring.completes(true)) << layout.name() << " deadlocks with eager sends";
        for (int s = 0; s < p; ++s) {
          // Every forward and backward once, in the table's order, the warm-up's forwards first.
          const std::vector<A> order = interleaved_order(s, p, v, m);
          const int group = interleaved_group(p, m);
          std::vector<A> forwards, backwards;
          for (const A& a : order) (a.kind == A::Forward ? forwards : backwards).push_back(a);
          EXPECT_EQ(forwards, interleaved_table(group, v, m, A::Forward)) << layout.name();
          EXPECT_EQ(backwards, interleaved_table(group, v, m, A::Backward)) << layout.name();
          const int warmup = interleaved_warmup(s, p, v, m);
          for (int i = 0; i < warmup; ++i) {
            EXPECT_EQ(order[static_cast<std::size_t>(i)].kind, A::Forward) << layout.name();
          }
          // Activations held: at most warm-up + 1, as the memory plan counts.
          int live = 0, peak = 0;
          for (const A& a : order) peak = std::max(peak, live += a.kind == A::Forward ? 1 : -1);
          EXPECT_EQ(peak, std::min(warmup + 1, v * m)) << layout.name() << ", stage " << s;
        }
        ++layouts;
      }
    }
  }
  EXPECT_EQ(layouts, 200);
}

TEST(InterleavedSteps, ForwardsOnlyOfAnyNumberOfMicroBatchesComplete) {
  for (int p = 2; p <= 5; ++p) {
    for (int v = 1; v <= 4; ++v) {
      for (int m = 0; m <= 3 * p + 1; ++m) {
        const Layout layout{p, v, m, true};
        const Ring ring(layout);
        ring.expect_messages_match();
        EXPECT_EQ(ring.buffers_arrive_first().why, "");
        EXPECT_TRUE(ring.completes(false)) << layout.name() << " deadlocks with rendezvous sends";
        EXPECT_TRUE(ring.completes(true)) << layout.name() << " deadlocks with eager sends";
      }
    }
  }
}

// The walk itself fails a schedule that is wrong: the first stage's round-the-ring receives moved
// `shift` exchanges earlier (< 0) or later.
Ring with_round_trip_receives_moved(const Layout& layout, int shift) {
  Ring ring(layout);
  std::vector<InterleavedStep> steps = ring.steps(0);
  std::vector<std::optional<A>> receives(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) receives[i] = std::exchange(steps[i].receive_input, std::nullopt);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    if (!receives[i]) continue;
    const auto to = static_cast<std::size_t>(std::max(0, static_cast<int>(i) + shift));
    EXPECT_TRUE(to < steps.size() && !steps[to].receive_input);
    steps[std::min(to, steps.size() - 1)].receive_input = receives[i];
  }
  ring.replace(0, steps);
  return ring;
}

TEST(InterleavedSteps, TheWalkCatchesMisplacedReceives) {
  const Layout layout{4, 2, 8, false};
  const Ring right = with_round_trip_receives_moved(layout, 0);
  EXPECT_TRUE(right.completes(false));
  EXPECT_EQ(right.buffers_arrive_first().why, "");
  // One exchange late: the first chunk-1 forward finds no input (groups of p leave no slack).
  EXPECT_NE(with_round_trip_receives_moved(layout, 1).buffers_arrive_first().why, "");
  // Two early: the first stage waits on a send the last stage makes only once the first stage's next
  // outputs have gone round -- with rendezvous and with eager sends alike. (One early still goes
  // through: the stages between are then one exchange behind, which the sends allow.)
  const Ring early = with_round_trip_receives_moved(layout, -2);
  EXPECT_FALSE(early.completes(false));
  EXPECT_FALSE(early.completes(true));
}

}  // namespace
}  // namespace spin::parallel
