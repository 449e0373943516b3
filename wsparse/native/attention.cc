// Causal softmax attention with an optional sink, forward and backward, for float32 [B, T, H, d] operands (d a
// multiple of 8, at most 64): the model's attention on CPU.
//
// XLA:CPU runs attention as two batched products of B * H small matrices ([T, d] x [d, T] and back) with the
// [B, H, T, T] scores and probabilities written out between them, plus the transposes that put heads first. Here each
// (batch row, head) is done whole in cache: its q, k and v are read where they lie in the [B, T, H, d] layout, each
// query row's scores are computed up to the causal limit only, and the forward keeps two numbers per query row (the
// softmax's shift and denominator) instead of the probabilities. The backward recomputes the probabilities from them,
// with the same bits as the forward.
//
// The sink: one more logit per (batch row, head) with a zero value, which adds e^{sink} to every denominator; -inf
// where the model has none. The gradients are the softmax's closed form, ds = p * (dp - sum(p * dp)), as in
// wsparse/model.py; the sink's is -p_sink * sum(p * dp) summed over query rows.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "parallel_for.h"
#include "vec.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using wsparse::IVec;
using wsparse::kW;
using wsparse::Load;
using wsparse::Splat;
using wsparse::Store;
using wsparse::Vec;

constexpr int64_t kMaxDV = 8;   // d <= 64
constexpr int64_t kRows = 8;    // query rows per block: the scores of a block are 8 x 8 tiles
constexpr int64_t kAcc = 4;     // rows (or keys) accumulated at once in the weighted sums
constexpr float kInf = std::numeric_limits<float>::infinity();

inline Vec Max(Vec a, Vec b) { return a > b ? a : b; }
inline Vec Bits(IVec v) {  // the same bits as floats
  Vec f;
  std::memcpy(&f, &v, sizeof(f));
  return f;
}
inline IVec Bits(Vec v) {
  IVec i;
  std::memcpy(&i, &v, sizeof(i));
  return i;
}

inline float Sum(Vec v) {
  float s = 0.0f;
  for (int64_t l = 0; l < kW; ++l) s += v[l];
  return s;
}

inline float MaxOf(Vec v) {
  float m = v[0];
  for (int64_t l = 1; l < kW; ++l) m = m > v[l] ? m : v[l];
  return m;
}

// e^x for x <= 0 (the shifted scores): Cephes' single-precision polynomial after the range reduction x = n ln 2 + r
// (relative error about 1e-7); 0 below the smallest normal result (so e^-inf = 0), NaN stays NaN.
inline Vec Exp(Vec x) {
  const Vec low = Splat(-87.3365478515625f);  // e^low is the smallest normal float
  const Vec xc = x < low ? low : x;
  const Vec z = xc * 1.44269504088896341f + 0.5f;
  IVec n = __builtin_convertvector(z, IVec);  // toward zero,
  n += __builtin_convertvector(n, Vec) > z;   // then down (a true comparison is -1): floor(z)
  const Vec nf = __builtin_convertvector(n, Vec);
  const Vec r = (xc - nf * 0.693359375f) + nf * 2.12194440e-4f;
  Vec y = Splat(1.9875691500e-4f);
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const Vec e = y * Bits((n + 127) << 23);
  const IVec below = x < low;
  return Bits(Bits(e) & ~below);
}

inline float Exp(float x) { return Exp(Splat(x))[0]; }

struct Shape {
  int64_t B, T, H, d, padded_T;  // padded_T: T rounded up to whole vectors
  float scale;                    // 1 / sqrt(d): scores are (q . k) / sqrt(d), as a product (exact for d = 16, 64)
  int64_t At(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * d; }
};

// One head's [T, d] rows (zero rows up to padded_T), or their transpose [d, padded_T] (zero past T), out of / into
// the [B, T, H, d] layout.
void LoadRows(const float* x, const Shape& s, int64_t b, int64_t h, float* rows) {
  for (int64_t t = 0; t < s.T; ++t) {
    for (int64_t e = 0; e < s.d; e += kW) Store(rows + t * s.d + e, Load(x + s.At(b, t, h) + e));
  }
  std::fill(rows + s.T * s.d, rows + s.padded_T * s.d, 0.0f);
}

