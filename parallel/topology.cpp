#include "parallel/topology.h"

#include <unistd.h>

#include <climits>
#include <string>
#include <vector>

namespace spin::parallel {

namespace {
// FNV-1a of the host name: equal names, equal keys (a collision would only pair two hosts'
// ordinals, which the per-node GPU count check then reports).
std::int64_t host_key() {
  char name[HOST_NAME_MAX + 1] = {};
  gethostname(name, sizeof(name) - 1);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char* c = name; *c != '\0'; ++c) h = (h ^ static_cast<unsigned char>(*c)) * 0x100000001b3ull;
  return static_cast<std::int64_t>(h >> 1);
}
}  // namespace

int node_local_rank(Communicator& world) {
  const std::int64_t mine = host_key();
  std::vector<std::int64_t> all(static_cast<std::size_t>(world.size()));
  world.all_gather(&mine, all.data(), 1);
  int local = 0;
  for (int r = 0; r < world.rank(); ++r) local += all[static_cast<std::size_t>(r)] == mine ? 1 : 0;
  return local;
}

}  // namespace spin::parallel
