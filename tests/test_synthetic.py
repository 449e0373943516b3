"""The synthetic "everyday Python" generator and the vocabulary it mines from real source.

Nothing here looks at the evaluation tasks: the generator is checked for validity, determinism, breadth of the
language it covers, and for taking every word from the mined vocabulary (or from Python itself).
"""

import ast
import collections
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import time
import tokenize

import pytest

from wsparse.config import DataConfig
from wsparse.data import store, synthetic
from wsparse.data import vocabulary as V

N = 300


@pytest.fixture(scope="module")
def progs():
    return [synthetic.program(i) for i in range(N)]


def _pieces(text: str) -> set[str]:
    """Lowercase word pieces of every letter run (snake_case and CamelCase parts)."""
    return {p.lower() for run in re.findall(r"[A-Za-z]+", text) for p in V._PIECE.findall(run)}


# --- the generator -------------------------------------------------------------------------------------------------
def test_programs_are_valid_deterministic_and_distinct(progs):
    assert progs == [synthetic.program(i) for i in range(N)]
    assert len(set(progs)) == N
    for p in progs:
        compile(p, "<synthetic>", "exec")  # stricter than ast.parse: also the symbol table (yield, return, ...)
        for node in ast.walk(ast.parse(p)):  # a jump ends its block: no unreachable statements
            for block in (getattr(node, f, None) for f in ("body", "orelse", "finalbody")):
                if isinstance(block, list):
                    assert not any(isinstance(s, (ast.Return, ast.Raise, ast.Break, ast.Continue)) for s in block[:-1])
    stream = synthetic.documents(7, 10**9, start=5)
    assert synthetic.programs(7, 5, 3) == [next(stream) for _ in range(3)]


def test_output_does_not_depend_on_string_hashing():
    """Another process with another hash seed mines the same vocabulary and writes the same programs."""
    code = ("import hashlib; from wsparse.data import synthetic; v = synthetic.vocabulary(); "
            "print(v.digest, hashlib.sha256(''.join(synthetic.programs(0, 0, 30)).encode()).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    here = hashlib.sha256("".join(synthetic.programs(0, 0, 30)).encode()).hexdigest()
    assert out.stdout.split() == [synthetic.vocabulary().digest, here]


def _features(tree: ast.AST) -> set[str]:
    """The constructs a program uses: AST node types plus a few shapes that need context."""
    out = set()
    for n in ast.walk(tree):
        out.add(type(n).__name__)
        if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.decorator_list:
            out.add("decorator")
        if isinstance(n, ast.ClassDef) and any(isinstance(b, ast.FunctionDef) for b in n.body):
            out.add("class with methods")
            if any(isinstance(b, ast.FunctionDef) and b.name == "__init__" for b in n.body):
                out.add("class with __init__")
        if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Module)) and ast.get_docstring(n):
            out.add("docstring")
        if isinstance(n, ast.FunctionDef) and n.args.defaults:
            out.add("default argument")
        if isinstance(n, ast.Call) and n.keywords:
            out.add("keyword argument")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            out.add(f"{n.func.id}()")
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute):
            out.add(f".{n.func.attr}()")
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Tuple):
            out.add("tuple unpacking")
        if isinstance(n, ast.If) and n.orelse:
            out.add("elif" if isinstance(n.orelse[0], ast.If) else "else")
        if isinstance(n, ast.Try) and n.finalbody:
            out.add("finally")
        if isinstance(n, ast.With) and isinstance(n.items[0].context_expr, ast.Call) and \
                getattr(n.items[0].context_expr.func, "id", "") == "open" and n.items[0].optional_vars:
            out.add("with open() as")
        if isinstance(n, ast.Return) and n.value is not None:
            out.add("return constant" if isinstance(n.value, ast.Constant) else "return expression")
        if isinstance(n, ast.List) and any(isinstance(e, (ast.List, ast.Dict, ast.Tuple)) for e in n.elts):
            out.add("nested brackets")
    return out


