"""The task registry: built-in tasks register at import; users call ``register`` from their own code."""

from __future__ import annotations

from wsparse.tasks.base import Task, TaskError

_TASKS: dict[str, Task] = {}


def register(task: Task, *, replace: bool = False) -> Task:
    """Adds ``task``; register before the tokenizer is built so its candidates become single tokens."""
    if not task.name or not task.name.isidentifier():
        raise TaskError(f"task name {task.name!r} must be a non-empty identifier")
    if task.name in _TASKS and not replace:
        raise TaskError(f"task {task.name} is already registered; pass replace=True to override it")
    if not task.candidates or any(not isinstance(c, str) or not c for c in task.candidates):
        raise TaskError(f"task {task.name}: candidates must be non-empty strings, got {task.candidates!r}")
    _TASKS[task.name] = task
    return task


def unregister(name: str) -> None:
    _TASKS.pop(name, None)


def names() -> tuple[str, ...]:
    return tuple(_TASKS)


def get(name: str) -> Task:
    try:
        return _TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; known: {', '.join(_TASKS)}") from None


def required_tokens() -> tuple[str, ...]:
    """Every candidate of every registered task, deduplicated in registration order."""
    return tuple(dict.fromkeys(c for t in _TASKS.values() for c in t.candidates))
