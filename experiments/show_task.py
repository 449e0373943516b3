"""Print a few pairs of a task with token boundaries marked, so a person can check them.

    python -m experiments.show_task for_while [--n=3] [--split=test] [--tokenizer=PATH]

PATH is a tokenizer.json, or a directory holding one (a run or a prepared-data directory). Without it, the tokenizer
prepared for configs/demo.py is used (built on first use, which takes a while).
"""

import os

from absl import app, flags

from wsparse import cli

_N = flags.DEFINE_integer("n", 3, "Pairs to show.")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test"], "Which split.")
_SEED = flags.DEFINE_integer("seed", 0, "Generation seed.")
_TOKENIZER = flags.DEFINE_string("tokenizer", None, "tokenizer.json or a directory containing one.")


def _tokenizer_path() -> str:
    path = _TOKENIZER.value
    if path:
        path = os.path.join(path, "tokenizer.json") if os.path.isdir(path) else path
        if not os.path.exists(path):
            cli.fail(f"--tokenizer: {path} does not exist")
        return path
    from configs.demo import get_config
    from wsparse import config, data

    return data.prepare(config.from_configdict(get_config()).data).tokenizer_path


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python -m experiments.show_task NAME [--n=3] [--tokenizer=PATH]")
    from wsparse import tasks
    from wsparse.data import tokenizer as tok_lib

    task = tasks.get(argv[1])
    tok = tok_lib.load(_tokenizer_path())
    pairs = task.generate(_SPLIT.value, _N.value, _SEED.value)
    _, why = tasks.check_pairs(tok, pairs)
    print(f"# {task.name}: {task.description}\n# candidates: {list(task.candidates)}")
    if why:
        print(f"# {sum(why.values())} of {len(pairs)} pairs break the token-boundary rule here: {dict(why)}")
    for pair in pairs:
        print()
        print(tasks.show_pair(tok, pair))


if __name__ == "__main__":
    cli.run(main)
