"""What XLA's persistent compilation cache saves an entry point: one command in three fresh processes, in turn with
the cache off, with an empty cache, and with the cache the previous process filled.

    python benchmarks/compile_cache.py --workdir=runs/demo --task=var_if

The command is `experiments.prune --force` of one task on a copy of the run (the run itself is not touched): a new
process pays for compiling the mask loop, the bisection and the evaluations before its first step. Prints each
process's wall time, the circuit it found (the same in all three) and the cache's size.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "A trained run (copied; only its copy is written).")
_TASK = flags.DEFINE_string("task", "var_if", "The task to prune.")
_CONFIG = flags.DEFINE_string("config", "configs/prune.py:fast", "Pruning config.")


def main(argv):
    del argv
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        shutil.copytree(_WORKDIR.value, run, ignore=shutil.ignore_patterns("report"))
        cache = os.path.join(tmp, "xla")
        cmd = [sys.executable, "-m", "experiments.prune", f"--workdir={run}", f"--task={_TASK.value}", "--force",
               f"--config={_CONFIG.value}"]
        env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
        print(f"{' '.join(cmd[1:])}\n{'cache':>6} {'wall':>8}  circuit")
        for mode in ("off", "cold", "warm"):
            env["WSPARSE_COMPILE_CACHE"] = "off" if mode == "off" else cache
            t0 = time.perf_counter()
            out = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=True).stdout
            line = next((s for s in out.splitlines() if " nodes, " in s), "?")
            print(f"{mode:>6} {time.perf_counter() - t0:7.1f}s  {line.split('): ', 1)[-1]}", flush=True)
        files = [os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs]
        print(f"cache: {len(files)} entries, {sum(os.path.getsize(f) for f in files) / 2**20:.1f} MiB")


if __name__ == "__main__":
    app.run(main)
