#include "recipes/parallel/stage_state.h"

#include <cstring>

#include "lora/peft.h"

namespace hone {

namespace {

// An optimizer moment is arena-shaped F32; the rest ("step") is not sliced by stage.
bool is_moment(const Tensor& t) {
  return t.dtype() == DType::F32 && t.ndim() == 1;
}

}  // namespace

std::optional<WholeState> gather_whole_state(const Run& run, const Parallel& par) {
  if (par.stages == 1 || par.replica != 0) return std::nullopt;
  Comm& pipe = *par.pipe;
  const Tensor& values = run.adapters->values();
  const std::map<std::string, Tensor> state = run.optimizer->state();
  const std::vector<int64_t> counts = allgather_value(pipe, values.numel());
  if (!par.first_stage()) {
    pipe.send(0, values.raw(), values.nbytes());
    for (const auto& [name, t] : state)
      if (is_moment(t)) pipe.send(0, t.raw(), t.nbytes());
    return std::nullopt;
  }
  int64_t whole_p = 0;
  for (int64_t c : counts) whole_p += c;
  // Stage by stage into the whole arenas: values, then each moment in name order.
  auto gather = [&](const Tensor& own) {
    Tensor out = Tensor::empty(DType::F32, {whole_p});
    std::memcpy(out.raw(), own.raw(), own.nbytes());
    return out;
  };
  WholeState w;
  w.values = gather(values);
  for (const auto& [name, t] : state) w.optimizer[name] = is_moment(t) ? gather(t) : t;
  int64_t at = counts[0];
  for (int s = 1; s < par.stages; ++s) {
    const size_t n = static_cast<size_t>(counts[static_cast<size_t>(s)]);
    pipe.recv(s, w.values.data<float>() + at, n * sizeof(float));
    for (auto& [name, t] : w.optimizer)
      if (is_moment(t)) pipe.recv(s, t.data<float>() + at, n * sizeof(float));
    at += counts[static_cast<size_t>(s)];
  }
  return w;
}

void save_whole_peft_adapter(const std::string& dir, const Run& run, const WholeState* whole) {
  if (!whole) {
    save_peft_adapter(dir, *run.adapters, run.cfg.model.path);
    return;
  }
  LoraAdapters all(run.model_config, run.cfg.lora);
  if (all.values().numel() != whole->values.numel())
    throw Error("internal: the gathered adapter arena has " +
                std::to_string(whole->values.numel()) + " values, the model's " +
                std::to_string(all.values().numel()));
  std::memcpy(all.values().raw(), whole->values.raw(), whole->values.nbytes());
  save_peft_adapter(dir, all, run.cfg.model.path);
}

}  // namespace hone
