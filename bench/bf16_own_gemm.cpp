// A hand-written single-threaded AVX-512 BF16 GEMM for the frozen-base products, against oneDNN
// as hone runs it (issue 17: "use a well-kept library ... or write the kernel yourself where
// fusion with the conversion wins; measure both and say why"). The kernel rounds an f32 W to
// bf16 while packing it into the pair-interleaved panels vdpbf16ps reads, so no bf16 copy of W
// goes through memory; oneDNN needs W in bf16 first (round_to_bf16 into a buffer, then its own
// packing). Cases, single-threaded, best of `reps`, interleaved, at the bench's shapes:
//   onednn_convert  round W's part to bf16 into a buffer + gemm_bf16_serial (hone today)
//   onednn_bf16     gemm_bf16_serial on a W already in bf16 (no conversion)
//   own_fused       this kernel from the f32 W (conversion fused into packing)
//   own_bf16        this kernel from a W already in bf16
//   onednn_convert_cols  (dyw only) hone's conversion + oneDNN with W tiled by columns as well
// for Y (N, out) = X (N, in)·Wᵀ ("xwt") and dX (N, in) = dY (N, out)·W ("dyw"). Every case
// rounds its f32 activations to bf16 on entry (round_to_bf16), so that cost is in all of them.
// GFLOP/s and ratios are from the best thread CPU time (see seconds()); wall times beside.
// Before timing, each own product is checked against gemm_bf16_ref on odd sizes within
// γ_K·Σ|ab| + K·2⁻¹²⁶ (as tests/autograd/test_bf16_products.cpp bounds it); exit 1 if not.
//   bench_bf16_own_gemm [reps=3] [tokens=512] [kc=512] [nc=128] [only=substring of the shape]
//                       [prefetch=1] [pack_only=0]
// kc × nc is the forward's W block (the input gradient's kc/2 × 2nc, or kc/4 × 4nc at few
// tokens; see own_gemm); prefetch=0 turns off the software prefetch of the next block;
// pack_only=1 (after the check) skips the products, so own_* then time the activations'
// rounding and W's packing alone.
// GCC 12's AVX-512 headers seed some intrinsics with a self-initialised "undefined" vector
// (GCC bug 105593, fixed in 12.3), which -Werror=uninitialized rejects once they inline here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "autograd/dtype.h"
#include "autograd/kernels/bf16_gemm.h"
#include "autograd/ops/weight_blocks.h"
#include "autograd/rng.h"

