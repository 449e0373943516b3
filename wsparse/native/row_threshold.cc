// The exact k-th largest entry of each row of a non-negative float32 array: AbsTopK's threshold on CPU.
//
// XLA:CPU runs the bisection of wsparse/topk.py as a loop of small kernels over blocks of rows, each pass reading the
// whole block, and a block runs until its slowest row is done. Here each row is bisected on its own, in L1, with
// loops the compiler vectorises, and stops as soon as its k-th entry is known. Built on first use and loaded by
// wsparse/native/__init__.py; the XLA bisection is the fallback where no C++ compiler is found.
//
// Order key of an entry: its float32 bit pattern with the sign cleared, which orders non-negative floats like their
// values. NaN and subnormals read as 0, as in the XLA bisection on CPU (a NaN never counts as at or above a
// threshold, and XLA:CPU compares subnormals as zero). The result is the k-th largest key read back as a float.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "parallel_for.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int32_t kMaxKey = std::numeric_limits<int32_t>::max();

inline int32_t OrderKey(uint32_t bits) {
  bits &= 0x7fffffffu;
  return (bits > 0x7f800000u || bits < 0x00800000u) ? 0 : static_cast<int32_t>(bits);
}

// The loops below are written in the forms GCC and Clang vectorise (branch-free selects, no aliasing).
int64_t CountAtLeast(const int32_t* __restrict v, int64_t n, int32_t t) {
  int32_t c = 0;
  for (int64_t j = 0; j < n; ++j) c += v[j] >= t;
  return c;
}

int32_t MinAtLeast(const int32_t* __restrict v, int64_t n, int32_t t) {
  int32_t m = kMaxKey;
  for (int64_t j = 0; j < n; ++j) {
    const int32_t y = v[j] | (-static_cast<int32_t>(v[j] < t) & kMaxKey);  // kMaxKey below t
    m = m < y ? m : y;
  }
  return m;
}

// Maxima of the k strided groups {g, g + k, g + 2k, ...} of v[0, k * group).
void GroupMax(const int32_t* __restrict v, int32_t* __restrict out, int64_t k, int64_t group) {
  for (int64_t g = 0; g < k; ++g) out[g] = v[g];
  for (int64_t s = 1; s < group; ++s) {
    const int32_t* __restrict part = v + s * k;
    for (int64_t g = 0; g < k; ++g) out[g] = out[g] > part[g] ? out[g] : part[g];
  }
}

// The k-th largest of the keys v[0, n), for 1 <= k <= n; `scratch` holds k entries.
//
// A bisection on the key with count(>= lo) >= k > count(>= hi) throughout. It starts from lo = the smallest of the
// maxima of k disjoint groups (k distinct entries, so at most the k-th largest) and hi = one above the largest
// entry, and it stops at the first candidate that exactly k entries reach: the k-th largest is then the smallest of
// them.
int32_t KthLargest(const int32_t* v, int64_t n, int64_t k, int32_t* scratch) {
  const int64_t group = n / k;
  GroupMax(v, scratch, k, group);
  int32_t lower = kMaxKey, largest = 0;
  for (int64_t g = 0; g < k; ++g) {
    lower = lower < scratch[g] ? lower : scratch[g];
    largest = largest > scratch[g] ? largest : scratch[g];
  }
  for (int64_t j = k * group; j < n; ++j) largest = largest > v[j] ? largest : v[j];
  int64_t lo = lower, hi = static_cast<int64_t>(largest) + 1;
  while (hi - lo > 1) {
    const int32_t mid = static_cast<int32_t>(lo + (hi - lo) / 2);
    const int64_t c = CountAtLeast(v, n, mid);
    if (c == k) return MinAtLeast(v, n, mid);
    if (c > k) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return static_cast<int32_t>(lo);
}

void Rows(const uint32_t* in, float* result, int64_t begin, int64_t end, int64_t width, int64_t k) {
  std::vector<int32_t> keys(width), scratch(k);
  for (int64_t r = begin; r < end; ++r) {
    const uint32_t* row = in + r * width;
    for (int64_t j = 0; j < width; ++j) keys[j] = OrderKey(row[j]);
    const int32_t kth = KthLargest(keys.data(), width, k, scratch.data());
    std::memcpy(result + r, &kth, sizeof(float));
  }
}

// `part_entries`: the fewest entries worth a part of their own (below twice that, a call stays on its thread).
ffi::Error RowThreshold(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> out, int64_t k,
                        int64_t part_entries) {
  const auto dims = x.dimensions();
  if (dims.size() < 1) return ffi::Error::InvalidArgument("row_threshold: the input needs a last axis");
  const int64_t width = dims.back();
  if (k < 1 || k > width) return ffi::Error::InvalidArgument("row_threshold: needs 1 <= k <= width");
  const int64_t rows = static_cast<int64_t>(x.element_count()) / width;
  const uint32_t* in = reinterpret_cast<const uint32_t*>(x.typed_data());
  float* result = out->typed_data();
  wsparse::ParallelFor(pool, rows, rows * width / std::max<int64_t>(1, part_entries),
                       [&](int64_t begin, int64_t end) { Rows(in, result, begin, end, width, k); });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(WsparseRowThreshold, RowThreshold,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("part_entries"));