void LoadColumns(const float* x, const Shape& s, int64_t b, int64_t h, float* cols) {
  std::fill(cols, cols + s.d * s.padded_T, 0.0f);
  int64_t t0 = 0;
  for (; t0 + kW <= s.T; t0 += kW) {  // 8 x 8 tiles (rows t0.. are H * d floats apart in the layout)
    for (int64_t e0 = 0; e0 < s.d; e0 += kW) {
      wsparse::Transpose8x8(x + s.At(b, t0, h) + e0, s.H * s.d, cols + e0 * s.padded_T + t0, s.padded_T);
    }
  }
  for (int64_t t = t0; t < s.T; ++t) {
    const float* row = x + s.At(b, t, h);
    for (int64_t e = 0; e < s.d; ++e) cols[e * s.padded_T + t] = row[e];
  }
}

void StoreRows(float* x, const Shape& s, int64_t b, int64_t h, const float* rows) {
  for (int64_t t = 0; t < s.T; ++t) {
    for (int64_t e = 0; e < s.d; e += kW) Store(x + s.At(b, t, h) + e, Load(rows + t * s.d + e));
  }
}

// The block of query rows r0 .. r0 + 7 against keys 0 .. 8 n_vec - 1: out[r, :] = (a[r0 + r] . cols[:, key]) * scale,
// with the keys after each row's own position set to -inf if `mask`. Eight rows at a time: eight independent
// chains of multiply-adds, each column vector loaded once for all of them.
template <int DV>
void ScoreBlock(const float* a, const float* cols, const Shape& s, int64_t r0, int64_t n_vec, float scale, bool mask,
                float* out) {
  for (int64_t v = 0; v < n_vec; ++v) {
    Vec acc[kRows] = {};
    for (int64_t e = 0; e < DV * kW; ++e) {
      const Vec kv = Load(cols + e * s.padded_T + v * kW);
      for (int64_t r = 0; r < kRows; ++r) acc[r] += Splat(a[(r0 + r) * DV * kW + e]) * kv;
    }
    for (int64_t r = 0; r < kRows; ++r) Store(out + (r0 + r) * s.padded_T + v * kW, acc[r] * scale);
  }
  if (mask) {  // the last vector holds keys r0 .. r0 + 7: row r keeps lanes 0 .. r
    const IVec lane = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int64_t r = 0; r < kRows; ++r) {
      float* last = out + (r0 + r) * s.padded_T + (n_vec - 1) * kW;
      Store(last, lane > static_cast<int32_t>(r) ? Splat(-kInf) : Load(last));
    }
  }
}

// out[i, :] = sum_{j in [j0, j1)} weight[j * sj + i * si] * rows[j, :] for i < kAcc (rows of 8 DV floats): the
// probabilities times v, or the score gradients times k or q. kAcc * DV independent accumulators.
template <int DV>
void WeightedRows(const float* weight, int64_t sj, int64_t si, const float* rows, int64_t j0, int64_t j1,
                  float* out) {
  Vec acc[kAcc][DV] = {};
  for (int64_t j = j0; j < j1; ++j) {
    Vec row[DV];
    for (int dv = 0; dv < DV; ++dv) row[dv] = Load(rows + j * DV * kW + dv * kW);
    for (int64_t i = 0; i < kAcc; ++i) {
      const Vec w = Splat(weight[j * sj + i * si]);
      for (int dv = 0; dv < DV; ++dv) acc[i][dv] += w * row[dv];
    }
  }
  for (int64_t i = 0; i < kAcc; ++i) {
    for (int dv = 0; dv < DV; ++dv) Store(out + i * DV * kW + dv * kW, acc[i][dv]);
  }
}