namespace {

using hone::kernels::gemm_bf16_serial;
using hone::kernels::round_to_bf16;

#define OWN_BF16 __attribute__((target("avx512f,avx512bf16,avx512bw,avx512vl")))

// Micro-tile: kMR rows of X × kNR zmm (16 outputs each) of f32 accumulators, 24 of the 32 zmm;
// 4 hold W's pairs and 1 the broadcast pair of X (GCC 12 does not fold the broadcast into
// vdpbf16ps, so 7 rows would need 33 registers and spill one accumulator every step).
constexpr int kMR = 6, kNR = 4, kPanel = 16 * kNR;
// Cache blocking: W is packed kc (summed) × nc (outputs) at a time, 512 × 128 bf16 = 128 KB,
// and each 64-output panel of it (64 KB, from L2) meets every kMR rows of X in turn. Y's block
// (N × nc f32, 256 KB at 512 tokens), X's columns k0..k0+kc (N × kc bf16, 512 KB), the packed
// block and the next W block being prefetched share the 1 MB L2. 512 × 128 measured best of
// 256 × 256, 256 × 128 and 512 × 128 on the Zen 4 host (geometric mean over the shapes below).
int64_t g_kc = 512, g_nc = 128;

int64_t even(int64_t n) {
  return (n + 1) / 2 * 2;
}

uint32_t pair_at(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// acc (R, NG·16) (+)= x (R, 2·kp) pairs · w (kp pairs, NG·16 outputs). y's last zmm keeps the
// lanes of `last` only (a ragged right edge); add: y's values start the sums.
template <int R, int NG>
OWN_BF16 void micro(int64_t kp, const uint16_t* x, int64_t ldx, const uint16_t* w, float* y,
                    int64_t ldy, bool add, __mmask16 last) {
  __m512 acc[R][NG];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NG; ++j)
      acc[i][j] = add ? _mm512_maskz_loadu_ps(j == NG - 1 ? last : 0xffff, y + i * ldy + j * 16)
                      : _mm512_setzero_ps();
  for (int64_t p = 0; p < kp; ++p) {
    __m512bh b[NG];
#pragma GCC unroll 4
    for (int j = 0; j < NG; ++j) b[j] = (__m512bh)_mm512_loadu_si512(w + (p * NG + j) * 32);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512bh a =
          (__m512bh)_mm512_set1_epi32(static_cast<int>(pair_at(x + i * ldx + 2 * p)));
#pragma GCC unroll 4
      for (int j = 0; j < NG; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], a, b[j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NG; ++j)
      _mm512_mask_storeu_ps(y + i * ldy + j * 16, j == NG - 1 ? last : 0xffff, acc[i][j]);
}

template <int R, int NG>
OWN_BF16 void micro_rows(int rows, int64_t kp, const uint16_t* x, int64_t ldx, const uint16_t* w,
                         float* y, int64_t ldy, bool add, __mmask16 last) {
  if constexpr (R > 1)
    if (rows < R) return micro_rows<R - 1, NG>(rows, kp, x, ldx, w, y, ldy, add, last);
  micro<R, NG>(kp, x, ldx, w, y, ldy, add, last);
}

OWN_BF16 void micro_any(int rows, int ng, int64_t kp, const uint16_t* x, int64_t ldx,
                        const uint16_t* w, float* y, int64_t ldy, bool add, __mmask16 last) {
  switch (ng) {
    case 4:
      return micro_rows<kMR, 4>(rows, kp, x, ldx, w, y, ldy, add, last);
    case 3:
      return micro_rows<kMR, 3>(rows, kp, x, ldx, w, y, ldy, add, last);
    case 2:
      return micro_rows<kMR, 2>(rows, kp, x, ldx, w, y, ldy, add, last);
    default:
      return micro_rows<kMR, 1>(rows, kp, x, ldx, w, y, ldy, add, last);
  }
}

__mmask16 mask16(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
}
__mmask32 mask32(int64_t n) {
  return n >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << n) - 1);
}

// n (≤ 32) consecutive values of a row as 32 bf16 (zeros past n): rounded here when f32.
OWN_BF16 __m512i load32(const float* p, int64_t n) {
  const __m512 lo = _mm512_maskz_loadu_ps(mask16(n), p);
  const __m512 hi = n > 16 ? _mm512_maskz_loadu_ps(mask16(n - 16), p + 16) : _mm512_setzero_ps();
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // lanes 0..15 from lo, 16..31 from hi
}
OWN_BF16 __m512i load32(const uint16_t* p, int64_t n) {
  return _mm512_maskz_loadu_epi16(mask32(n), p);
}
// n (≤ 16) consecutive values as 16 bf16.
OWN_BF16 __m256i load16(const float* p, int64_t n) {
  return (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask16(n), p));
}
OWN_BF16 __m256i load16(const uint16_t* p, int64_t n) {
  return _mm256_maskz_loadu_epi16(mask16(n), p);
}

// r[0..15] (rows of 16 dwords) transposed in place: r[e] becomes element e of every row.
OWN_BF16 inline void transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // u[4g + e], lane L: rows 4g..4g+3, element 4L + e.
  for (int g = 0; g < 4; ++g) {
    const __m512i* q = t + 4 * g;
    u[4 * g + 0] = _mm512_unpacklo_epi64(q[0], q[2]);
    u[4 * g + 1] = _mm512_unpackhi_epi64(q[0], q[2]);
    u[4 * g + 2] = _mm512_unpacklo_epi64(q[1], q[3]);
    u[4 * g + 3] = _mm512_unpackhi_epi64(q[1], q[3]);
  }
  for (int e = 0; e < 4; ++e) {
    const __m512i a = _mm512_shuffle_i32x4(u[e], u[4 + e], 0x44);
    const __m512i b = _mm512_shuffle_i32x4(u[e], u[4 + e], 0xEE);
    const __m512i c = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0x44);
    const __m512i d = _mm512_shuffle_i32x4(u[8 + e], u[12 + e], 0xEE);
    r[e] = _mm512_shuffle_i32x4(a, c, 0x88);
    r[4 + e] = _mm512_shuffle_i32x4(a, c, 0xDD);
    r[8 + e] = _mm512_shuffle_i32x4(b, d, 0x88);
    r[12 + e] = _mm512_shuffle_i32x4(b, d, 0xDD);
  }
}

