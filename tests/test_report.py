"""The report: a hand-made run directory in, one self-contained HTML page out, showing the artifacts' numbers.

Expected page values are written out literally, never computed by the code under test."""

import html.parser
import json
import math
import os
import re
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wsparse import config as C
from wsparse import model as M
from wsparse import workflow
from wsparse.circuits import means, record
from wsparse.circuits.record import CircuitRecord
from wsparse.report import artifacts, circuit_svg, html as H, layout, node_info as NI

TINY = C.ModelConfig(vocab_size=64, n_ctx=16, n_layer=2, d_model=32, n_head=2, d_head=16, d_mlp=128)


class Page(html.parser.HTMLParser):
    """Collects table cells, diagram nodes/edges and every URL-bearing attribute; checks that tags balance."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "circle", "line", "rect", "path"}

    def __init__(self):
        super().__init__()
        self.cells, self.family_cells, self.urls, self.stack, self.errors = {}, {}, [], [], []
        self.svg_nodes, self.svg_edges, self.tags, self.cell_classes = {}, {}, {}, {}
        self._cell, self._svg, self._text = None, None, []
        self.scripts, self._script = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.urls += [v for k, v in attrs if k in ("src", "href", "xlink:href") and v]
        if tag == "td" and "data-task" in a:
            self._cell, self._text = a, []
            self.cell_classes[(a["data-task"], a["data-key"])] = set(a.get("class", "").split())
        if tag == "td" and "data-family" in a:
            self.family_cells[(a["data-family"], a["data-key"])] = int(a["data-value"])
        if tag == "svg" and "circuit" in a.get("class", ""):
            self._svg = a["id"]
            self.svg_nodes[self._svg], self.svg_edges[self._svg] = [], []
        if tag == "g" and "data-node" in a:
            self.svg_nodes[self._svg].append(a["data-node"])
        if tag == "path" and a.get("class") == "edge":
            self.svg_edges[self._svg].append((a["data-s"], a["data-d"], a["stroke"], float(a["stroke-width"])))
        if tag == "script":
            self._script = a
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "td" and self._cell is not None:
            self.cells[(self._cell["data-task"], self._cell["data-key"])] = (self._cell.get("data-value"),
                                                                              "".join(self._text))
            self._cell = None
        if tag == "svg":
            self._svg = None
        if tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)
        if self._script is not None and self._script.get("type") == "application/json":
            self.scripts.append(data)


def _params(key=0):
    """The tiny model with some interior weights zeroed, so nonzero counts differ from sizes."""
    p = jax.device_get(_init(TINY, jax.random.key(key)))
    for blk in p["blocks"]:
        w = blk["mlp"]["c_fc"]["w"]
        blk["mlp"]["c_fc"]["w"] = np.where(np.abs(w) > 0.02, w, 0.0).astype(np.float32)
    return p


_init = jax.jit(M.init_params, static_argnums=0)


CARD = {"card_version": 1, "budget": {}, "seconds": {"swapped_answers": 12.5, "seeds": 3.25},
        "verdicts": {"swapped_answers": "flag", "seeds": "pass"}, "flags": ["swapped_answers"],
        "swapped_answers": {"verdict": "flag", "summary": "best test loss 0.011 <swapped>", "meaning": "creates?"},
        "seeds": {"verdict": "pass", "summary": "Jaccard 0.93", "meaning": "same circuit?"}}


def _circuit(task, nodes, edges, *, loss, loss_cal, necessity, random, attribution, controls=None):
    counts = {"total": len(edges), "attn.act_in->qkv": 0, "attn.v->resid_delta": 0, "mlp.act_in->post_act": 0,
              "mlp.post_act->resid_delta": 0, "attn.act_in->q": 0, "attn.act_in->k": 0, "attn.act_in->v": 0}
    return CircuitRecord(
        task=task, status="ok", target_loss=0.15, ablation="mean", n_model_nodes=1000, n_train_pairs=64,
        n_test_pairs=32, unpruned_loss={"train": 0.03, "test": 0.0412},
        circuit_loss={"train": 0.01, "test": loss, "train_calibrated": 0.02, "test_calibrated": loss_cal},
        nodes=nodes, n_nodes=sum(len(v) for v in nodes.values()), k_units=9, edges=edges, n_edges=counts,
        calibration=record.Calibration(a=1.5, b=-0.25, steps=16), hyperparameters={"k_coef": 1e-4, "lr": 3e-3},
        checkpoint_step=20,
        validation=record.Validation(
            sufficiency=record.Sufficiency(loss=loss, meets_target=loss <= 0.15),
            necessity=record.Necessity(*necessity),
            random_controls=record.RandomControls(n=2, losses=(0.7, 0.75), mean=random[0], min=0.7,
                                                  frac_meeting_target=random[1]),
            attribution_baseline=record.AttributionBaseline(k_units=9, test_loss=0.149, n_nodes=11,
                                                            n_edges=attribution[0],
                                                            test_loss_at_learned_size=attribution[1]),
            controls=controls))


def make_run(root):
    """config.json, metrics.jsonl (with a resumed, repeated step), tasks.json, two circuits and one unsolved task."""
    cfg = C.Config(model=TINY, data=C.DataConfig(vocab_size=64), name="fake")
    C.save(cfg, os.path.join(root, "config.json"))
    with open(os.path.join(root, "metrics.jsonl"), "w") as f:
        for s in (5, 10, 10, 15, 20):
            f.write(json.dumps({"step": s, "loss": 5.0 - s / 10, "lr": 0.01, "grad_rms": 1.0, "tokens_per_s": 1e3,
                                "density/interior": 1 - s / 40, "density/embed": 1.0, "density/bias": 1.0}) + "\n")
        f.write(json.dumps({"step": 10, "eval_loss": 4.25}) + "\n")
        f.write(json.dumps({"step": 20, "eval_loss": 3.125}) + "\n")
    evals = {"quote": {"loss": 0.0412, "accuracy": 0.984375, "n": 2048},
             "brackets": {"loss": 0.11, "accuracy": 0.9453125, "n": 256},
             "hard": {"loss": 0.61, "accuracy": 0.6, "n": 256}}
    with open(os.path.join(root, "tasks.json"), "w") as f:
        json.dump({"step": 20, "split": "test", "tasks": evals}, f)
    circuits = {
        "quote": _circuit("quote", {"0.attn.act_in": [3, 7], "0.attn.v": [5], "0.attn.resid_delta": [7, 9],
                                    "1.mlp.post_act": [100]},
                          [["0.attn.act_in:3", "0.attn.v:5", 0.25], ["0.attn.act_in:7", "0.attn.v:5", -0.5],
                           ["0.attn.v:5", "0.attn.resid_delta:9", 1.0]],
                          loss=0.0936, loss_cal=0.0736, necessity=(0.8125, 0.7713), random=(0.725, 0.0),
                          attribution=(23, 0.5), controls=CARD),
        "brackets": _circuit("brackets", {"1.mlp.act_in": [1], "1.mlp.post_act": [2, 4], "1.mlp.resid_delta": [0]},
                             [["1.mlp.act_in:1", "1.mlp.post_act:2", 0.125],
                              ["1.mlp.post_act:4", "1.mlp.resid_delta:0", -2.0]],
                             loss=0.1875, loss_cal=0.1671, necessity=(0.9, 0.79), random=(0.6, 0.25),
                             attribution=(1234, 0.0004)),
        "hard": CircuitRecord(task="hard", status="unsolved", target_loss=0.15, message="loss 0.61 above 0.15",
                              unpruned_loss={"train": 0.6, "test": 0.61}, ablation="mean", n_model_nodes=1000,
                              n_train_pairs=64, n_test_pairs=32),
    }
    for t, c in circuits.items():
        record.save(c, record.path_for(root, t))
    return cfg, evals, circuits


def _node_info(circuits):
    names = {n for c in circuits.values() for n in c.node_names}
    return {n: NI.NodeInfo(n, 0.5, (NI.Context("x = </script>", "y", 2.0),)) for n in names}


def _read(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    page = Page()
    page.feed(text)
    page.close()
    return text, page


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("run"))
    cfg, evals, circuits = make_run(root)
    params = _params()
    path = H.write_report(root, param_counts=artifacts.param_counts(params), node_info=_node_info(circuits), step=20,
                          log=lambda s: None)
    text, page = _read(path)
    return types.SimpleNamespace(path=path, text=text, page=page, evals=evals, circuits=circuits, params=params)


def test_page_is_one_offline_file_that_parses(report):
    assert report.path.endswith(os.path.join("report", "index.html"))
    p = report.page
    assert not p.errors and not p.stack, (p.errors, p.stack)
    assert all(u.startswith("#") for u in p.urls), p.urls  # in-page anchors only: no http(s), no files
    without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"', "", report.text)  # names, never fetched
    assert "http" not in without_namespaces and "@import" not in report.text and "<link" not in report.text
    assert p.tags.get("img", 0) == 0 and p.tags["svg"] >= 4  # two plots and two diagrams, all inline
    # The static assets are inlined: the page's stylesheet and its hover script.
    assert "td.suff-ok{background:#e7f5e4}" in report.text and "querySelectorAll('svg.circuit .node')" in report.text


# (task, column) -> (the artifact's value in data-value, the text shown), both written out by hand.
EXPECTED_CELLS = {
    ("quote", "unpruned_loss"): (0.0412, "0.041"), ("quote", "accuracy"): (0.984375, "0.984"),
    ("quote", "n"): (2048, "2,048"), ("quote", "n_nodes"): (6, "6"), ("quote", "n_edges"): (3, "3"),
    ("quote", "circuit_loss"): (0.0936, "0.094"), ("quote", "circuit_loss_cal"): (0.0736, "0.074"),
    ("quote", "necessity_loss"): (0.8125, "0.812"), ("quote", "necessity_increase"): (0.7713, "0.771"),
    ("quote", "random_mean"): (0.725, "0.725"), ("quote", "random_frac"): (0.0, "0.000"),
    ("quote", "attribution_edges"): (23, "23"), ("quote", "attribution_loss"): (0.5, "0.500"),
    ("brackets", "unpruned_loss"): (0.11, "0.110"), ("brackets", "accuracy"): (0.9453125, "0.945"),
    ("brackets", "n"): (256, "256"), ("brackets", "n_nodes"): (4, "4"), ("brackets", "n_edges"): (2, "2"),
    ("brackets", "circuit_loss"): (0.1875, "0.188"), ("brackets", "circuit_loss_cal"): (0.1671, "0.167"),
    ("brackets", "necessity_loss"): (0.9, "0.900"), ("brackets", "necessity_increase"): (0.79, "0.790"),
    ("brackets", "random_mean"): (0.6, "0.600"), ("brackets", "random_frac"): (0.25, "0.250"),
    ("brackets", "attribution_edges"): (1234, "1,234"), ("brackets", "attribution_loss"): (0.0004, "4.00e-04"),
    ("hard", "unpruned_loss"): (0.61, "0.610"), ("hard", "accuracy"): (0.6, "0.600"), ("hard", "n"): (256, "256"),
}


def test_task_table_shows_the_artifacts_numbers(report):
    cells = report.page.cells
    for (task, key), (value, shown) in EXPECTED_CELLS.items():
        raw, text = cells[(task, key)]
        assert json.loads(raw) == value, (task, key)
        assert text == shown, (task, key)
    # Every column of every task is a cell; the unsolved task has no circuit numbers, and says why.
    assert len([k for k in cells if not k[1].startswith("card.")]) == 3 * len(layout.COLUMNS)
    for key, _, _ in layout.COLUMNS:
        if ("hard", key) not in EXPECTED_CELLS:
            assert cells[("hard", key)] == (None, "–"), key
    assert "not solved" in report.text and "loss 0.61 above 0.15" in report.text
    # Sufficiency is marked: quote's circuit meets the target, brackets' does not.
    classes = report.page.cell_classes
    assert "suff-ok" in classes[("quote", "circuit_loss")] and "suff-bad" not in classes[("quote", "circuit_loss")]
    assert "suff-bad" in classes[("brackets", "circuit_loss")] and "suff-ok" not in classes[("brackets",
                                                                                             "circuit_loss")]
    assert not classes[("hard", "circuit_loss")] & {"suff-ok", "suff-bad"}
    headline = re.search(r'<p id="headline">(.*?)</p>', report.text).group(1)
    assert headline == ("2 of 3 tasks solved by the unpruned model (loss ≤ 0.150); 2 circuits, geometric mean "
                        "2.4 edges.")


def test_fmt_literals():
    assert [layout.fmt(x) for x in (None, True, False, 0, 1234567, np.int64(42))] == [
        "–", "yes", "no", "0", "1,234,567", "42"]
    assert [layout.fmt(x) for x in (0.0, 0.0412, 0.8125, 12.3456, 123.456, 99999.0, 1e5, 0.0004, -0.0004,
                                    float("nan"), float("inf"), np.float32(0.5))] == [
        "0.000", "0.041", "0.812", "12.346", "123.5", "99999.0", "1.00e+05", "4.00e-04", "-4.00e-04", "nan", "inf",
        "0.500"]
    assert layout.fmt("mean") == "mean"


def test_parameter_counts_per_family(report):
    D, A, F, V, L = TINY.d_model, TINY.d_attn, TINY.d_mlp, TINY.vocab_size, TINY.n_layer
    fam = report.page.family_cells
    assert fam[("interior", "params")] == L * (D * 3 * A + A * D + D * F + F * D)
    assert fam[("embed", "params")] == 2 * V * D
    assert fam[("bias", "params")] == L * (3 * A + D + F + D)
    assert fam[("dense", "params")] == (2 * L + 1) * D
    assert fam[("total", "params")] == sum(x.size for x in jax.tree.leaves(report.params))
    fc_zeros = sum(int((np.asarray(b["mlp"]["c_fc"]["w"]) == 0).sum()) for b in report.params["blocks"])
    assert fc_zeros > 0
    assert fam[("interior", "nonzero")] == fam[("interior", "params")] - fc_zeros
    assert fam[("bias", "nonzero")] == 0  # biases start at zero


def test_each_circuit_is_drawn_with_its_nodes_and_signed_weighted_edges(report):
    for task in ("quote", "brackets"):
        c = report.circuits[task]
        nodes = report.page.svg_nodes[f"svg-{task}"]
        assert sorted(nodes) == sorted(f"{loc}:{i}" for loc, ix in c.nodes.items() for i in ix)
        drawn = {(s, d): (color, width) for s, d, color, width in report.page.svg_edges[f"svg-{task}"]}
        assert set(drawn) == {(s, d) for s, d, _ in c.edges}
        biggest = max(abs(w) for *_, w in c.edges)
        for s, d, w in c.edges:
            color, width = drawn[(s, d)]
            assert color == (circuit_svg.POS_COLOR if w > 0 else circuit_svg.NEG_COLOR)
            assert width == pytest.approx(0.6 + 3.4 * abs(w) / biggest, abs=0.01)
    assert "svg-hard" not in report.page.svg_nodes


def test_faithfulness_card_is_shown_per_circuit(report):
    cells, classes = report.page.cells, report.page.cell_classes
    assert cells[("quote", "card.swapped_answers")][0] == "flag"
    assert "v-flag" in classes[("quote", "card.swapped_answers")]
    assert cells[("quote", "card.seeds")][0] == "pass" and "v-pass" in classes[("quote", "card.seeds")]
    assert "best test loss 0.011 &lt;swapped&gt;" in report.text  # the summary, escaped
    assert "1</b> of 2 controls flagged: swapped_answers" in report.text
    assert not any(task == "brackets" and key.startswith("card.") for task, key in cells)
    assert "No faithfulness card" in report.text  # brackets has none: the page says how to compute it


def test_hover_statistics_are_embedded_safely(report):
    (blob,) = report.page.scripts
    info = json.loads(blob)
    assert set(info) == set(_node_info(report.circuits))
    assert info["0.attn.v:5"]["top"][0] == {"prefix": "x = </script>", "token": "y", "value": 2.0}
    assert report.text.count("</script>") == 2  # the JSON's own "</script>" is escaped


def test_metrics_keep_the_last_row_of_a_repeated_step(tmp_path):
    make_run(str(tmp_path))
    curves = artifacts.read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [s for s, _ in curves.train["loss"]] == [5, 10, 15, 20]
    assert curves.eval_loss == [(10, 4.25), (20, 3.125)]


def test_report_of_a_run_without_checkpoint_still_renders(tmp_path):
    make_run(str(tmp_path))
    text, page = _read(H.write_report(str(tmp_path), log=lambda s: None))
    assert "parameter counts are unavailable" in text and not page.family_cells
    assert page.cells[("quote", "n_edges")] == ("3", "3")
    assert "checkpoint step 20 ·" in text  # tasks.json's step when no checkpoint step is given


def test_write_report_never_loads_a_checkpoint_or_runs_the_model(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("write_report must render from artifacts and its arguments only")

    for target in ("wsparse.load_run", "wsparse.train.load_run", "wsparse.model.forward",
                   "wsparse.circuits.capture.scan", "wsparse.report.node_info.compute",
                   "wsparse.report.artifacts.param_counts"):
        monkeypatch.setattr(target, forbidden)
    _, _, circuits = make_run(str(tmp_path))
    counts = [artifacts.TensorCount("blocks/0/mlp/c_fc/w", "interior", (4, 8), 32, 5)]
    text, page = _read(H.write_report(str(tmp_path), param_counts=counts, node_info=_node_info(circuits), step=7,
                                      log=lambda s: None))
    assert page.family_cells[("interior", "params")] == 32 and page.family_cells[("total", "nonzero")] == 5
    assert page.cells[("brackets", "attribution_edges")] == ("1234", "1,234") and "checkpoint step 7 ·" in text


def test_an_unreadable_circuit_is_shown_not_dropped(tmp_path):
    make_run(str(tmp_path))
    path = record.path_for(str(tmp_path), "quote")
    raw = json.loads(open(path).read())
    raw["schema_version"] = 0
    with open(path, "w") as f:
        json.dump(raw, f)
    messages = []
    text, page = _read(H.write_report(str(tmp_path), log=messages.append))
    assert len(messages) == 1 and "schema_version 0" in messages[0] and path in messages[0]
    assert "unreadable circuit.json" in text and 'class="note error" data-task="quote"' in text
    assert "svg-quote" not in page.svg_nodes and "svg-brackets" in page.svg_nodes
    assert page.cells[("quote", "n_edges")] == (None, "–") and page.cells[("quote", "n")] == ("2048", "2,048")


def test_report_inputs_compute_counts_and_node_statistics_from_the_run(tmp_path):
    """workflow.report_inputs is the one place the model runs for the report: every circuit node gets statistics,
    with the pruner's cached mean (the value a pruned node is replaced by) as its mean."""
    cfg, _, circuits = make_run(str(tmp_path))
    params = _params(2)
    tok = types.SimpleNamespace(decode=lambda ids, skip_special_tokens=False: "".join(f"<{i}>" for i in ids))
    run = types.SimpleNamespace(cfg=cfg, params=params, step=20, tokenizer=tok, workdir=str(tmp_path))
    shapes = M.node_shapes(TINY)
    stats = means.NodeStats({n: np.full((w,), 0.25, np.float32) for n, w in shapes.items()},
                            {n: np.zeros((1, w), np.float32) for n, w in shapes.items()}, 64)
    means.save(stats, means.cache_path(str(tmp_path), 20))
    tokens = np.random.default_rng(0).integers(0, TINY.vocab_size, size=(1, 2, TINY.n_ctx))
    inputs = workflow.report_inputs(run, val_tokens=tokens, top_k=2, log=lambda s: None)
    assert set(inputs) == {"param_counts", "node_info", "step"} and inputs["step"] == 20
    assert set(inputs["node_info"]) == set(_node_info(circuits))  # quote's and brackets' nodes, nothing of "hard"
    assert all(ni.mean == 0.25 and len(ni.top) == 2 for ni in inputs["node_info"].values())
    assert sum(r.size for r in inputs["param_counts"]) == sum(x.size for x in jax.tree.leaves(params))
    text, _ = _read(H.write_report(str(tmp_path), **inputs, log=lambda s: None))
    assert '"1.mlp.post_act:100": {"name": "1.mlp.post_act:100", "mean": 0.25' in text