// Per-thread scratch for one head: rows of q, k, v and the output's gradient g, padded to padded_T rows with zeros;
// k and v also transposed; the [padded_T, padded_T] scores, probabilities and score gradients; output rows.
struct Scratch {
  std::vector<float> q, k, v, g, out, k_cols, v_cols, p, ds;
  explicit Scratch(const Shape& s)
      : q(s.padded_T * s.d), k(s.padded_T * s.d), v(s.padded_T * s.d), g(s.padded_T * s.d),
        out(s.padded_T * s.d), k_cols(s.d * s.padded_T), v_cols(s.d * s.padded_T), p(s.padded_T * s.padded_T),
        ds(s.padded_T * s.padded_T) {}
};

template <int DV>
void ForwardHead(const float* q, const float* k, const float* v, const float* sink, float* o, float* stats,
                 const Shape& s, int64_t b, int64_t h, Scratch& w) {
  LoadRows(q, s, b, h, w.q.data());
  LoadRows(v, s, b, h, w.v.data());
  LoadColumns(k, s, b, h, w.k_cols.data());
  const float sink_logit = sink[b * s.H + h];
  float* stats_bh = stats + (b * s.H + h) * s.T * 2;
  for (int64_t r0 = 0; r0 < s.T; r0 += kRows) {
    const int64_t n_vec = r0 / kW + 1, n_keys = n_vec * kW;
    ScoreBlock<DV>(w.q.data(), w.k_cols.data(), s, r0, n_vec, s.scale, true, w.p.data());
    for (int64_t t = r0; t < std::min(r0 + kRows, s.T); ++t) {
      float* pt = w.p.data() + t * s.padded_T;  // scores, then probabilities
      Vec mv = Load(pt);
      for (int64_t j = kW; j < n_keys; j += kW) mv = Max(mv, Load(pt + j));
      const float m = std::max(MaxOf(mv), sink_logit);
      Vec sum = {};
      for (int64_t j = 0; j < n_keys; j += kW) {
        const Vec e = Exp(Load(pt + j) - m);
        Store(pt + j, e);
        sum += e;
      }
      const float denominator = Sum(sum) + Exp(sink_logit - m), inverse = 1.0f / denominator;
      stats_bh[2 * t] = m;
      stats_bh[2 * t + 1] = denominator;
      // e * (1 / denominator): the bits the backward recomputes from the scores, m and the denominator.
      for (int64_t j = 0; j < n_keys; j += kW) Store(pt + j, Load(pt + j) * inverse);
    }
    for (int64_t t = std::max(r0, s.T); t < r0 + kRows; ++t) {  // rows past T: no weight on anything
      std::fill(w.p.data() + t * s.padded_T, w.p.data() + t * s.padded_T + n_keys, 0.0f);
    }
    for (int64_t i0 = r0; i0 < r0 + kRows; i0 += kAcc) {
      WeightedRows<DV>(w.p.data() + i0 * s.padded_T, 1, s.padded_T, w.v.data(), 0, n_keys, w.out.data() + i0 * s.d);
    }
  }
  StoreRows(o, s, b, h, w.out.data());
}

