// Where a rank sits on its node: how many ranks share the node before it. One rank per GPU is
// the rule on the CUDA path, so this is the GPU ordinal a rank uses (CUDA_VISIBLE_DEVICES
// narrows what the ordinals mean, as usual).
#pragma once

#include "parallel/communicator.h"

namespace spin::parallel {

// The number of lower world ranks on the same host (by host name). Collective over `world`.
int node_local_rank(Communicator& world);

}  // namespace spin::parallel