// The packed block: outputs in panels of kPanel (the last may have fewer groups of 16); a panel
// holds, for each pair p of summed indices, its ng·16 outputs' (k = 2p, 2p + 1) bf16 pairs.
// Outputs and summed indices past the edges are zeros.
uint16_t* panel_at(uint16_t* wp, int64_t kp, int64_t jp) {
  return wp + jp * kp * kPanel * 2;
}
int64_t groups_in_panel(int64_t nout, int64_t jp) {
  return std::min<int64_t>(kNR, (nout + 15) / 16 - jp * kNR);
}

// Forward: W (out, in) row-major, outputs o0..o0+nout, summed k0..k0+kc. 16 rows × 32 columns
// at a time: each row rounded to 16 bf16 pairs (dwords), then a 16 × 16 dword transpose.
template <class S>
OWN_BF16 void pack_wt(const S* W, int64_t ldw, int64_t o0, int64_t nout, int64_t k0, int64_t kc,
                      uint16_t* wp) {
  const int64_t kp = (kc + 1) / 2;
  for (int64_t g = 0; g * 16 < nout; ++g) {
    const int64_t jp = g / kNR, ng = groups_in_panel(nout, jp);
    uint16_t* dst = panel_at(wp, kp, jp) + (g % kNR) * 32;
    for (int64_t c = 0; c < kc; c += 32) {
      __m512i r[16];
      for (int64_t i = 0; i < 16; ++i)
        r[i] = g * 16 + i < nout ? load32(W + (o0 + g * 16 + i) * ldw + k0 + c, kc - c)
                                 : _mm512_setzero_si512();
      transpose16(r);
      const int64_t pairs = std::min<int64_t>(16, kp - c / 2);
      for (int64_t p = 0; p < pairs; ++p) _mm512_storeu_si512(dst + (c / 2 + p) * ng * 32, r[p]);
    }
  }
}

// Input gradient: W (out, in) used as (K = out, outputs = in): rows k0..k0+kc, columns
// c0..c0+nout. Two rows' 16 columns at a time, interleaved into pairs by one vpermw; each pair
// of rows is read whole before the next (the block's rows are ldw apart, often a page or more,
// so walking down the rows per group of 16 columns would touch kc pages per 64 bytes).
template <class S>
OWN_BF16 void pack_w(const S* W, int64_t ldw, int64_t c0, int64_t nout, int64_t k0, int64_t kc,
                     uint16_t* wp) {
  const int64_t kp = (kc + 1) / 2;
  alignas(64) static const uint16_t kIdx[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,
                                                21, 6,  22, 7,  23, 8,  24, 9,  25, 10, 26,
                                                11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kIdx);
  for (int64_t p = 0; p < kp; ++p) {
    const S* a_row = W + (k0 + 2 * p) * ldw + c0;
    const S* b_row = 2 * p + 1 < kc ? a_row + ldw : nullptr;
    for (int64_t g = 0; g * 16 < nout; ++g) {
      const int64_t jp = g / kNR, ng = groups_in_panel(nout, jp), n = nout - g * 16;
      const __m256i a = load16(a_row + g * 16, n);
      const __m256i b = b_row ? load16(b_row + g * 16, n) : _mm256_setzero_si256();
      const __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
      _mm512_storeu_si512(panel_at(wp, kp, jp) + p * ng * 32 + (g % kNR) * 32,
                          _mm512_permutexvar_epi16(idx, ab));
    }
  }
}

// The next block of W, fetched into L2 a few lines at a time while the current block is
// multiplied: packing reads W in short pieces of many rows (one piece per row of the block), which
// the hardware prefetchers do not see coming, so without this each block's packing waits on
// memory.
struct Prefetch {
  const char* base = nullptr;
  int64_t rows = 0, stride = 0, lines = 0;  // lines per row
  int64_t next = 0, per_call = 0;
  void start(const void* p, int64_t rows_, int64_t stride_bytes, int64_t bytes, int64_t calls) {
    base = static_cast<const char*>(p);
    rows = rows_;
    stride = stride_bytes;
    lines = (bytes + 63) / 64;
    next = 0;
    per_call = (rows * lines + calls - 1) / std::max<int64_t>(calls, 1);
  }
  void step() {
    for (int64_t end = std::min(rows * lines, next + per_call); next < end; ++next)
      _mm_prefetch(base + next / lines * stride + next % lines * 64, _MM_HINT_T1);
  }
};
bool g_prefetch = true;
bool g_pack_only = false;