template <int DV>
float BackwardHead(const float* q, const float* k, const float* v, const float* sink, const float* stats,
                   const float* g, float* dq, float* dk, float* dv, const Shape& s, int64_t b, int64_t h,
                   Scratch& w) {
  LoadRows(q, s, b, h, w.q.data());
  LoadRows(k, s, b, h, w.k.data());
  LoadRows(g, s, b, h, w.g.data());
  LoadColumns(k, s, b, h, w.k_cols.data());
  LoadColumns(v, s, b, h, w.v_cols.data());
  const float sink_logit = sink[b * s.H + h];
  const float* stats_bh = stats + (b * s.H + h) * s.T * 2;
  float* p = w.p.data();
  float* ds = w.ds.data();
  float dsink = 0.0f;
  for (int64_t r0 = 0; r0 < s.T; r0 += kRows) {
    const int64_t n_vec = r0 / kW + 1, n_keys = n_vec * kW;
    ScoreBlock<DV>(w.q.data(), w.k_cols.data(), s, r0, n_vec, s.scale, true, p);
    ScoreBlock<DV>(w.g.data(), w.v_cols.data(), s, r0, n_vec, 1.0f, false, ds);  // dp[t, j] = g_t . v_j
    for (int64_t t = r0; t < r0 + kRows; ++t) {
      float* pt = p + t * s.padded_T;
      float* dst = ds + t * s.padded_T;
      if (t >= s.T) {  // rows past T: no weight, no gradient
        std::fill(pt, pt + n_keys, 0.0f);
        std::fill(dst, dst + n_keys, 0.0f);
        continue;
      }
      const float m = stats_bh[2 * t], inverse = 1.0f / stats_bh[2 * t + 1];
      Vec pdp_v = {};
      for (int64_t j = 0; j < n_keys; j += kW) {
        const Vec pj = Exp(Load(pt + j) - m) * inverse;
        Store(pt + j, pj);
        pdp_v += pj * Load(dst + j);
      }
      const float pdp = Sum(pdp_v);
      for (int64_t j = 0; j < n_keys; j += kW) Store(dst + j, Load(pt + j) * (Load(dst + j) - pdp) * s.scale);
      dsink -= Exp(sink_logit - m) * inverse * pdp;
    }
    for (int64_t i0 = r0; i0 < r0 + kRows; i0 += kAcc) {
      WeightedRows<DV>(ds + i0 * s.padded_T, 1, s.padded_T, w.k.data(), 0, n_keys, w.out.data() + i0 * s.d);
    }
  }
  StoreRows(dq, s, b, h, w.out.data());
  // Key j's gradients sum over the query rows t >= j: columns of ds (and p) against the rows of q (and g).
  for (int64_t j0 = 0; j0 < s.padded_T; j0 += kAcc) {
    WeightedRows<DV>(ds + j0, s.padded_T, 1, w.q.data(), j0, s.T, w.out.data() + j0 * s.d);
  }
  StoreRows(dk, s, b, h, w.out.data());
  for (int64_t j0 = 0; j0 < s.padded_T; j0 += kAcc) {
    WeightedRows<DV>(p + j0, s.padded_T, 1, w.g.data(), j0, s.T, w.out.data() + j0 * s.d);
  }
  StoreRows(dv, s, b, h, w.out.data());
  return dsink;
}

ffi::Error CheckShapes(ffi::Buffer<ffi::F32>& q, ffi::Buffer<ffi::F32>& k, ffi::Buffer<ffi::F32>& v,
                       ffi::Buffer<ffi::F32>& sink, Shape* s) {
  const auto dims = q.dimensions();
  if (dims.size() != 4) return ffi::Error::InvalidArgument("attention: q, k and v must be [B, T, H, d]");
  for (auto* x : {&k, &v}) {
    const auto other = x->dimensions();
    if (other.size() != 4 || !std::equal(dims.begin(), dims.end(), other.begin())) {
      return ffi::Error::InvalidArgument("attention: q, k and v must have the same shape");
    }
  }
  const auto sd = sink.dimensions();
  if (sd.size() != 2 || sd[0] != dims[0] || sd[1] != dims[2]) {
    return ffi::Error::InvalidArgument("attention: the sink must be [B, H]");
  }
  if (dims[3] % kW != 0 || dims[3] > kW * kMaxDV) {
    return ffi::Error::InvalidArgument("attention: the head dimension must be a multiple of 8, at most 64");
  }
  *s = Shape{dims[0], dims[1], dims[2], dims[3], (dims[1] + kW - 1) / kW * kW,
             1.0f / std::sqrt(static_cast<float>(dims[3]))};
  return ffi::Error::Success();
}

int64_t MaxParts(const Shape& s, int64_t part_entries) {
  return s.B * s.T * s.H * s.d / std::max<int64_t>(1, part_entries);
}