def test_spread_keeps_order_and_gaps_and_stays_near_wishes():
    want = [50.0, 10.0, 10.0, 11.0, 200.0]
    xs = circuit_svg.spread(want, 10.0, 0.0, 300.0)
    order = sorted(range(5), key=lambda i: (want[i], i))
    assert all(xs[b] - xs[a] >= 10.0 - 1e-9 for a, b in zip(order, order[1:]))
    assert xs[4] == 200.0 and xs[0] == 50.0  # isolated wishes are granted
    assert math.isclose(sum(xs[i] for i in (1, 2, 3)) / 3, 31 / 3)  # a packed cluster centres on its wishes
    assert all(0.0 <= x <= 300.0 for x in circuit_svg.spread([-50.0, 400.0, 399.0], 20.0, 0.0, 300.0))


def test_node_info_matches_a_direct_capture():
    params = _params(1)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, TINY.vocab_size, size=(2, 3, TINY.n_ctx)).astype(np.int32)
    names = ["0.attn.q:4", "1.mlp.post_act:17", "1.mlp.post_act:3", "0.attn.resid_delta:0"]
    tok = types.SimpleNamespace(decode=lambda ids, skip_special_tokens=False: "".join(f"<{i}>" for i in ids))
    info = NI.compute(params, TINY, tok, tokens, names, top_k=3, context=4)

    @jax.jit
    def every_node(params, tokens_BT):
        seen = {}

        def keep(name, x):
            seen[name] = x
            return x

        M.forward(params, tokens_BT, TINY, node_fn=keep)
        return seen

    full = {n: [] for n in ("0.attn.q", "1.mlp.post_act", "0.attn.resid_delta")}
    for batch in tokens:
        seen = every_node(params, jnp.asarray(batch))
        for n in full:
            full[n].append(np.asarray(seen[n]))
    flat_tokens = tokens.reshape(-1, TINY.n_ctx)
    for name in names:
        loc, ch = NI.split_node(name)
        x = np.concatenate(full[loc])[..., ch].reshape(-1)
        ni = info[name]
        assert ni.mean == pytest.approx(float(x.mean()), rel=1e-4, abs=1e-6)
        best = np.argsort(-np.abs(x), kind="stable")[:3]
        assert [c.value for c in ni.top] == pytest.approx([float(x[i]) for i in best], rel=1e-4, abs=1e-6)
        s, t = divmod(int(best[0]), TINY.n_ctx)
        assert ni.top[0].token == tok.decode([int(flat_tokens[s, t])])
        assert ni.top[0].prefix == tok.decode([int(i) for i in flat_tokens[s, max(0, t - 4):t]])


def test_node_info_shows_distinct_contexts_when_windows_repeat():
    """A small validation split tiles its windows; the same context must not fill the tooltip."""
    acts = np.array([[[3.0], [1.0]], [[3.0], [1.0]], [[-2.0], [0.5]]], np.float32)  # [S=3, T=2, 1 node]
    tokens = np.array([[1, 2], [1, 2], [3, 4]])
    info = NI.summarize({"0.mlp.post_act": acts}, {"0.mlp.post_act": [7]}, tokens, lambda ids: "".join(map(str, ids)),
                        top_k=3, context=1)
    node = info["0.mlp.post_act:7"]
    assert [(c.prefix, c.token, c.value) for c in node.top] == [("", "1", 3.0), ("", "3", -2.0), ("1", "2", 1.0)]
    assert node.mean == pytest.approx(acts.mean())
