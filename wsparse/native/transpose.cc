// The transpose of the last two axes of an array (any leading axes, elements of 1, 2, 4 or 8 bytes): the weight
// gradient's operand on CPU.
//
// A linear layer's weight gradient is x^T g, a contraction over the token axis, which XLA:CPU runs as a dot with both
// operands transposed, 2-3x slower than a dot in the usual layout (docs/results/speed.md). Materialising x^T first
// fixes the dot, but XLA fuses a transpose with the ops that produce its operand and emits the fusion as a loop that
// reads every operand across rows, over 15x slower than a copy. Here the transpose is a custom call, which XLA cannot
// fuse: it reads the operand XLA already holds for the forward pass, in 16 x 16 tiles, writing whole rows of a tile.
// Built and loaded with the other kernels by wsparse/native/__init__.py.

#include <cstdint>
#include <cstring>

#include "vec.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kTile = 16;  // 16 x 16 float32 tiles: 1.4 ms for [4096, 512] against 2.6 ms for 32 x 32 here

template <typename T>
void TransposeMatrix(const T* __restrict in, T* __restrict out, int64_t rows, int64_t cols) {
  for (int64_t i0 = 0; i0 < rows; i0 += kTile) {
    const int64_t i1 = i0 + kTile < rows ? i0 + kTile : rows;
    for (int64_t j0 = 0; j0 < cols; j0 += kTile) {
      const int64_t j1 = j0 + kTile < cols ? j0 + kTile : cols;
      for (int64_t j = j0; j < j1; ++j) {
        T* __restrict row = out + j * rows;
        for (int64_t i = i0; i < i1; ++i) row[i] = in[i * cols + j];
      }
    }
  }
}

// 4-byte elements: 8 x 8 tiles through vector registers inside each 16 x 16 tile, the edges as above.
template <>
void TransposeMatrix<uint32_t>(const uint32_t* __restrict in, uint32_t* __restrict out, int64_t rows, int64_t cols) {
  const float* x = reinterpret_cast<const float*>(in);
  float* y = reinterpret_cast<float*>(out);
  const int64_t full_rows = rows / 8 * 8, full_cols = cols / 8 * 8;
  for (int64_t i0 = 0; i0 < full_rows; i0 += kTile) {
    for (int64_t j0 = 0; j0 < full_cols; j0 += kTile) {
      for (int64_t i = i0; i < i0 + kTile && i < full_rows; i += 8) {
        for (int64_t j = j0; j < j0 + kTile && j < full_cols; j += 8) {
          wsparse::Transpose8x8(x + i * cols + j, cols, y + j * rows + i, rows);
        }
      }
    }
  }
  for (int64_t i = 0; i < rows; ++i) {  // the edges: rows past full_rows, columns past full_cols
    for (int64_t j = (i < full_rows ? full_cols : 0); j < cols; ++j) out[j * rows + i] = in[i * cols + j];
  }
}

template <typename T>
void TransposeAll(const void* in, void* out, int64_t batch, int64_t rows, int64_t cols) {
  for (int64_t b = 0; b < batch; ++b) {
    TransposeMatrix(static_cast<const T*>(in) + b * rows * cols, static_cast<T*>(out) + b * rows * cols, rows, cols);
  }
}

ffi::Error Transpose(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y) {
  const auto dims = x.dimensions();
  if (dims.size() < 2) return ffi::Error::InvalidArgument("transpose: the input needs two axes");
  const int64_t rows = dims[dims.size() - 2], cols = dims[dims.size() - 1];
  if (rows * cols == 0) return ffi::Error::Success();
  const int64_t batch = static_cast<int64_t>(x.element_count()) / (rows * cols);
  switch (ffi::ByteWidth(x.element_type())) {
    case 1: TransposeAll<uint8_t>(x.untyped_data(), y->untyped_data(), batch, rows, cols); break;
    case 2: TransposeAll<uint16_t>(x.untyped_data(), y->untyped_data(), batch, rows, cols); break;
    case 4: TransposeAll<uint32_t>(x.untyped_data(), y->untyped_data(), batch, rows, cols); break;
    case 8: TransposeAll<uint64_t>(x.untyped_data(), y->untyped_data(), batch, rows, cols); break;
    default: return ffi::Error::InvalidArgument("transpose: elements of 1, 2, 4 or 8 bytes only");
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(WsparseTranspose, Transpose,
                              ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>());
