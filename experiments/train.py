"""Train (or resume) a weight-sparse transformer.

    python -m experiments.train --config=configs/demo.py --workdir=runs/demo [--config.train.steps=500 ...]

Re-running the same command on a workdir with checkpoints resumes from the latest one.
"""

from absl import flags

from wsparse import cli
from wsparse import config as config_lib

_CONFIG = cli.define_config_file("config", "configs/demo.py", "Run config file (ml_collections).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: config, tokenizer, checkpoints, metrics.",
                               required=True)


def main(argv):
    del argv
    cfg = config_lib.from_configdict(_CONFIG.value)
    from wsparse import parallel

    parallel.initialize(cfg.distributed)  # before any other JAX call
    from wsparse import train

    result = train.train(cfg, _WORKDIR.value)
    state = "stopped early (resume with the same command)" if result.stopped_early else "done"
    eval_loss = "-" if result.final_eval_loss is None else f"{result.final_eval_loss:.4f}"
    print(f"{state}: step {int(result.state.step)}, train loss {result.final_loss:.4f}, eval loss {eval_loss}")
    print(_WORKDIR.value)


if __name__ == "__main__":
    cli.run(main)