// Y (N, nout_total) = xb (N, K; rows ldx apart, ldx even, zero-padded) · op(W). trans: W is
// (outs, K) (the forward); else W is (K, outs) (the input gradient). wp: kc·nc bf16 scratch.
template <class S>
OWN_BF16 void own_gemm(bool trans, int64_t N, int64_t outs, int64_t K, const uint16_t* xb,
                       int64_t ldx, const S* W, int64_t ldw, float* Y, int64_t ldy, uint16_t* wp) {
  // Block order. Each block's sums run in increasing k either way (the first writes Y, the
  // others add). Output blocks outer keeps Y's block in L2 across the sum; but the input
  // gradient's W blocks are rows of K, so there the next block then starts kc new rows, which
  // no hardware prefetcher follows. When all of Y fits in L2 (few tokens), k blocks go outer so
  // consecutive blocks continue the same rows of W.
  const bool k_outer = !trans && N * outs * 4 <= (int64_t{512} << 10);
  // Packing reads W in runs of kc (forward: along W's rows) or nc (input gradient) values; the
  // longer the run, the better memory streams it, so the input gradient takes its block the
  // other way round, the same buffer: kc/2 × 2nc, or kc/4 × 4nc when Y is small anyway.
  const int64_t NC = trans ? g_nc : (k_outer ? 4 : 2) * g_nc;
  const int64_t KC = trans ? g_kc : even(g_kc * g_nc / NC);
  Prefetch pf;
  const int64_t row_calls = (N + kMR - 1) / kMR;
  const int64_t nob = (outs + NC - 1) / NC, nkb = (K + KC - 1) / KC;
  auto block = [&](int64_t b, int64_t& o0, int64_t& k0) {
    o0 = (k_outer ? b % nob : b / nkb) * NC;
    k0 = (k_outer ? b / nob : b % nkb) * KC;
  };
  for (int64_t b = 0; b < nob * nkb; ++b) {
    int64_t o0, k0, no0, nk0;
    block(b, o0, k0);
    const int64_t nout = std::min(NC, outs - o0);
    const int64_t kc = std::min(KC, K - k0), kp = (kc + 1) / 2;
    if (trans)
      pack_wt(W, ldw, o0, nout, k0, kc, wp);
    else
      pack_w(W, ldw, o0, nout, k0, kc, wp);
    const int64_t calls = (nout + kPanel - 1) / kPanel * row_calls;
    if (g_prefetch && b + 1 < nob * nkb) {
      block(b + 1, no0, nk0);
      const int64_t nkc = std::min(KC, K - nk0), nn = std::min(NC, outs - no0);
      const int64_t sz = static_cast<int64_t>(sizeof(S));
      if (trans)  // rows no0.., pieces of nkc
        pf.start(W + no0 * ldw + nk0, nn, ldw * sz, nkc * sz, calls);
      else  // rows nk0.., pieces of nn
        pf.start(W + nk0 * ldw + no0, nkc, ldw * sz, nn * sz, calls);
    }
    for (int64_t jp = 0; jp * kPanel < nout; ++jp) {
      const int ng = static_cast<int>(groups_in_panel(nout, jp));
      const __mmask16 last = mask16(nout - jp * kPanel - (ng - 1) * 16);
      for (int64_t i0 = 0; i0 < N && !g_pack_only; i0 += kMR) {
        if (g_prefetch) pf.step();
        micro_any(static_cast<int>(std::min<int64_t>(kMR, N - i0)), ng, kp, xb + i0 * ldx + k0, ldx,
                  panel_at(wp, kp, jp), Y + i0 * ldy + o0 + jp * kPanel, ldy, k0 > 0, last);
      }
    }
  }
}

// X (N, K) f32 rounded to bf16 rows of even length ldx (zero-padded), as every case does.
void round_rows(const float* X, int64_t N, int64_t K, int64_t ldx, std::vector<uint16_t>& xb) {
  xb.assign(static_cast<size_t>(N * ldx), 0);
  for (int64_t i = 0; i < N; ++i)
    round_to_bf16(X + i * K, xb.data() + i * ldx, static_cast<size_t>(K));
}

