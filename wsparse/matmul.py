"""The forward pass's weight products, with weight gradients that XLA:CPU computes at the speed of its other dots.

``linear(x, w)`` is ``x @ w`` (``w`` stored ``[in, out]``) and ``unembed(x, w)`` the unembedding
``einsum("...d,vd->...v")`` with float32 logits (``w`` stored ``[vocab, d]``). Their values and their input
gradients are autodiff's, bit for bit. Their weight gradient is a contraction over the token axis, ``x^T g``, which
XLA:CPU runs as a dot with both operands read across rows, 2-3x slower than its dots in the usual layout; an XLA
transpose of ``x`` does not help, because XLA fuses it with the ops that produce ``x`` into a loop that is slower
still. So on CPU, where wsparse's C++ kernels build, the weight gradient is ``transpose(x) @ g`` (or
``transpose(g) @ x``, whichever operand is narrower) with the transpose done by ``native.transpose``, which XLA
cannot fuse (docs/results/speed.md: the train step 12-16% faster). Its float rounding differs from autodiff's dot:
the sums over the tokens run in another order (tests/test_matmul.py bounds the difference at 2e-6 of the largest
entry). Elsewhere (GPU, TPU, no compiler, ``WSPARSE_NATIVE=0``) both are plain autodiff.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from wsparse import native


def _product(x: jax.Array, w: jax.Array, w_out_in: bool) -> jax.Array:
    if w_out_in:
        return jnp.einsum("...d,vd->...v", x, w, preferred_element_type=jnp.float32)
    return x @ w


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _product_native_grad(x: jax.Array, w: jax.Array, w_out_in: bool) -> jax.Array:
    return _product(x, w, w_out_in)


def _fwd(x, w, w_out_in):
    return _product(x, w, w_out_in), (x, w)


def _bwd(w_out_in, res, g):
    x, w = res
    _, x_vjp = jax.vjp(lambda x: _product(x, w, w_out_in), x)
    (dx,) = x_vjp(g)  # autodiff's input gradient, the same ops
    x_NI, g_NO = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    # The narrower of x and g is transposed; the small product is transposed by the kernel too where needed (XLA
    # would fold its own transpose into the dot, back into the slow form).
    if x_NI.shape[1] <= g_NO.shape[1]:
        dw_IO = jnp.matmul(native.transpose(x_NI), g_NO, preferred_element_type=jnp.float32)
        dw = native.transpose(dw_IO) if w_out_in else dw_IO
    else:
        dw_OI = jnp.matmul(native.transpose(g_NO), x_NI, preferred_element_type=jnp.float32)
        dw = dw_OI if w_out_in else native.transpose(dw_OI)
    return dx, dw.astype(w.dtype)


_product_native_grad.defvjp(_fwd, _bwd)


def native_weight_grads() -> bool:
    """Whether weight gradients go through ``native.transpose``: on CPU, where the kernels build."""
    return native.in_use()


def _call(x: jax.Array, w: jax.Array, w_out_in: bool) -> jax.Array:
    if native_weight_grads():
        return _product_native_grad(x, w, w_out_in)
    return _product(x, w, w_out_in)


def linear(x: jax.Array, w: jax.Array) -> jax.Array:
    """``x @ w`` for ``w`` ``[in, out]``."""
    return _call(x, w, False)


def unembed(x: jax.Array, w: jax.Array) -> jax.Array:
    """Float32 logits ``x @ w.T`` for ``w`` ``[vocab, d]``."""
    return _call(x, w, True)