def test_covers_everyday_constructs(progs):
    counts = collections.Counter()
    for p in progs:
        counts.update(_features(ast.parse(p)))
    wanted = [
        "Import", "ImportFrom", "Assign", "AugAssign", "AnnAssign", "If", "elif", "else", "For", "While", "Break",
        "Continue", "Try", "ExceptHandler", "finally", "Raise", "Assert", "Delete", "With", "with open() as",
        "FunctionDef", "AsyncFunctionDef", "Await", "default argument", "keyword argument", "Starred", "Lambda",
        "IfExp", "ClassDef", "class with methods", "class with __init__", "decorator", "docstring", "Return",
        "return constant", "return expression", "Yield", "YieldFrom", "ListComp", "DictComp", "SetComp",
        "GeneratorExp", "JoinedStr", "FormattedValue", "Slice", "Subscript", "tuple unpacking", "nested brackets",
        "List", "Dict", "Set", "Tuple", "Is", "IsNot", "In", "NotIn", "Eq", "NotEq", "Lt", "Gt", "LtE", "GtE",
        "And", "Or", "Not", "BinOp", "NamedExpr", "print()", "range()", "enumerate()", "zip()", "len()",
        "isinstance()", "open()", ".items()", ".append()", ".get()", ".join()", ".pop()",
    ]
    missing = [w for w in wanted if counts[w] < 3]
    assert not missing, (missing, counts)


def test_quotes_comments_and_layout(progs):
    text = "\n".join(progs)
    strings = [t.string for p in progs for t in tokenize.generate_tokens(io.StringIO(p).readline)
               if t.type == tokenize.STRING]
    first = collections.Counter(s.lstrip("rbuf")[0] for s in strings)
    assert first['"'] > 200 and first["'"] > 200
    assert sum(s.startswith(("f'", 'f"')) for s in strings) > 100 and sum(s.startswith('"""') for s in strings) > 30
    assert text.count("\n# ") + len(re.findall(r"\n +# ", text)) > 50
    assert all(p.endswith("\n") and "\t" not in p and not re.search(r"[ ]+\n", p) for p in progs)
    assert all(max(len(ln) for ln in p.splitlines()) < 400 for p in progs)


def test_words_come_from_the_vocabulary_or_python(progs):
    vocab = synthetic.vocabulary()
    allowed = vocab.pieces() | _pieces(" ".join(synthetic.language_words(vocab)))
    stray = collections.Counter(w for p in progs for w in _pieces(p) - allowed)
    assert not stray, stray.most_common(20)


_TOY = '''
import zlib

FROB_LIMIT = 3


class Zorblat(object):
    """Frobnicate the quuxes of a zorblat."""

    def __init__(self, wibble, sprocket=3):
        self.wibble = wibble
        self.sprocket = sprocket

    def quuxify(self, wibble):
        # flump every wibble before the sprocket
        for sprocket in wibble:
            if sprocket is None:
                raise KeyError("no sprocket here")
        return zlib.crc32(wibble) + FROB_LIMIT
'''


def test_a_small_vocabulary_is_all_a_program_says():
    """Mined from one toy module, the vocabulary is everything the programs name: its made-up words appear, and no
    word from outside it (or from Python itself) does."""
    vocab = V.mine_texts([_TOY, _TOY])
    allowed = vocab.pieces() | _pieces(" ".join(synthetic.language_words(vocab)))
    progs = [synthetic.program(i, vocab) for i in range(200)]
    for p in progs:
        compile(p, "<synthetic>", "exec")
    used = set().union(*map(_pieces, progs))
    assert not used - allowed, used - allowed
    assert {"zorblat", "wibble", "sprocket", "quuxify", "frobnicate", "flump", "zlib"} <= used
    assert progs == [synthetic.program(i, vocab) for i in range(200)]


