"""Prepares (or reuses) the tokenised corpus of a config; prints the manifest path last.

    python -m experiments.prepare_data --config=configs/demo.py [--config.data.cache_dir=DIR]
"""

from absl import flags

from wsparse import cli
from wsparse import config as C
from wsparse import data

_CONFIG = cli.define_config_file("config", None, "Config file, e.g. configs/demo.py")


def main(argv: list[str]) -> None:
    del argv
    cfg = C.from_configdict(_CONFIG.value)
    prepared = data.prepare(cfg.data)
    m = prepared.manifest
    print(f"sources: {m['sources'] or '(synthetic only)'}")
    print(f"files: {m['files']}")
    print(f"skipped: {m['skipped']}")
    print(f"documents: {m['documents']}")
    print(f"tokens: train {m['tokens']['train']:,}  val {m['tokens']['val']:,}")
    print(f"tokenizer: {prepared.tokenizer_path} (sha256 {prepared.tokenizer_sha256[:16]})")
    print(f"required tokens: {len(m['required_tokens'])}")
    print(prepared.manifest_path)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config"])
    cli.run(main)
