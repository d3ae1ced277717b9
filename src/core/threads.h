// Threads for CPU work inside one rank (tokenizing a data set, quantizing a tensor for an export).
#pragma once

#include <cstddef>
#include <functional>

namespace spin {

// The CPUs this process may run on (sched_getaffinity: a Slurm task's --cpus-per-task, an mpirun binding),
// clamped to [1, at_most].
int usable_cpus(int at_most);

// fn(i) for every i in [0, n), over `workers` threads each taking the next index (this thread alone for
// workers <= 1). fn must not throw: a worker's exception would end the process.
void for_each_index(std::size_t n, int workers, const std::function<void(std::size_t)>& fn);

}  // namespace spin
