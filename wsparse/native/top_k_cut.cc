// Where the weight projection cuts a tensor: the k-th largest of a flat uint32 key (|w|'s bits, with the min-alive
// reservation in the top bit), and how many of the entries tied with it to keep, by lowest index.
//
// The XLA bisection of wsparse/sparsity.py reads the whole tensor 32 times (one compare-and-count pass per bit, then
// more over the index bits when entries tie); at the paper's 4x shape that is more than half of a CPU train step
// (docs/results/speed.md). Here a radix select reads it twice (a histogram of the top byte, then the entries in the
// chosen bin, copied out) and the rest runs on that copy; a last scan, which stops early, finds where the ties end.
// Built and loaded with the other kernels by wsparse/native/__init__.py.

#include <cstdint>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Among the n keys, the one of rank `rank` (1 = largest) in the byte at `shift`, given that every key in `keys`
// already shares the bytes above it: returns that byte, and lowers `rank` by the number of keys in larger bins.
uint32_t PickByte(const uint32_t* keys, int64_t n, int shift, int64_t* rank) {
  int64_t hist[256] = {0};
  for (int64_t i = 0; i < n; ++i) ++hist[(keys[i] >> shift) & 255u];
  int64_t above = 0;
  int b = 255;
  for (; b > 0 && above + hist[b] < *rank; --b) above += hist[b];
  *rank -= above;
  return static_cast<uint32_t>(b);
}

ffi::Error TopKCut(ffi::Buffer<ffi::U32> key, ffi::Buffer<ffi::S32> k_in, ffi::ResultBuffer<ffi::U32> cut,
                   ffi::ResultBuffer<ffi::S32> stop) {
  const int64_t n = static_cast<int64_t>(key.element_count());
  if (n == 0) return ffi::Error::InvalidArgument("top_k_cut: empty key");
  const uint32_t* v = key.typed_data();
  int64_t rank = k_in.typed_data()[0];
  rank = rank < 1 ? 1 : (rank > n ? n : rank);
  // The top byte over the whole key, then the keys in its bin, copied, for the three bytes below.
  uint32_t t = PickByte(v, n, 24, &rank) << 24;
  std::vector<uint32_t> bin;
  bin.reserve(1024);
  for (int64_t i = 0; i < n; ++i) {
    if ((v[i] >> 24) == (t >> 24)) bin.push_back(v[i]);
  }
  for (int shift = 16; shift >= 0; shift -= 8) {
    t |= PickByte(bin.data(), static_cast<int64_t>(bin.size()), shift, &rank) << shift;
    const uint32_t high = ~((1u << shift) - 1u);  // the bytes fixed so far
    int64_t kept = 0;
    for (const uint32_t x : bin) {
      if ((x & high) == (t & high)) bin[kept++] = x;
    }
    bin.resize(kept);
  }
  // `rank` is now how many keys equal to t are kept: the first `rank` of them by index.
  int64_t seen = 0, i = 0;
  for (; i < n && seen < rank; ++i) seen += v[i] == t;
  cut->typed_data()[0] = t;
  stop->typed_data()[0] = static_cast<int32_t>(i);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(WsparseTopKCut, TopKCut,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::U32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());
