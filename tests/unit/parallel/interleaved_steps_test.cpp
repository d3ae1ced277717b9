// The interleaved schedule's steps (parallel::interleaved_steps) walked for every stage of many
// layouts at once, without MPI: every message a stage sends is the one its neighbour's receive
// expects, every forward and backward finds its buffer already received, and the ring completes
// under blocking point-to-point messages -- a send done only once its receive is posted (NCCL;
// large MPI messages), and eager sends (small MPI messages) -- so a layout the real rings of
// parallel_mpi_test do not run cannot deadlock either.
#include <gtest/gtest.h>

#include <algorithm>
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

  // Stage s's pass (interleaved_pass, or `pass` when given) computes only with buffers whose
  // receive it has waited for, and never while a send of what the same kind of computation
  // returns is in flight (the next forward may overwrite the last output, the next backward the last
  // input gradient); nothing is left in flight at the end. The first violation, or "".
  std::string pass_respects_buffers(int s, bool overlap, std::optional<std::vector<PassAction>> pass = {}) const {
    const int p = layout_.stages, v = layout_.chunks;
    const std::vector<InterleavedStep>& st = steps(s);
    if (!pass) pass = interleaved_pass(st, overlap);
    std::map<std::tuple<bool, int, int>, bool> received;  // (gradient, chunk, mb) -> waited for
    std::map<bool, int> sending;                          // gradient -> sends in flight
    std::vector<std::tuple<bool, int, int>> posted[2];    // receives posted, not waited for, by kind
    const auto where = [&](const PassAction& a) {
      return layout_.name() + ": stage " + std::to_string(s) + " step " + std::to_string(a.step) + ": ";
    };
    for (const PassAction& a : *pass) {
      const InterleavedStep& step = st[static_cast<std::size_t>(a.step)];
      const bool activations = a.transfers != PassAction::Gradients, gradients = a.transfers != PassAction::Activations;
      if (a.kind == PassAction::Post) {
        if (activations && step.send_output) ++sending[false];
        if (gradients && step.send_grad) ++sending[true];
        if (activations && step.receive_input) {
          posted[0].push_back({false, step.receive_input->chunk, step.receive_input->micro_batch});
        }
        if (gradients && step.receive_grad) {
          posted[1].push_back({true, step.receive_grad->chunk, step.receive_grad->micro_batch});
        }
      } else if (a.kind == PassAction::Wait) {
        for (const bool gradient : {false, true}) {
          if (gradient ? !gradients : !activations) continue;
          sending[gradient] = 0;
          for (const auto& r : posted[gradient]) received[r] = true;
          posted[gradient].clear();
        }
      } else {
        const bool backward = a.kind == PassAction::Backward;
        const A& c = backward ? *step.backward : *step.forward;
        if (sending[backward] > 0) return where(a) + "computes while its last result is being sent";
        const bool needs = backward ? !(s == p - 1 && c.chunk == v - 1) : !(s == 0 && c.chunk == 0);
        if (needs && !received[{backward, c.chunk, c.micro_batch}]) return where(a) + "uses a buffer not yet received";
      }
    }
    if (sending[false] + sending[true] > 0 || !posted[0].empty() || !posted[1].empty()) {
      return layout_.name() + ": stage " + std::to_string(s) + " ends with transfers in flight";
    }
    return "";
  }

  // Runs every stage's interleaved_pass (overlapped or not) under a model of the transport, in
  // which a Wait returns once every transfer it waits for has completed. True when every stage
  // gets through its whole pass.
  //   Eager: a send completes when posted (small MPI messages), a receive once its send is posted.
  //   Rendezvous: each transfer once both its send and its receive are posted (large MPI messages).
  //   OrderedGroups: NCCL -- each post is a group, a stage's groups run one after another in the
  //   order posted, and a transfer completes once the groups holding its send and its receive are
  //   both running.
  enum class Transport { Eager, Rendezvous, OrderedGroups };
  bool completes(Transport transport, bool overlap) const {
    const int p = layout_.stages;
    struct Op {
      Message message;
      bool is_send;
    };
    struct Group {
      PassAction::Transfers transfers;
      std::vector<Op> ops;
      std::vector<bool> done;
      bool waited = false;
      bool complete() const { return std::find(done.begin(), done.end(), false) == done.end(); }
    };
    struct Stage {
      std::vector<PassAction> pass;
      std::size_t at = 0;                                   // the next action
      std::vector<Group> groups;                            // posted so far
      std::map<std::pair<bool, int>, int> sends, receives;  // (gradient, peer) -> messages so far
    };
    std::vector<Stage> stages(static_cast<std::size_t>(p));
    for (int s = 0; s < p; ++s) {
      const auto& given = passes_[static_cast<std::size_t>(s)];
      stages[static_cast<std::size_t>(s)].pass = given ? *given : interleaved_pass(steps(s), overlap);
    }
    // Where each message's send and receive are posted: (stage, group, op).
    std::map<std::pair<Message, bool>, std::tuple<int, std::size_t, std::size_t>> where;
    const auto post = [&](int s, const InterleavedStep& step, PassAction::Transfers transfers) {
      Stage& st = stages[static_cast<std::size_t>(s)];
      Group& g = st.groups.emplace_back(Group{transfers, {}, {}});
      const int next = (s + 1) % p, prev = (s + p - 1) % p;
      const bool activations = transfers != PassAction::Gradients, gradients = transfers != PassAction::Activations;
      const auto add = [&](bool gradient, int from, bool is_send, int peer) {
        auto& counter = is_send ? st.sends : st.receives;
        const Message m{gradient, from, counter[{gradient, peer}]++};
        where[{m, is_send}] = {s, st.groups.size() - 1, g.ops.size()};
        g.ops.push_back({m, is_send});
        g.done.push_back(false);
      };
      if (activations && step.send_output) add(false, s, true, next);
      if (gradients && step.send_grad) add(true, s, true, prev);
      if (activations && step.receive_input) add(false, prev, false, prev);
      if (gradients && step.receive_grad) add(true, next, false, next);
    };
    // Whether group g of stage s is running: posted and, under NCCL, every earlier one complete.
    const auto running = [&](int s, std::size_t g) {
      const Stage& st = stages[static_cast<std::size_t>(s)];
      if (g >= st.groups.size()) return false;
      if (transport != Transport::OrderedGroups) return true;
      for (std::size_t e = 0; e < g; ++e) {
        if (!st.groups[e].complete()) return false;
      }
      return true;
    };
    for (bool progress = true; progress;) {
      progress = false;
      for (int s = 0; s < p; ++s) {
        Stage& st = stages[static_cast<std::size_t>(s)];
        // Transfers that complete now.
        for (std::size_t g = 0; g < st.groups.size(); ++g) {
          if (!running(s, g)) continue;
          Group& group = st.groups[g];
          for (std::size_t o = 0; o < group.ops.size(); ++o) {
            if (group.done[o]) continue;
            const Op& op = group.ops[o];
            bool complete = op.is_send && transport == Transport::Eager;
            const auto partner = where.find({op.message, !op.is_send});
            if (partner != where.end()) {
              const auto [ps, pg, po] = partner->second;
              complete = complete || transport != Transport::OrderedGroups || running(ps, pg);
              if (complete && transport != Transport::Eager) {
                stages[static_cast<std::size_t>(ps)].groups[pg].done[po] = true;
              }
            }
            if (complete) {
              group.done[o] = true;
              progress = true;
            }
          }
        }
        // The stage's actions up to the next Wait that cannot return.
        while (st.at < st.pass.size()) {
          const PassAction& a = st.pass[st.at];
          if (a.kind == PassAction::Post) {
            post(s, steps(s)[static_cast<std::size_t>(a.step)], a.transfers);
          } else if (a.kind == PassAction::Wait) {
            bool ready = true;
            for (const Group& g : st.groups) ready = ready && (g.waited || g.transfers != a.transfers || g.complete());
            if (!ready) break;
            for (Group& g : st.groups) g.waited = g.waited || g.transfers == a.transfers;
          }
          ++st.at;
          progress = true;
        }
      }
    }
    for (const Stage& st : stages) {
      if (st.at != st.pass.size()) return false;
    }
    return true;
  }

  const std::vector<InterleavedStep>& steps(int stage) const { return steps_[static_cast<std::size_t>(stage)]; }
  void replace(int stage, std::vector<InterleavedStep> steps) {
    steps_[static_cast<std::size_t>(stage)] = std::move(steps);
  }
  // completes() walks `pass` for the stage instead of its interleaved_pass.
  void replace_pass(int stage, std::vector<PassAction> pass) {
    passes_[static_cast<std::size_t>(stage)] = std::move(pass);
  }

 private:
  Layout layout_;
  std::vector<std::vector<InterleavedStep>> steps_;
  std::vector<std::optional<std::vector<PassAction>>> passes_ =
      std::vector<std::optional<std::vector<PassAction>>>(static_cast<std::size_t>(layout_.stages));
};

