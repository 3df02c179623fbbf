// The bf16 product through oneDNN's matmul: the only file that touches oneDNN (and the OpenMP
// runtime Debian's oneDNN is built on). Built without oneDNN, the product is unavailable and
// says so.
#include <cstdint>
#include <string>

#include "autograd/error.h"
#include "autograd/kernels/bf16_gemm.h"

#ifdef HONE_HAVE_DNNL
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#endif

namespace hone::kernels {

#ifdef HONE_HAVE_DNNL

namespace {

// A product's sizes, strides and whether it adds to C: one oneDNN primitive each.
struct Key {
  int64_t M, N, K, lda, ldb, ldc;
  bool trans_a, trans_b, accumulate;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = static_cast<size_t>(k.trans_a) * 4 + static_cast<size_t>(k.trans_b) * 2 +
               static_cast<size_t>(k.accumulate);
    for (int64_t v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc})
      h = h * 1000003u ^ static_cast<size_t>(v);
    return h;
  }
};

// Never destroyed, like each thread's state below: TBB's workers may outlive static
// destruction at exit, and a stream or primitive must not outlive its engine.
const dnnl::engine& cpu_engine() {
  static const dnnl::engine* e = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *e;
}

// Primitives a thread keeps before it drops them all (each holds JIT code, some KiB).
constexpr size_t kMaxPrimitives = 2048;

// A product's primitive and the descriptions of its three operands.
struct Prim {
  dnnl::memory::desc a, b, c;
  dnnl::matmul matmul;
};

// Each thread keeps its own primitives and stream. Debian's oneDNN runs on OpenMP: a product
// called from one of hone's TBB tasks must stay on that thread (hone already splits the
// product over the cores), so every calling thread limits its own OpenMP team to itself.
struct ThreadState {
  dnnl::stream stream{cpu_engine()};
  std::unordered_map<Key, Prim, KeyHash> prims;
  ThreadState() { omp_set_num_threads(1); }
};

ThreadState& thread_state() {
  thread_local ThreadState* s = new ThreadState;
  return *s;
}

Prim make_primitive(const Key& k) {
  using dt = dnnl::memory::data_type;
  using dims = dnnl::memory::dims;
  // A as the (M, K) operand: stored (K, M) when transposed.
  const dnnl::memory::desc a({k.M, k.K}, dt::bf16, k.trans_a ? dims{1, k.lda} : dims{k.lda, 1});
  // B as the (K, N) operand: stored (N, K) when transposed, i.e. strides (1, ldb).
  const dnnl::memory::desc b({k.K, k.N}, dt::bf16, k.trans_b ? dims{1, k.ldb} : dims{k.ldb, 1});
  const dnnl::memory::desc c({k.M, k.N}, dt::f32, dims{k.ldc, 1});
  dnnl::primitive_attr attr;
  if (k.accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  return {
      a, b, c,
      dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), attr, cpu_engine()))};
}

}  // namespace

bool bf16_gemm_available() {
  return true;
}

std::string bf16_gemm_info() {
  const dnnl_version_t* v = dnnl_version();
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " matmul, one thread per task";
}

void gemm_bf16_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                      const uint16_t* A, int64_t lda, const uint16_t* B, int64_t ldb, float beta,
                      float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : C[i * ldc + j];
    return;
  }
  ThreadState& ts = thread_state();
  const Key key{M, N, K, lda, ldb, ldc, trans_a, trans_b, beta != 0.0f};
  try {
    auto it = ts.prims.find(key);
    if (it == ts.prims.end()) {
      // A run uses a few hundred sizes; inputs of ever-new lengths must not grow it forever.
      if (ts.prims.size() >= kMaxPrimitives) ts.prims.clear();
      it = ts.prims.emplace(key, make_primitive(key)).first;
    }
    const Prim& p = it->second;
    const dnnl::memory a(p.a, cpu_engine(), const_cast<uint16_t*>(A));
    const dnnl::memory b(p.b, cpu_engine(), const_cast<uint16_t*>(B));
    const dnnl::memory c(p.c, cpu_engine(), C);
    p.matmul.execute(ts.stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    ts.stream.wait();
  } catch (const dnnl::error& e) {
    throw Error("gemm_bf16: oneDNN failed on M=" + std::to_string(M) + " N=" + std::to_string(N) +
                " K=" + std::to_string(K) + ": " + e.what());
  }
}

#else  // built without oneDNN

bool bf16_gemm_available() {
  return false;
}

std::string bf16_gemm_info() {
  return "none (hone was built without oneDNN: install libdnnl-dev and rebuild)";
}

void gemm_bf16_serial(bool, bool, int64_t, int64_t, int64_t, const uint16_t*, int64_t,
                      const uint16_t*, int64_t, float, float*, int64_t) {
  throw Error("bf16 products need oneDNN, and hone was built without it (" + bf16_gemm_info() +
              ")");
}

#endif

}  // namespace hone::kernels
