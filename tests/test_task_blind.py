"""The pretraining data are blind to the tasks: no word list written into wsparse/data/ shares a word with a task.

Task pools (names, values, words around each cue) are what the evaluation is about; a generator whose hand-written
vocabulary contained them would make task results measure memorised task words. The generator's names and words
must be mined from real code; hand-written lists may only hold Python's own vocabulary (keywords, builtins, the
standard library's module names) or structural tokens, which the allowance below lists explicitly.
"""

import ast
import builtins
import keyword
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1] / "wsparse"
# Python's own vocabulary, which the language shares with every task and every program.
ALLOWED = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | frozenset(sys.stdlib_module_names) | {"self", "cls"}
# Lists under wsparse/data/ that never reach the corpus text: labels of the pipeline's and the generator's own
# bookkeeping (KINDS, METHOD_KINDS: what a name in the generator's scope holds).
NOT_VOCABULARY = {"SKIP_REASONS", "SHARDS", "VAL_KINDS", "KINDS", "METHOD_KINDS", "_NOT_POOLS", "__all__",
                  "__slots__"}


def _listed_words(path: pathlib.Path) -> set[str]:
    """Words inside the string constants of every tuple/list/set literal of three or more strings in a module (its
    written word lists), the bookkeeping lists named in NOT_VOCABULARY excepted."""
    tree = ast.parse(path.read_text())
    exports = {id(n) for a in ast.walk(tree) if isinstance(a, ast.Assign)
               and any(getattr(t, "id", None) in NOT_VOCABULARY for t in a.targets) for n in ast.walk(a.value)}
    words: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and id(node) not in exports:
            strings = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
                       and not re.fullmatch(r"__\w+__", e.value)]  # dunder names are Python's own vocabulary
            if len(strings) >= 3:  # a list of words, not a returned pair such as (None, "empty")
                # words, after dropping escape sequences written as text ("\\n" is a newline, not the word n)
                words |= {w.lower() for s in strings for w in re.findall(r"[A-Za-z]+", re.sub(r"\\.", " ", s))}
    return words


def test_no_written_word_list_under_data_shares_a_word_with_a_task_pool():
    task_words = set().union(*(_listed_words(p) for p in (ROOT / "tasks").glob("*.py")))
    assert len(task_words) > 100  # the pools are found (a broken scan must not pass silently)
    for path in sorted((ROOT / "data").glob("*.py")):
        shared = (_listed_words(path) & task_words) - {w.lower() for w in ALLOWED}
        assert not shared, f"{path.name} lists task words: {sorted(shared)[:40]}"