// The ring completes under every transport, its transfers overlapped and not, and each stage's
// pass uses only buffers that have arrived.
void expect_completes_and_respects_buffers(const Ring& ring, const Layout& layout) {
  using T = Ring::Transport;
  for (const bool overlap : {false, true}) {
    const std::string how = overlap ? " (overlapped)" : "";
    EXPECT_TRUE(ring.completes(T::Rendezvous, overlap)) << layout.name() << how << " deadlocks with rendezvous sends";
    EXPECT_TRUE(ring.completes(T::Eager, overlap)) << layout.name() << how << " deadlocks with eager sends";
    EXPECT_TRUE(ring.completes(T::OrderedGroups, overlap)) << layout.name() << how << " deadlocks under NCCL";
    for (int s = 0; s < layout.stages; ++s) EXPECT_EQ(ring.pass_respects_buffers(s, overlap), "");
  }
}

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
        expect_completes_and_respects_buffers(ring, layout);
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
        expect_completes_and_respects_buffers(ring, layout);
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
  EXPECT_TRUE(right.completes(Ring::Transport::Rendezvous, false));
  EXPECT_EQ(right.buffers_arrive_first().why, "");
  // One exchange late: the first chunk-1 forward finds no input (groups of p leave no slack).
  EXPECT_NE(with_round_trip_receives_moved(layout, 1).buffers_arrive_first().why, "");
  // Two early: the first stage waits on a send the last stage makes only once the first stage's next
  // outputs have gone round -- with rendezvous and with eager sends alike. (One early still goes
  // through: the stages between are then one exchange behind, which the sends allow.)
  const Ring early = with_round_trip_receives_moved(layout, -2);
  EXPECT_FALSE(early.completes(Ring::Transport::Rendezvous, false));
  EXPECT_FALSE(early.completes(Ring::Transport::Eager, false));
  EXPECT_FALSE(early.completes(Ring::Transport::OrderedGroups, false));
}