# --- the vocabulary ------------------------------------------------------------------------------------------------
def test_mining_counts_names_by_role_and_frequency():
    src = "\n".join([
        "def handle(request, timeout=3):",
        "    total_count = 0",
        "    total_count = 1",
        "    total_count = 2",
        "    other = []",
        "    other = []",
        "    rare = 1",
        "    _private = 2",
        "    _private = 3",
        "    list = 4",
        "    list = 5",
        "    " + "x" * 30 + " = 1",
        "    " + "x" * 30 + " = 2",
        "    for item in items:",
        "        print('hello there', item)",
        "    # checks the request again",
        "    return handle(request)",
    ])
    v = V.mine_texts([src, src])  # min_count 2: everything in `src` is seen at least twice
    assert v.names.items[:2] == ("total_count", "other") and v.names.counts[:2] == (6, 4)
    assert "rare" in v.names.items and "_private" not in v.names.items  # private: never a name
    assert "list" not in v.names.items and "x" * 30 not in v.names.items  # builtins and overlong names neither
    assert v.kind_names["list"].items == ("other",) and "total_count" in v.kind_names["num"].items
    assert v.loop_vars.items == ("item",) and v.iter_pairs.items == ("item items",)
    assert {"total", "count", "request", "handle"} <= set(v.words.items)
    assert v.words.counts[v.words.items.index("total")] >= 6
    assert v.functions.items == ("handle",) and set(v.params.items) == {"request", "timeout"}
    assert {"checks", "the", "request", "again"} <= set(v.text.items)
    assert {"hello", "there"} <= set(v.string_words.items)
    assert v.builtin_calls.items == ("print",)
    once = V.mine_texts([src])
    assert "rare" not in once.names.items and "total_count" in once.names.items  # seen once: dropped


def test_mining_strips_strings_and_comments_from_code():
    src = 'name = "quoted = 1"  # commented = 2\nname = 1\n' * 2 + 's = """\ndocumented = 3\n"""\n' * 2
    v = V.mine_texts([src])
    assert set(v.names.items) == {"name", "s"}
    assert "quoted" in v.string_words.items and {"commented", "documented"} <= set(v.text.items)


def test_default_vocabulary_is_the_standard_library_mined_once():
    files = V.stdlib_files()
    assert files and all(os.path.dirname(f) == os.path.dirname(files[0]) for f in files)
    assert not any("site-packages" in f or os.path.basename(f).startswith("_") for f in files)
    assert sum(os.path.getsize(f) for f in files) <= V.DEFAULT_BYTES
    t = time.perf_counter()
    fresh = V.mine.__wrapped__()
    assert time.perf_counter() - t < 10  # about a second; loose for a busy machine
    assert fresh.digest == synthetic.vocabulary().digest and fresh == synthetic.vocabulary()
    assert synthetic.vocabulary() is synthetic.vocabulary()  # cached
    assert len(fresh.words) > 1000 and len(fresh.names) > 1000 and len(fresh.text) > 1000
    assert len(fresh.classes) > 100 and len(fresh.modules) > 20 and len(fresh.exceptions) > 10
    assert set(fresh.modules.items) <= V.MODULES and not set(fresh.names.items) & V.LANGUAGE
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in fresh.source


def test_vocabulary_travels_to_worker_processes():
    vocab = synthetic.vocabulary()
    again = pickle.loads(pickle.dumps(vocab))
    assert again == vocab and again.digest == vocab.digest
    assert synthetic.programs(1, 0, 5, again) == synthetic.programs(1, 0, 5)


def test_generator_imports_nothing_from_tasks():
    for path in synthetic.SOURCE_FILES:
        tree = ast.parse(open(path).read())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        for m in imported:
            assert m.split(".")[0] in sys.stdlib_module_names or m.startswith("wsparse.data"), (path, m)
            assert not m.startswith("wsparse.tasks"), (path, m)
    names = {os.path.basename(p) for p in synthetic.SOURCE_FILES}
    assert {"synthetic.py", "vocabulary.py", "lexicon.py", "expressions.py", "statements.py"} == names


def test_cache_key_follows_every_generator_file(tmp_path, monkeypatch):
    cfg = DataConfig(default_sources=False, synthetic_weight=1.0, max_source_bytes=1000)
    before = store.fingerprint(cfg, ())
    assert store.fingerprint(DataConfig(default_sources=False, sources=("x",)), ()) != before
    for i in range(len(synthetic.SOURCE_FILES)):
        copy = tmp_path / f"{i}.py"
        copy.write_text(open(synthetic.SOURCE_FILES[i]).read() + "\n# changed\n")
        files = list(synthetic.SOURCE_FILES)
        files[i] = str(copy)
        monkeypatch.setattr(synthetic, "SOURCE_FILES", tuple(files))
        assert store.fingerprint(cfg, ()) != before
    monkeypatch.undo()
    assert store.fingerprint(cfg, ()) == before
