#include "recipes/plan_parallel.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "autograd/error.h"

namespace hone {

ParallelPlan plan_parallel(const PlanSpec& spec, const RankLayout& layout, int64_t grad_accum,
                           double gflops, double link) {
  ParallelPlan p;
  p.layout = layout;
  const int64_t S = layout.stages, D = layout.data, L = spec.model.num_layers;
  p.micro_batches = grad_accum;
  p.local_micro_batches = grad_accum / D;
  const int64_t k = p.local_micro_batches;
  p.hidden_state_bytes = spec.batch * spec.seq * spec.model.hidden_size * 4;  // (B,T,C) f32
  for (int64_t s = 0; s < S; ++s) {
    StagePlan st;
    st.layers = stage_layers(L, S, s);
    st.spec = spec;
    if (S > 1) {
      st.spec.first_layer = st.layers.first;
      st.spec.stage_layers = st.layers.count();
      st.spec.holds_embedding = s == 0;
      st.spec.holds_head = s == S - 1;
    }
    st.spec.in_flight = micro_batches_in_flight(k, S, s);
    st.spec.data_parallel = D;
    st.spec.local_micro_batches = k;
    st.memory = plan_memory(st.spec);
    st.pp_bytes = pp_bytes_sent(k, p.hidden_state_bytes, S, s);
    for (int64_t j = 0; j < D; ++j)
      st.dp_bytes = std::max(st.dp_bytes, dp_bytes_sent(st.memory.lora_params, D, k, j));
    if (st.memory.peak > p.peak) {
      p.peak = st.memory.peak;
      p.peak_stage = s;
    }
    p.busiest_bytes = std::max(p.busiest_bytes, st.pp_bytes + st.dp_bytes);
    p.stages.push_back(std::move(st));
  }
  PlanSpec whole = spec;
  whole.stage_layers = -1;
  whole.holds_embedding = whole.holds_head = true;
  p.micro_batch_seconds = gflops > 0 ? plan_memory(whole).executed_flops / (gflops * 1e9) : 0;
  p.compute_seconds =
      static_cast<double>(k + S - 1) * p.micro_batch_seconds / static_cast<double>(S);
  p.comm_seconds = link > 0 ? static_cast<double>(p.busiest_bytes) / link : 0;
  p.step_seconds = p.compute_seconds + p.comm_seconds;
  return p;
}

int64_t smallest_fitting_stages(const PlanSpec& spec, int64_t data, int64_t grad_accum,
                                int64_t available) {
  if (data < 1 || grad_accum % data != 0) return 0;
  for (int64_t s = 1; s <= spec.model.num_layers; ++s)
    if (plan_parallel(spec, {s * data, s, data}, grad_accum, 0, 0).peak <= available) return s;
  return 0;
}

namespace {

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, s >= 100 ? "%.0f s" : s >= 1 ? "%.1f s" : "%.3f s", s);
  return buf;
}

// A table cell: "-" for nothing.
std::string cell(int64_t bytes) {
  return bytes == 0 ? "-" : human_bytes(bytes);
}

std::string holds(const PlanSpec& s) {
  if (s.holds_embedding && s.holds_head) return "all";
  if (s.holds_embedding) return "embedding";
  if (s.holds_head) return s.model.tie_word_embeddings ? "norm+head(tied)" : "norm+head";
  return "-";
}

}  // namespace

