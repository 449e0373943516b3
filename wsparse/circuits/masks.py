"""Node masks (docs/method.md section 5): the layout of mask units over node locations, parameterisations, temperatures.

Every node location of the model (``model.node_shapes``) is one slice of a flat node vector, so a whole circuit is a
single ``[N]`` array that can be ranked, top-k'd and vmapped. Masks are learned per *unit*: with ``tie_qk`` the q and
k nodes of a layer share one unit (``unit_of_node`` maps node -> unit), otherwise unit == node.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
NodeFn = Callable[[str, Array], Array]


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each node location lives in the flat node vector, and which mask unit drives each node."""

    names: tuple[str, ...]
    widths: tuple[int, ...]
    unit_of_node: np.ndarray  # int32[N]
    n_units: int

    @property
    def offsets(self) -> dict[str, int]:
        return dict(zip(self.names, np.cumsum((0,) + self.widths[:-1]).tolist()))

    @property
    def n_nodes(self) -> int:
        return int(sum(self.widths))

    def slice(self, name: str) -> slice:
        off = self.offsets[name]
        return slice(off, off + self.widths[self.names.index(name)])

    def nodes(self, m_units: Array) -> Array:
        """Unit values ``[..., U]`` -> node values ``[..., N]``."""
        return jnp.take(m_units, jnp.asarray(self.unit_of_node), axis=-1)

    def split(self, v_nodes: np.ndarray) -> dict[str, np.ndarray]:
        """Flat ``[N]`` -> ``{location: [width]}``."""
        return {n: np.asarray(v_nodes)[self.slice(n)] for n in self.names}

    def unit_scores(self, v_nodes: Array) -> Array:
        """Sums node values into their units (a tied q/k unit gets both nodes' scores)."""
        return jnp.zeros(v_nodes.shape[:-1] + (self.n_units,), v_nodes.dtype).at[..., self.unit_of_node].add(v_nodes)


def make_layout(shapes: Mapping[str, int], tie_qk: bool = False) -> Layout:
    """Builds the flat layout from ``node_shapes(cfg)`` (its order is kept)."""
    names, widths = tuple(shapes), tuple(int(w) for w in shapes.values())
    unit_of_node = np.arange(sum(widths), dtype=np.int32)
    if tie_qk:
        offs = dict(zip(names, np.cumsum((0,) + widths[:-1]).tolist()))
        for n in names:
            if n.endswith(".attn.k"):
                q = n[: -len("k")] + "q"
                unit_of_node[offs[n]: offs[n] + shapes[n]] = np.arange(offs[q], offs[q] + shapes[q])
        _, unit_of_node = np.unique(unit_of_node, return_inverse=True)  # renumber units 0..U-1 in node order
    return Layout(names, widths, unit_of_node.astype(np.int32), int(unit_of_node.max()) + 1)


# -- parameterisations -------------------------------------------------------------------------------------------------


def heaviside(tau: Array, temp: Array | float) -> Array:
    """H(tau) forward; d/dtau = sigmoid'(tau / T) / T backward (the paper's straight-through surrogate)."""
    soft = jax.nn.sigmoid(tau / temp)
    hard = (tau > 0).astype(tau.dtype)
    return soft + jax.lax.stop_gradient(hard - soft)


def sigmoid(tau: Array, temp: Array | float) -> Array:
    """The relaxation: sigmoid(tau / T); T annealed toward 0 makes it a step."""
    return jax.nn.sigmoid(tau / temp)


MASK_FNS: dict[str, Callable[[Array, Array | float], Array]] = {"heaviside": heaviside, "sigmoid": sigmoid}


def temperature(kind: str, start: float, end: float, progress: Array) -> Array:
    """Temperature at ``progress`` in [0, 1]: constant, linear, geometric or poly5 ((1 - p)^5 from start to end)."""
    p = jnp.clip(progress, 0.0, 1.0)
    if kind == "constant":
        return jnp.asarray(start, jnp.float32) + 0.0 * p
    if kind == "linear":
        return start + (end - start) * p
    if kind == "geometric":
        return start * (end / start) ** p
    if kind == "poly5":
        return end + (start - end) * (1.0 - p) ** 5
    raise ValueError(f"unknown temperature schedule {kind!r}; use constant, linear, geometric or poly5")


def init_tau(key: Array, n_units: int, bias: Array | float, scale: Array | float) -> Array:
    """N(bias, scale), clamped like every later step: every node starts on (bias > 0)."""
    return jnp.clip(bias + scale * jax.random.normal(key, (n_units,), jnp.float32), -1.0, 1.0)


# -- ablation through the model's node_fn hook ------------------------------------------------------------------------


def masked_node_fn(layout: Layout, m_nodes: Array, ablate: Mapping[str, Array],
                   positions_B: Array | None = None) -> NodeFn:
    """``x -> m * x + (1 - m) * ablate`` at every node location.

    ``m_nodes`` is ``[N]`` (shared by all sequences) or ``[B, N]`` (one mask per sequence, for attributions);
    ``ablate[name]`` broadcasts against ``[B, T, width]`` (a mean ``[width]``, or resampled ``[B, T, width]``).
    ``positions_B``: the forward's, whose last block calls the hook with ``[B, 1, width]`` at those positions; resampled
    values are read there. With m = 1 the output is exactly x; with m = 0 exactly the ablation value.
    """

    def node_fn(name: str, x: Array) -> Array:
        m = m_nodes[..., layout.slice(name)].astype(x.dtype)
        if m.ndim == 2:
            m = m[:, None, :]
        a = ablate[name]
        if a.ndim == 3 and a.shape[1] != x.shape[1]:
            a = a[jnp.arange(a.shape[0]), positions_B][:, None]
        return m * x + (1 - m) * a.astype(x.dtype)

    return node_fn