std::vector<uint16_t>& scratch(int64_t n) {
  static std::vector<uint16_t> ws;
  if (ws.size() < static_cast<size_t>(n)) ws.resize(static_cast<size_t>(n));
  return ws;
}

// Row length of the rounded activations: even, plus one cache line, so that the kMR rows a
// micro-kernel reads do not share L1 sets (rows 2^k bytes apart all map to the same ones and
// the streaming W panel evicts them).
int64_t padded(int64_t n) {
  return even(n) + 32;
}

// The four cases, each from the f32 activations. W32 is W in f32, W16 the same W in bf16.
struct Product {
  int64_t N, out, in;
  const float* X;  // (N, in) for xwt, (N, out) for dyw
  const float* W32;
  const uint16_t* W16;
  float* Y;  // (N, out) for xwt, (N, in) for dyw
};

// Y = X·Wᵀ as hone's bf16_xwt runs it on one thread: W's rows in parts that fit the workspace,
// each rounded into the buffer, then oneDNN.
void xwt_onednn_convert(const Product& p) {
  std::vector<uint16_t> xb;
  round_rows(p.X, p.N, p.in, p.in, xb);
  const int64_t cap = std::max<int64_t>(
      16, hone::ops_detail::kWorkspaceElems / std::max<int64_t>(p.in, 1) / 16 * 16);
  const hone::kernels::Parts parts = hone::ops_detail::balanced_parts(p.out, 16, 1, cap);
  for (int64_t i = 0; i < parts.count; ++i) {
    const int64_t o0 = parts.lo(i), o1 = parts.lo(i + 1);
    uint16_t* ws = scratch((o1 - o0) * p.in).data();
    round_to_bf16(p.W32 + o0 * p.in, ws, static_cast<size_t>((o1 - o0) * p.in));
    gemm_bf16_serial(true, p.N, o1 - o0, p.in, xb.data(), p.in, ws, p.in, 0.0f, p.Y + o0, p.out);
  }
}
void xwt_onednn_bf16(const Product& p) {
  std::vector<uint16_t> xb;
  round_rows(p.X, p.N, p.in, p.in, xb);
  gemm_bf16_serial(true, p.N, p.out, p.in, xb.data(), p.in, p.W16, p.in, 0.0f, p.Y, p.out);
}
template <class S>
void xwt_own(const Product& p, const S* W) {
  std::vector<uint16_t> xb;
  const int64_t ldx = padded(p.in);
  round_rows(p.X, p.N, p.in, ldx, xb);
  own_gemm(true, p.N, p.out, p.in, xb.data(), ldx, W, p.in, p.Y, p.out,
           scratch(g_kc * even(g_nc)).data());
}

// dX = dY·W as hone's bf16_dyw runs it on one thread: W's rows in equal tiles of at most
// kDywTileElems, each rounded into the buffer, added tile by tile.
void dyw_onednn_convert(const Product& p) {
  std::vector<uint16_t> gb;
  round_rows(p.X, p.N, p.out, p.out, gb);
  const int64_t tile = hone::ops_detail::equal_tile(
      p.out, std::max<int64_t>(16, hone::ops_detail::kDywTileElems / p.in));
  for (int64_t t0 = 0; t0 < p.out; t0 += tile) {
    const int64_t t1 = std::min(p.out, t0 + tile);
    uint16_t* ws = scratch((t1 - t0) * p.in).data();
    round_to_bf16(p.W32 + t0 * p.in, ws, static_cast<size_t>((t1 - t0) * p.in));
    gemm_bf16_serial(false, p.N, p.in, t1 - t0, gb.data() + t0, p.out, ws, p.in,
                     t0 == 0 ? 0.0f : 1.0f, p.Y, p.in);
  }
}
// The same with W's columns in blocks too (each W tile rows × kDywCols): each oneDNN call then
// sums over up to kDywTileElems / kDywCols rows into a (N, kDywCols) block of dX that stays in
// L2, where hone's full-width tiles (a few dozen rows when in is wide) re-read and re-write all
// of dX for every tile. Not what hone runs: what its tiling could be.
constexpr int64_t kDywCols = 256;
void dyw_onednn_convert_cols(const Product& p) {
  std::vector<uint16_t> gb;
  round_rows(p.X, p.N, p.out, p.out, gb);
  const int64_t tile = hone::ops_detail::equal_tile(
      p.out, std::max<int64_t>(16, hone::ops_detail::kDywTileElems / kDywCols));
  for (int64_t c0 = 0; c0 < p.in; c0 += kDywCols) {
    const int64_t w = std::min(kDywCols, p.in - c0);
    for (int64_t t0 = 0; t0 < p.out; t0 += tile) {
      const int64_t t1 = std::min(p.out, t0 + tile);
      uint16_t* ws = scratch((t1 - t0) * w).data();
      for (int64_t o = t0; o < t1; ++o)
        round_to_bf16(p.W32 + o * p.in + c0, ws + (o - t0) * w, static_cast<size_t>(w));
      gemm_bf16_serial(false, p.N, w, t1 - t0, gb.data() + t0, p.out, ws, w, t0 == 0 ? 0.0f : 1.0f,
                       p.Y + c0, p.in);
    }
  }
}
void dyw_onednn_bf16(const Product& p) {
  std::vector<uint16_t> gb;
  round_rows(p.X, p.N, p.out, p.out, gb);
  gemm_bf16_serial(false, p.N, p.in, p.out, gb.data(), p.out, p.W16, p.in, 0.0f, p.Y, p.in);
}
template <class S>
void dyw_own(const Product& p, const S* W) {
  std::vector<uint16_t> gb;
  const int64_t ldx = padded(p.out);
  round_rows(p.X, p.N, p.out, ldx, gb);
  own_gemm(false, p.N, p.in, p.out, gb.data(), ldx, W, p.in, p.Y, p.in,
           scratch(g_kc * even(g_nc)).data());
}

