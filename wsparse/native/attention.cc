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
//
// Vectors are GCC/Clang vector extensions of 8 floats (AVX2 registers here; pairs of 4 on other CPUs).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

typedef float Vec __attribute__((vector_size(32)));
typedef int32_t IVec __attribute__((vector_size(32)));
typedef float UnalignedVec __attribute__((vector_size(32), aligned(4)));
constexpr int64_t kW = 8;       // floats per vector
constexpr int64_t kMaxDV = 8;   // d <= 64
constexpr int64_t kGroup = 4;   // key vectors computed together; rows are padded to whole groups
constexpr float kInf = std::numeric_limits<float>::infinity();

inline Vec Load(const float* p) { return *reinterpret_cast<const UnalignedVec*>(p); }
inline void Store(float* p, Vec v) { *reinterpret_cast<UnalignedVec*>(p) = v; }
inline Vec Splat(float x) { return Vec{x, x, x, x, x, x, x, x}; }
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
  int64_t B, T, H, d, padded_T;  // padded_T: T rounded up to whole groups of vectors
  float scale_divisor;            // sqrt(d): scores are (q . k) / sqrt(d)
  int64_t At(int64_t b, int64_t t, int64_t h) const { return ((b * T + t) * H + h) * d; }
};

// One head's [T, d] rows, or their transpose [d, padded_T] (zero past T), out of / into the [B, T, H, d] layout.
void LoadRows(const float* x, const Shape& s, int64_t b, int64_t h, float* rows) {
  for (int64_t t = 0; t < s.T; ++t) {
    for (int64_t e = 0; e < s.d; e += kW) Store(rows + t * s.d + e, Load(x + s.At(b, t, h) + e));
  }
}

void LoadColumns(const float* x, const Shape& s, int64_t b, int64_t h, float* cols) {
  std::fill(cols, cols + s.d * s.padded_T, 0.0f);
  for (int64_t t = 0; t < s.T; ++t) {
    const float* row = x + s.At(b, t, h);
    for (int64_t e = 0; e < s.d; ++e) cols[e * s.padded_T + t] = row[e];
  }
}

void StoreRows(float* x, const Shape& s, int64_t b, int64_t h, const float* rows) {
  for (int64_t t = 0; t < s.T; ++t) {
    for (int64_t e = 0; e < s.d; e += kW) Store(x + s.At(b, t, h) + e, Load(rows + t * s.d + e));
  }
}

// out[v] = sum_e a[e] * cols[e, 8v : 8v + 8] for the n_vec vectors of keys (and up to 3 more: junk past n_vec), over
// `div` (1: none). Four output vectors at a time keep four independent chains of multiply-adds in flight.
template <int DV>
inline void RowTimesColumns(const float* a, const float* cols, const Shape& s, int64_t n_vec, float div, Vec* out) {
  for (int64_t v = 0; v < n_vec; v += kGroup) {
    Vec acc[kGroup] = {};
    for (int64_t e = 0; e < DV * kW; ++e) {
      const Vec ae = Splat(a[e]);
      const float* col = cols + e * s.padded_T + v * kW;
      for (int64_t i = 0; i < kGroup; ++i) acc[i] += ae * Load(col + i * kW);
    }
    for (int64_t i = 0; i < kGroup; ++i) out[v + i] = div == 1.0f ? acc[i] : acc[i] / div;
  }
}

// Query row t's probabilities (n_vec vectors, 0 past key t) from its scores, shift m and denominator.
inline void Probabilities(Vec* row, int64_t n_vec, float m, float denominator) {
  for (int64_t v = 0; v < n_vec; ++v) row[v] = Exp(row[v] - m) / denominator;
}

// Sets the scores of keys after t (in the last vector) to -inf.
inline void MaskFuture(Vec* row, int64_t n_vec, int64_t t) {
  IVec key = {0, 1, 2, 3, 4, 5, 6, 7};
  key += static_cast<int32_t>((n_vec - 1) * kW);
  row[n_vec - 1] = key > static_cast<int32_t>(t) ? Splat(-kInf) : row[n_vec - 1];
}

// out[0, 8 DV) = sum_{j < n} weight[j * stride] * rows[j] (rows of 8 DV floats), with kGroup accumulator sets to
// keep independent chains of multiply-adds in flight.
template <int DV>
inline void WeightedRows(const float* weight, int64_t stride, const float* rows, int64_t n, float* out) {
  Vec acc[kGroup][DV] = {};
  int64_t j = 0;
  for (; j + kGroup <= n; j += kGroup) {
    for (int64_t i = 0; i < kGroup; ++i) {
      const Vec wi = Splat(weight[(j + i) * stride]);
      for (int dv = 0; dv < DV; ++dv) acc[i][dv] += wi * Load(rows + (j + i) * DV * kW + dv * kW);
    }
  }
  for (; j < n; ++j) {
    const Vec wj = Splat(weight[j * stride]);
    for (int dv = 0; dv < DV; ++dv) acc[0][dv] += wj * Load(rows + j * DV * kW + dv * kW);
  }
  for (int dv = 0; dv < DV; ++dv) Store(out + dv * kW, (acc[0][dv] + acc[1][dv]) + (acc[2][dv] + acc[3][dv]));
}