std::string parallel_plan_report(const PlanSpec& spec, const ParallelPlan& p, double gflops,
                                 double link, int64_t available) {
  const RankLayout& l = p.layout;
  std::ostringstream o;
  char buf[400];
  o << "parallel plan: " << l.ranks << " ranks = " << l.stages << " pipeline stage"
    << (l.stages > 1 ? "s" : "") << " x " << l.data << " data-parallel replica"
    << (l.data > 1 ? "s" : "") << "; a step of " << p.micro_batches << " micro-batches of "
    << spec.batch << " x " << spec.seq << " tokens, " << p.local_micro_batches
    << " per replica; base " << dtype_name(spec.weight_dtype) << ", LoRA r=" << spec.lora.rank
    << ", activation checkpointing " << (spec.checkpointing ? "on" : "off") << ", " << spec.threads
    << " threads a rank\n";
  std::snprintf(buf, sizeof buf,
                "  %5s %-9s %-15s %6s %10s %11s %11s %10s %10s %10s %10s %10s %10s\n", "stage",
                "blocks", "holds", "flight", "weights", "LoRA+optim", "activations", "lm head",
                "DP buffers", "other", "peak", "to stages", "DP sends");
  o << buf;
  for (size_t s = 0; s < p.stages.size(); ++s) {
    const StagePlan& st = p.stages[s];
    const MemoryPlan& m = st.memory;
    const std::string blocks =
        std::to_string(st.layers.first) + "-" + std::to_string(st.layers.last - 1);
    std::snprintf(
        buf, sizeof buf, "  %5zu %-9s %-15s %6lld %10s %11s %11s %10s %10s %10s %10s %10s %10s\n",
        s, blocks.c_str(), holds(st.spec).c_str(), static_cast<long long>(st.spec.in_flight),
        cell(m.weights).c_str(), cell(m.adapters + m.optimizer).c_str(),
        cell(m.activations + m.backward).c_str(), cell(m.lm_head).c_str(),
        cell(m.dp_buffers).c_str(), cell(m.workspace + m.runtime + m.data + m.tokenizer).c_str(),
        cell(m.peak).c_str(), cell(st.pp_bytes).c_str(), cell(st.dp_bytes).c_str());
    o << buf;
  }
  o << "  (flight: micro-batches whose activations a stage keeps at once under 1F1B; activations "
       "include one block's backward; other: conversion tiles, runtime, data, tokenizer"
    << (p.stages[p.peak_stage].memory.load_extra > 0 ? "; peak includes loading" : "")
    << "; sends are bytes per step; per-micro-batch losses, target counts and clipping norms, "
       "a few hundred bytes, are not counted)\n";
  o << "per-rank peak: " << human_bytes(p.peak) << " (stage " << p.peak_stage << ")";
  if (available > 0) {
    o << "; available " << human_bytes(available) << ": "
      << (p.peak <= available ? "fits" : "DOES NOT FIT");
    if (p.peak > available) {
      const int64_t s = smallest_fitting_stages(spec, l.data, p.micro_batches, available);
      if (s > 0)
        o << " (--stages " << s << " --ranks " << s * l.data << " fits)";
      else
        o << " (no stage count fits with " << l.data << " replicas)";
    }
  }
  o << "\n";
  std::snprintf(buf, sizeof buf,
                "step at %.0f GFLOP/s a rank and a %.4g Gb/s link (%.3g GB/s; communication not "
                "overlapped with compute):\n"
                "  one micro-batch through the whole model: %.1f GFLOP, t_mb = %s\n"
                "  compute (M/D + S - 1) x t_mb / S = (%lld + %lld) x %s / %lld = %s (1F1B)\n"
                "  communication: the busiest rank sends %s, %s\n",
                gflops, link * 8 / 1e9, link / 1e9, p.micro_batch_seconds * gflops,
                seconds(p.micro_batch_seconds).c_str(),
                static_cast<long long>(p.local_micro_batches), static_cast<long long>(l.stages - 1),
                seconds(p.micro_batch_seconds).c_str(), static_cast<long long>(l.stages),
                seconds(p.compute_seconds).c_str(), human_bytes(p.busiest_bytes).c_str(),
                seconds(p.comm_seconds).c_str());
  o << buf;
  const double tokens = static_cast<double>(p.micro_batches * spec.batch * spec.seq);
  std::snprintf(buf, sizeof buf, "  >= %s/step (%.1f tokens/s)\n", seconds(p.step_seconds).c_str(),
                p.step_seconds > 0 ? tokens / p.step_seconds : 0.0);
  o << buf;
  return o.str();
}

double parse_link_speed(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  double mult = 0;
  if (unit == "Gb/s")
    mult = 1e9 / 8;
  else if (unit == "GB/s")
    mult = 1e9;
  else if (unit == "Mb/s")
    mult = 1e6 / 8;
  else if (unit == "MB/s")
    mult = 1e6;
  if (used == 0 || mult == 0 || !(v > 0) || v > 1e6)
    throw Error(what + ": expected a link speed such as 25Gb/s (bits) or 3GB/s (bytes) (got \"" +
                text + "\")");
  return v * mult;
}

}  // namespace hone
