#include "recipes/parallel/groups.h"

#include "autograd/error.h"

namespace hone {

Parallel make_parallel(Comm& world, int stages) {
  if (stages < 1 || world.size() % stages != 0)
    throw Error("internal: " + std::to_string(world.size()) + " ranks in " +
                std::to_string(stages) + " stages");
  Parallel p;
  p.world = &world;
  p.stages = stages;
  p.replicas = world.size() / stages;
  p.stage = world.rank() % stages;
  p.replica = world.rank() / stages;
  p.owned_pipe = world.split(p.replica, p.stage);
  p.owned_dp = world.split(p.stages + p.stage, p.replica);
  p.pipe = p.owned_pipe.get();
  p.dp = p.owned_dp.get();
  return p;
}

Parallel single_process() {
  return make_parallel(local_comm(), 1);
}

}  // namespace hone