// Per-thread scratch for one head. The [T, padded_T] rows of scores, probabilities and their gradients are vectors
// (aligned as vectors must be); the rest is read through unaligned loads.
struct Scratch {
  std::vector<float> q, k, v, g, out, k_cols, v_cols;
  std::vector<Vec> p_vec, ds_vec;
  explicit Scratch(const Shape& s)
      : q(s.T * s.d), k(s.T * s.d), v(s.T * s.d), g(s.T * s.d), out(s.T * s.d), k_cols(s.d * s.padded_T),
        v_cols(s.d * s.padded_T), p_vec(s.T * s.padded_T / kW), ds_vec(s.T * s.padded_T / kW) {}
  Vec* p_row(const Shape& s, int64_t t) { return p_vec.data() + t * s.padded_T / kW; }
  Vec* ds_row(const Shape& s, int64_t t) { return ds_vec.data() + t * s.padded_T / kW; }
  const float* p() const { return reinterpret_cast<const float*>(p_vec.data()); }
  const float* ds() const { return reinterpret_cast<const float*>(ds_vec.data()); }
};

template <int DV>
void ForwardHead(const float* q, const float* k, const float* v, const float* sink, float* o, float* stats,
                 const Shape& s, int64_t b, int64_t h, Scratch& w) {
  LoadRows(q, s, b, h, w.q.data());
  LoadRows(v, s, b, h, w.v.data());
  LoadColumns(k, s, b, h, w.k_cols.data());
  const float sink_logit = sink[b * s.H + h];
  float* stats_bh = stats + (b * s.H + h) * s.T * 2;
  Vec* row = w.p_row(s, 0);  // one row's scores, then probabilities
  for (int64_t t = 0; t < s.T; ++t) {
    const int64_t n_vec = t / kW + 1;
    RowTimesColumns<DV>(w.q.data() + t * s.d, w.k_cols.data(), s, n_vec, s.scale_divisor, row);
    MaskFuture(row, n_vec, t);
    Vec mv = row[0];
    for (int64_t j = 1; j < n_vec; ++j) mv = Max(mv, row[j]);
    const float m = std::max(MaxOf(mv), sink_logit);
    Vec sum = {};
    for (int64_t j = 0; j < n_vec; ++j) {
      row[j] = Exp(row[j] - m);
      sum += row[j];
    }
    const float denominator = Sum(sum) + Exp(sink_logit - m);
    stats_bh[2 * t] = m;
    stats_bh[2 * t + 1] = denominator;
    for (int64_t j = 0; j < n_vec; ++j) row[j] /= denominator;  // the bits Probabilities gives the backward
    WeightedRows<DV>(reinterpret_cast<const float*>(row), 1, w.v.data(), t + 1, w.out.data() + t * s.d);
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
  float dsink = 0.0f;
  for (int64_t t = 0; t < s.T; ++t) {
    const int64_t n_vec = t / kW + 1;
    const float m = stats_bh[2 * t], denominator = stats_bh[2 * t + 1];
    Vec* p = w.p_row(s, t);
    Vec* ds = w.ds_row(s, t);
    RowTimesColumns<DV>(w.q.data() + t * s.d, w.k_cols.data(), s, n_vec, s.scale_divisor, p);
    MaskFuture(p, n_vec, t);
    Probabilities(p, n_vec, m, denominator);
    Vec* dpv = ds;  // dp[j] = g_t . v_j, in the ds row until ds replaces it
    RowTimesColumns<DV>(w.g.data() + t * s.d, w.v_cols.data(), s, n_vec, 1.0f, dpv);
    Vec pdp_v = {};
    for (int64_t j = 0; j < n_vec; ++j) pdp_v += p[j] * dpv[j];
    const float pdp = Sum(pdp_v);
    for (int64_t j = 0; j < n_vec; ++j) ds[j] = p[j] * (dpv[j] - pdp) / s.scale_divisor;
    dsink -= Exp(sink_logit - m) / denominator * pdp;
    WeightedRows<DV>(reinterpret_cast<const float*>(ds), 1, w.k.data(), t + 1, w.out.data() + t * s.d);
  }
  StoreRows(dq, s, b, h, w.out.data());
  // Key j's gradients sum over the query rows t >= j: a column of ds (and of p) against the rows of q (and of g).
  for (int64_t j = 0; j < s.T; ++j) {
    WeightedRows<DV>(w.ds() + j * s.padded_T + j, s.padded_T, w.q.data() + j * s.d, s.T - j,
                     w.out.data() + j * s.d);
  }
  StoreRows(dk, s, b, h, w.out.data());
  for (int64_t j = 0; j < s.T; ++j) {
    WeightedRows<DV>(w.p() + j * s.padded_T + j, s.padded_T, w.g.data() + j * s.d, s.T - j,
                     w.out.data() + j * s.d);
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
  *s = Shape{dims[0], dims[1], dims[2], dims[3], (dims[1] + kGroup * kW - 1) / (kGroup * kW) * (kGroup * kW),
             std::sqrt(static_cast<float>(dims[3]))};
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