std::vector<float> randn(int64_t n, uint64_t seed, double sd) {
  std::vector<float> v(static_cast<size_t>(n));
  hone::Rng r(seed);
  for (auto& x : v) x = static_cast<float>(sd * r.normal());
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  round_to_bf16(v.data(), b.data(), v.size());
  return b;
}

// Every own product on odd sizes against gemm_bf16_ref (plain loops over the same bf16-rounded
// inputs, summed in double) within γ_K·Σ|ab| + K·2⁻¹²⁶; fused and pre-converted bitwise equal.
bool check() {
  const int64_t sizes[] = {1, 7, 33, 130};
  struct Size {
    int64_t N, out, in;
  };
  std::vector<Size> all;
  for (int64_t n : sizes)
    for (int64_t o : sizes)
      for (int64_t k : sizes) all.push_back({n, o, k});
  all.push_back({13, 300, 601});  // several kc and nc blocks, ragged
  all.push_back({9, 601, 300});
  all.push_back({130, 300, 1100});  // dyw's Y past L2: its blocks in the other order
  double worst = 0;
  for (const Size& s : all)
    for (bool fwd : {true, false}) {
      const int64_t K = fwd ? s.in : s.out, M = fwd ? s.out : s.in;
      const std::vector<float> X = randn(s.N * K, 1 + s.N * 7 + K, 1.0),
                               W = randn(s.out * s.in, 2 + s.out * 3 + s.in, 0.05);
      const std::vector<uint16_t> Xb = to_bf16(X), Wb = to_bf16(W);
      std::vector<float> ref(static_cast<size_t>(s.N * M)), abs_ref = ref, fused = ref, pre = ref;
      hone::kernels::gemm_bf16_ref(fwd, s.N, M, K, Xb.data(), K, Wb.data(), s.in, 0.0f, ref.data(),
                                   M);
      std::vector<uint16_t> Xa = Xb, Wa = Wb;  // |a|·|b|: clear the sign bits
      for (auto& v : Xa) v &= 0x7fff;
      for (auto& v : Wa) v &= 0x7fff;
      hone::kernels::gemm_bf16_ref(fwd, s.N, M, K, Xa.data(), K, Wa.data(), s.in, 0.0f,
                                   abs_ref.data(), M);
      const Product p{s.N, s.out, s.in, X.data(), W.data(), Wb.data(), fused.data()};
      Product q = p;
      q.Y = pre.data();
      if (fwd) {
        xwt_own(p, W.data());
        xwt_own(q, Wb.data());
      } else {
        dyw_own(p, W.data());
        dyw_own(q, Wb.data());
      }
      const double Kd = static_cast<double>(K), u = std::ldexp(1.0, -24);
      const double gamma = Kd * u / (1 - Kd * u);
      for (size_t i = 0; i < ref.size(); ++i) {
        const double bound = gamma * abs_ref[i] + Kd * std::ldexp(1.0, -126);
        const double err = std::abs(static_cast<double>(fused[i]) - ref[i]);
        worst = std::max(worst, err / bound);
        if (!(err <= bound) || std::memcmp(&fused[i], &pre[i], 4) != 0) {
          std::fprintf(stderr,
                       "bench_bf16_own_gemm: %s N=%lld out=%lld in=%lld element %zu: fused %.9g, "
                       "from bf16 %.9g, reference %.9g, bound %.3g\n",
                       fwd ? "xwt" : "dyw", static_cast<long long>(s.N),
                       static_cast<long long>(s.out), static_cast<long long>(s.in), i, fused[i],
                       pre[i], static_cast<double>(ref[i]), bound);
          return false;
        }
      }
    }
  std::printf(
      "{\"bench\": \"bf16_own_gemm\", \"check\": \"ok\", \"products\": %zu, \"worst_of_bound\": "
      "%.3f}\n",
      2 * all.size(), worst);
  return true;
}