// Calls fn.template operator()<DV>() for the shape's d = 8 DV.
template <typename Fn>
void WithDV(const Shape& s, Fn&& fn) {
  switch (s.d / kW) {
    case 1: fn(std::integral_constant<int, 1>()); break;
    case 2: fn(std::integral_constant<int, 2>()); break;
    case 3: fn(std::integral_constant<int, 3>()); break;
    case 4: fn(std::integral_constant<int, 4>()); break;
    case 5: fn(std::integral_constant<int, 5>()); break;
    case 6: fn(std::integral_constant<int, 6>()); break;
    case 7: fn(std::integral_constant<int, 7>()); break;
    default: fn(std::integral_constant<int, 8>()); break;
  }
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> v,
                   ffi::Buffer<ffi::F32> sink, ffi::ResultBuffer<ffi::F32> o, ffi::ResultBuffer<ffi::F32> stats,
                   int64_t part_entries) {
  Shape s;
  if (ffi::Error e = CheckShapes(q, k, v, sink, &s); e.failure()) return e;
  if (s.B * s.T * s.H == 0) return ffi::Error::Success();
  const float *qp = q.typed_data(), *kp = k.typed_data(), *vp = v.typed_data(), *sp = sink.typed_data();
  float *op = o->typed_data(), *statsp = stats->typed_data();
  WithDV(s, [&](auto dv) {
    wsparse::ParallelFor(pool, s.B * s.H, MaxParts(s, part_entries), [&](int64_t begin, int64_t end) {
      Scratch w(s);
      for (int64_t bh = begin; bh < end; ++bh) {
        ForwardHead<decltype(dv)::value>(qp, kp, vp, sp, op, statsp, s, bh / s.H, bh % s.H, w);
      }
    });
  });
  return ffi::Error::Success();
}

ffi::Error Backward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k, ffi::Buffer<ffi::F32> v,
                    ffi::Buffer<ffi::F32> sink, ffi::Buffer<ffi::F32> stats, ffi::Buffer<ffi::F32> g,
                    ffi::ResultBuffer<ffi::F32> dq, ffi::ResultBuffer<ffi::F32> dk, ffi::ResultBuffer<ffi::F32> dv,
                    ffi::ResultBuffer<ffi::F32> dsink, int64_t part_entries) {
  Shape s;
  if (ffi::Error e = CheckShapes(q, k, v, sink, &s); e.failure()) return e;
  if (s.B * s.T * s.H == 0) return ffi::Error::Success();
  const float *qp = q.typed_data(), *kp = k.typed_data(), *vp = v.typed_data(), *sp = sink.typed_data();
  const float *statsp = stats.typed_data(), *gp = g.typed_data();
  float *dqp = dq->typed_data(), *dkp = dk->typed_data(), *dvp = dv->typed_data(), *dsinkp = dsink->typed_data();
  WithDV(s, [&](auto dvs) {
    wsparse::ParallelFor(pool, s.B * s.H, MaxParts(s, part_entries), [&](int64_t begin, int64_t end) {
      Scratch w(s);
      for (int64_t bh = begin; bh < end; ++bh) {
        dsinkp[bh] = BackwardHead<decltype(dvs)::value>(qp, kp, vp, sp, statsp, gp, dqp, dkp, dvp, s, bh / s.H,
                                                         bh % s.H, w);
      }
    });
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(WsparseAttentionForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // q [B, T, H, d]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // k
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Arg<ffi::Buffer<ffi::F32>>()  // sink [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // out [B, T, H, d]
                                  .Ret<ffi::Buffer<ffi::F32>>()  // stats [B, H, T, 2]: shift, denominator
                                  .Attr<int64_t>("part_entries"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WsparseAttentionBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // q
                                  .Arg<ffi::Buffer<ffi::F32>>()  // k
                                  .Arg<ffi::Buffer<ffi::F32>>()  // v
                                  .Arg<ffi::Buffer<ffi::F32>>()  // sink
                                  .Arg<ffi::Buffer<ffi::F32>>()  // stats
                                  .Arg<ffi::Buffer<ffi::F32>>()  // the output's cotangent
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dq
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dk
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dv
                                  .Ret<ffi::Buffer<ffi::F32>>()  // dsink [B, H]
                                  .Attr<int64_t>("part_entries"));