TEST(InterleavedSteps, OverlappedPassesWaitBeforeEveryUseAndTheWalkCatchesAMissingWait) {
  const Layout layout{4, 2, 8, false};
  const Ring ring(layout);
  for (int s = 0; s < layout.stages; ++s) {
    // Activations travel during the backward: a stage's steady steps post them between its
    // forward and its backward.
    const std::vector<PassAction> pass = interleaved_pass(ring.steps(s), true);
    bool posted_between = false;
    for (std::size_t i = 1; i + 1 < pass.size(); ++i) {
      posted_between =
          posted_between || (pass[i - 1].kind == PassAction::Forward && pass[i].kind == PassAction::Post &&
                             pass[i].transfers == PassAction::Activations && pass[i + 1].kind == PassAction::Wait &&
                             pass[i + 1].transfers == PassAction::Gradients);
    }
    EXPECT_TRUE(posted_between) << "stage " << s;
    // Each wait dropped in turn: some computation then uses a buffer not yet received, or
    // overwrites one being sent, or the pass ends with transfers in flight.
    for (std::size_t i = 0; i < pass.size(); ++i) {
      if (pass[i].kind != PassAction::Wait) continue;
      std::vector<PassAction> without = pass;
      without.erase(without.begin() + static_cast<std::ptrdiff_t>(i));
      EXPECT_NE(ring.pass_respects_buffers(s, true, without), "") << "stage " << s << ", wait " << i;
    }
  }
}

// NCCL runs a stage's groups in the order posted, which MPI does not: a step's gradients posted
// before its activations (after the backward) complete on MPI but deadlock a ring of 5 under NCCL --
// the walk tells the two apart.
TEST(InterleavedSteps, TheWalkCatchesAnOrderOnlyNcclDeadlocksOn) {
  const Layout layout{5, 2, 6, false};
  Ring ring(layout);
  for (int s = 0; s < layout.stages; ++s) {
    const std::vector<PassAction> pass = interleaved_pass(ring.steps(s), true);
    std::vector<PassAction> reordered;
    std::optional<PassAction> held;  // the step's activations, posted after its gradients
    for (const PassAction& a : pass) {
      const InterleavedStep& step = ring.steps(s)[static_cast<std::size_t>(a.step)];
      if (a.kind == PassAction::Post && a.transfers == PassAction::Activations &&
          (step.send_grad || step.receive_grad)) {
        held = a;
        continue;
      }
      reordered.push_back(a);
      if (held && a.kind == PassAction::Post && a.step == held->step) reordered.push_back(*std::exchange(held, {}));
    }
    ASSERT_EQ(reordered.size(), pass.size());
    ring.replace_pass(s, reordered);
  }
  EXPECT_TRUE(ring.completes(Ring::Transport::Rendezvous, true));
  EXPECT_TRUE(ring.completes(Ring::Transport::Eager, true));
  EXPECT_FALSE(ring.completes(Ring::Transport::OrderedGroups, true));
  const Ring as_run(layout);
  EXPECT_TRUE(as_run.completes(Ring::Transport::OrderedGroups, true));
}

}  // namespace
}  // namespace spin::parallel