// The single-thread vdpbf16ps roof: 12 independent chains on registers, 64 flops each.
OWN_BF16 __attribute__((noinline)) float dpbf16_chains(int64_t turns) {
  const __m512bh m = (__m512bh)_mm512_set1_epi32(0x3f803f80), k = m;
  __m512 r[12];
  for (int i = 0; i < 12; ++i) r[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t t = 0; t < turns; ++t) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) r[i] = _mm512_dpbf16_ps(r[i], m, k);
  }
  __m512 s = r[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, r[i]);
  return _mm512_reduce_add_ps(s);
}

// Wall-clock and this thread's CPU seconds of f. Every case runs on the calling thread (oneDNN
// is held to one thread per caller), so CPU time leaves out the time the shared host gave to
// other tenants, the largest noise here; the wall times are printed beside it.
struct Time {
  double wall, cpu;
};
double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
Time seconds(const std::function<void()>& f) {
  const double c0 = thread_cpu();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {wall, thread_cpu() - c0};
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 3;
  const int64_t tokens = argc > 2 ? std::atoll(argv[2]) : 512;
  if (argc > 3) g_kc = even(std::atoll(argv[3]));
  if (argc > 4) g_nc = std::max<int64_t>(16, std::atoll(argv[4]) / 16 * 16);
  const std::string only = argc > 5 ? argv[5] : "";  // shapes whose model or proj contains it
  if (argc > 6) g_prefetch = std::atoi(argv[6]) != 0;
  if (!__builtin_cpu_supports("avx512bf16") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl")) {
    std::printf("{\"bench\": \"bf16_own_gemm\", \"skipped\": \"no AVX512_BF16 on this CPU\"}\n");
    return 0;
  }
  if (!hone::kernels::bf16_gemm_available()) {
    std::printf("{\"bench\": \"bf16_own_gemm\", \"skipped\": \"%s\"}\n",
                hone::kernels::bf16_gemm_info().c_str());
    return 0;
  }
  if (!check()) return 1;
  if (argc > 7) g_pack_only = std::atoi(argv[7]) != 0;

  // The roof in short bursts between the products, best of all: the host is shared, so a
  // single measurement may land in another tenant's burst.
  double roof = 0;
  auto roof_burst = [&] {
    const int64_t turns = 1'000'000;
    const double s = seconds([&] {
                       volatile float sink = dpbf16_chains(turns);
                       (void)sink;
                     }).cpu;
    roof = std::max(roof, 12.0 * 64 * static_cast<double>(turns) / s / 1e9);
  };
  roof_burst();
  struct Result {
    std::string head;
    double flops, wall[5], cpu[5];
  };
  std::vector<Result> results;

  struct Shape {
    const char* model;
    const char* name;
    int64_t out, in;
  };
  const Shape shapes[] = {
      {"SmolLM2-135M", "q/o", 576, 576},   {"SmolLM2-135M", "up", 1536, 576},
      {"SmolLM2-135M", "down", 576, 1536}, {"SmolLM2-135M", "lm_head", 49152, 576},
      {"Qwen2.5-0.5B", "up", 4864, 896},   {"Qwen2.5-0.5B", "down", 896, 4864},
      {"Llama-3.2-1B", "up", 8192, 2048},  {"Llama-3.2-1B", "down", 2048, 8192}};
  constexpr int kCases = 5;  // the last for dyw only
  const char* names[kCases] = {"onednn_convert", "onednn_bf16", "own_fused", "own_bf16",
                               "onednn_convert_cols"};
  for (const Shape& sh : shapes) {
    if ((std::string(sh.model) + " " + sh.name).find(only) == std::string::npos) continue;
    const std::vector<float> W = randn(sh.out * sh.in, 3, 0.02);
    const std::vector<uint16_t> Wb = to_bf16(W);
    const std::vector<float> X = randn(tokens * std::max(sh.in, sh.out), 4, 1.0);
    std::vector<float> Y(static_cast<size_t>(tokens * std::max(sh.in, sh.out)));
    const Product p{tokens, sh.out, sh.in, X.data(), W.data(), Wb.data(), Y.data()};
    for (bool fwd : {true, false}) {
      std::function<void()> run[kCases] = {
          [&] { fwd ? xwt_onednn_convert(p) : dyw_onednn_convert(p); },
          [&] { fwd ? xwt_onednn_bf16(p) : dyw_onednn_bf16(p); },
          [&] { fwd ? xwt_own(p, p.W32) : dyw_own(p, p.W32); },
          [&] { fwd ? xwt_own(p, p.W16) : dyw_own(p, p.W16); },
          [&] { dyw_onednn_convert_cols(p); }};
      if (fwd) run[4] = nullptr;
      char head[256];
      std::snprintf(head, sizeof head,
                    "\"model\": \"%s\", \"proj\": \"%s\", \"product\": \"%s\", \"N\": %lld, "
                    "\"out\": %lld, \"in\": %lld",
                    sh.model, sh.name, fwd ? "xwt" : "dyw", static_cast<long long>(tokens),
                    static_cast<long long>(sh.out), static_cast<long long>(sh.in));
      Result res{head,
                 2.0 * static_cast<double>(tokens) * sh.out * sh.in,
                 {1e30, 1e30, 1e30, 1e30, 1e30},
                 {1e30, 1e30, 1e30, 1e30, 1e30}};
      for (auto& f : run)
        if (f) f();  // warm-up: oneDNN's primitives, the buffers
      for (int r = 0; r < reps; ++r)
        for (int c = 0; c < kCases; ++c) {
          if (!run[c]) continue;
          roof_burst();
          const Time t = seconds(run[c]);
          res.wall[c] = std::min(res.wall[c], t.wall);
          res.cpu[c] = std::min(res.cpu[c], t.cpu);
        }
      results.push_back(res);
    }
  }
  std::printf(
      "{\"bench\": \"bf16_own_gemm\", \"roof\": \"vdpbf16ps, 1 thread\", \"gflops\": %.1f, "
      "\"tokens\": %lld, \"kc\": %lld, \"nc\": %lld, \"mr\": %d, \"nr\": %d, \"prefetch\": %d, "
      "\"reps\": %d}\n",
      roof, static_cast<long long>(tokens), static_cast<long long>(g_kc),
      static_cast<long long>(g_nc), kMR, kPanel, g_prefetch ? 1 : 0, reps);
  for (const Result& r : results) {
    for (int c = 0; c < kCases; ++c) {
      if (r.cpu[c] >= 1e30) continue;
      const double gf = r.flops / r.cpu[c] / 1e9;
      std::printf(
          "{\"bench\": \"bf16_own_gemm\", %s, \"case\": \"%s\", \"cpu_ms\": %.3f, \"gflops\": "
          "%.1f, \"of_roof\": %.3f, \"wall_ms\": %.3f, \"wall_gflops\": %.1f}\n",
          r.head.c_str(), names[c], r.cpu[c] * 1e3, gf, gf / roof, r.wall[c] * 1e3,
          r.flops / r.wall[c] / 1e9);
    }
    // CPU-time ratios; > 1: the first is faster.
    std::printf(
        "{\"bench\": \"bf16_own_gemm\", %s, \"own_fused_vs_onednn_convert\": %.3f, "
        "\"own_fused_vs_onednn_bf16\": %.3f, \"own_bf16_vs_onednn_bf16\": %.3f, "
        "\"own_conversion_cost\": %.3f, \"onednn_conversion_cost\": %.3f}\n",
        r.head.c_str(), r.cpu[0] / r.cpu[2], r.cpu[1] / r.cpu[2], r.cpu[1] / r.cpu[3],
        r.cpu[2] / r.cpu[3] - 1, r.cpu[0] / r.cpu[1] - 1);
  }
  return 0;
}
