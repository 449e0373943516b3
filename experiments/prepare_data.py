"""Prepares (or reuses) the tokenised corpus of a config, or of a trained run; prints the manifest path last.

    python -m experiments.prepare_data --config=configs/demo.py [--config.data.cache_dir=DIR]
    python -m experiments.prepare_data --workdir=runs/demo      # the data a run was trained on (e.g. on a new machine)
"""

import os

from absl import flags

from wsparse import cli
from wsparse import config as C
from wsparse import data

_CONFIG = cli.define_config_file("config", None, "Config file, e.g. configs/demo.py")
_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory: prepare the data of its config.json instead.")


def main(argv: list[str]) -> None:
    del argv
    if (_CONFIG.value is None) == (_WORKDIR.value is None):
        cli.fail("give exactly one of --config and --workdir")
    if _WORKDIR.value:
        cfg = C.load(os.path.join(_WORKDIR.value, "config.json")) if os.path.isdir(_WORKDIR.value) else None
        if cfg is None:
            cli.fail(f"--workdir: {_WORKDIR.value} is not a directory")
    else:
        cfg = C.from_configdict(_CONFIG.value)
    prepared = data.prepare(cfg.data)
    m = prepared.manifest
    print(f"sources: {m['sources'] or '(synthetic only)'}")
    print(f"files: {m['files']}")
    print(f"skipped: {m['skipped']}")
    print(f"documents: {m['documents']}")
    print(f"tokens: train {m['tokens']['train']:,}  val {m['tokens']['val']:,} (real code "
          f"{m['tokens']['val_real']:,}, synthetic {m['tokens']['val_synthetic']:,})")
    print(f"corpus sha256: {m['corpus_sha256']}")
    print(f"tokenizer: {prepared.tokenizer_path} (sha256 {prepared.tokenizer_sha256[:16]})")
    print(f"required tokens: {len(m['required_tokens'])}")
    print(prepared.manifest_path)


if __name__ == "__main__":
    cli.run(main)
