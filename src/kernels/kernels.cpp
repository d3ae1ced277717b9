#include "kernels/kernels.h"

namespace spin::kernels {

Index attention_probs_size(const Index* cu_seqlens, Index num_seqs, Index heads) {
  Index total = 0;
  for (Index s = 0; s < num_seqs; ++s) {
    const Index len = cu_seqlens[s + 1] - cu_seqlens[s];
    total += len * len;
  }
  return total * heads;
}

}  // namespace spin::kernels
