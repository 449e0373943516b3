"""The only module that touches orbax: train-state checkpoints with the data iterator state beside them."""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read: missing, corrupt, or of another model."""


class Checkpointer:
    """Saves ``state`` (a pytree of arrays) and ``extra`` (JSON: data iterator state, tokenizer hash) per step."""

    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False),
        )

    def latest_step(self) -> int | None:
        return self._mngr.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._mngr.all_steps())

    def save(self, step: int, state: Any, extra: dict) -> None:
        if step in self._mngr.all_steps():
            return
        self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                      extra=ocp.args.JsonSave(extra)))
        self._mngr.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[int, Any, dict]:
        """Restores into the structure, shapes and shardings of ``abstract_state`` (from jax.eval_shape)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint under {self.directory}")
        if step not in self._mngr.all_steps():
            raise CheckpointError(f"no checkpoint for step {step} under {self.directory}; "
                                  f"available: {self.all_steps()}")
        try:
            restored = self._mngr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), extra=ocp.args.JsonRestore()))
        except Exception as e:  # orbax raises many types for truncated or mismatched files
            raise CheckpointError(
                f"checkpoint {self.directory}/{step} cannot be restored ({type(e).__name__}: {str(e)[:300]}); "
                "it is corrupt or was written by a different model config") from e
        return step, restored.state, dict(restored.extra)

    def close(self) -> None:
        self._mngr.close()


def abstract_like(tree: Any, sharding=None) -> Any:
    """ShapeDtypeStructs for ``tree`` (optionally with one sharding for every leaf), the target of a restore."""
    def leaf(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding if sharding is not None else
                                    getattr(x, "sharding", None))
    return jax.tree.map(leaf, tree)
