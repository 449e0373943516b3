"""The report: a hand-made run directory in, one self-contained HTML page out, showing the artifacts' numbers."""

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
from wsparse.report import artifacts, circuit_svg, html as H, node_info as NI

TINY = C.ModelConfig(vocab_size=64, n_ctx=16, n_layer=2, d_model=32, n_head=2, d_head=16, d_mlp=128)


class Page(html.parser.HTMLParser):
    """Collects table cells, diagram nodes/edges and every URL-bearing attribute; checks that tags balance."""

    VOID = {"meta", "br", "img", "input", "link", "hr", "circle", "line", "rect", "path"}

    def __init__(self):
        super().__init__()
        self.cells, self.family_cells, self.urls, self.stack, self.errors = {}, {}, [], [], []
        self.svg_nodes, self.svg_edges, self.tags = {}, {}, {}
        self._cell, self._svg, self._text = None, None, []
        self.scripts, self._script = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.urls += [v for k, v in attrs if k in ("src", "href", "xlink:href") and v]
        if tag == "td" and "data-task" in a:
            self._cell, self._text = a, []
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


def _circuit(task, nodes, edges, loss):
    counts = {"total": len(edges), "attn.act_in->qkv": 0, "attn.v->resid_delta": 0, "mlp.act_in->post_act": 0,
              "mlp.post_act->resid_delta": 0, "attn.act_in->q": 0, "attn.act_in->k": 0, "attn.act_in->v": 0}
    return {"task": task, "status": "ok", "target_loss": 0.15, "ablation": "mean",
            "unpruned_loss": {"train": 0.03, "test": 0.0412},
            "circuit_loss": {"train": loss - 0.01, "test": loss, "train_calibrated": loss - 0.03,
                             "test_calibrated": loss - 0.02},
            "nodes": nodes, "n_nodes": sum(len(v) for v in nodes.values()), "edges": edges, "n_edges": counts,
            "checkpoint_step": 20,
            "validation": {"sufficiency": {"loss": loss, "meets_target": loss <= 0.15},
                           "necessity": {"loss": 0.8125, "increase": 0.8125 - 0.0412},
                           "random_controls": {"n": 2, "losses": [0.7, 0.75], "mean": 0.725, "min": 0.7,
                                               "frac_meeting_target": 0.0},
                           "attribution_baseline": {"k_units": 9, "test_loss": 0.149, "n_nodes": 11, "n_edges": 23,
                                                    "test_loss_at_learned_size": 0.5}}}


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
    evals = {"quote": {"loss": 0.0412, "accuracy": 0.984375, "n": 256},
             "brackets": {"loss": 0.11, "accuracy": 0.9453125, "n": 256},
             "hard": {"loss": 0.61, "accuracy": 0.6, "n": 256}}
    with open(os.path.join(root, "tasks.json"), "w") as f:
        json.dump({"step": 20, "split": "test", "tasks": evals}, f)
    circuits = {
        "quote": _circuit("quote", {"0.attn.act_in": [3, 7], "0.attn.v": [5], "0.attn.resid_delta": [7, 9],
                                    "1.mlp.post_act": [100]},
                          [["0.attn.act_in:3", "0.attn.v:5", 0.25], ["0.attn.act_in:7", "0.attn.v:5", -0.5],
                           ["0.attn.v:5", "0.attn.resid_delta:9", 1.0]], 0.0935),
        "brackets": _circuit("brackets", {"1.mlp.act_in": [1], "1.mlp.post_act": [2, 4], "1.mlp.resid_delta": [0]},
                             [["1.mlp.act_in:1", "1.mlp.post_act:2", 0.125], ["1.mlp.post_act:4",
                                                                            "1.mlp.resid_delta:0", -2.0]], 0.1875),
        "hard": {"task": "hard", "status": "unsolved", "target_loss": 0.15, "message": "loss 0.61 above 0.15",
                 "unpruned_loss": {"train": 0.6, "test": 0.61}},
    }
    for t, c in circuits.items():
        os.makedirs(os.path.join(root, "circuits", t))
        with open(os.path.join(root, "circuits", t, "circuit.json"), "w") as f:
            json.dump(c, f)
    return cfg, evals, circuits


def _node_info(circuits):
    names = {f"{loc}:{i}" for c in circuits.values() for loc, ix in c.get("nodes", {}).items() for i in ix}
    return {n: NI.NodeInfo(n, 0.5, (NI.Context("x = </script>", "y", 2.0),)) for n in names}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("run"))
    cfg, evals, circuits = make_run(root)
    params = _params()
    run = types.SimpleNamespace(cfg=cfg, params=params, step=20, tokenizer=None, workdir=root)
    path = H.write_report(root, run=run, node_info=_node_info(circuits), log=lambda s: None)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    page = Page()
    page.feed(text)
    page.close()
    return types.SimpleNamespace(path=path, text=text, page=page, evals=evals, circuits=circuits, params=params)


def test_page_is_one_offline_file_that_parses(report):
    assert report.path.endswith(os.path.join("report", "index.html"))
    p = report.page
    assert not p.errors and not p.stack, (p.errors, p.stack)
    assert all(u.startswith("#") for u in p.urls), p.urls  # in-page anchors only: no http(s), no files
    without_namespaces = re.sub(r'xmlns(:\w+)?="[^"]*"', "", report.text)  # names, never fetched
    assert "http" not in without_namespaces and "@import" not in report.text and "<link" not in report.text
    assert p.tags.get("img", 0) == 0 and p.tags["svg"] >= 4  # two plots and two diagrams, all inline


def test_task_table_shows_the_artifacts_numbers(report):
    cells = report.page.cells
    for task, e in report.evals.items():
        for key in ("loss", "accuracy", "n"):
            col = "unpruned_loss" if key == "loss" else key
            raw, text = cells[(task, col)]
            assert json.loads(raw) == e[key]
            assert text == H.fmt(e[key])
    for task in ("quote", "brackets"):
        c = report.circuits[task]
        expect = {"n_nodes": c["n_nodes"], "n_edges": c["n_edges"]["total"],
                  "circuit_loss": c["circuit_loss"]["test"], "circuit_loss_cal": c["circuit_loss"]["test_calibrated"],
                  "necessity_loss": c["validation"]["necessity"]["loss"],
                  "necessity_increase": c["validation"]["necessity"]["increase"],
                  "random_mean": c["validation"]["random_controls"]["mean"],
                  "random_frac": c["validation"]["random_controls"]["frac_meeting_target"],
                  "attribution_edges": c["validation"]["attribution_baseline"]["n_edges"],
                  "attribution_loss": c["validation"]["attribution_baseline"]["test_loss_at_learned_size"]}
        for key, value in expect.items():
            raw, text = cells[(task, key)]
            assert json.loads(raw) == value, (task, key)
            assert text == H.fmt(value)
    # The unsolved task has no circuit numbers, and says why.
    assert cells[("hard", "n_edges")] == (None, "–") and cells[("hard", "circuit_loss")] == (None, "–")
    assert "not solved" in report.text and "loss 0.61 above 0.15" in report.text
    # Sufficiency is marked: quote's circuit meets the target, brackets' does not.
    assert 'data-task="quote" data-key="circuit_loss"' in report.text
    assert 'class="num suff-ok gs" data-task="quote" data-key="circuit_loss"' in report.text
    assert 'class="num suff-bad gs" data-task="brackets" data-key="circuit_loss"' in report.text


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
        assert sorted(nodes) == sorted(f"{loc}:{i}" for loc, ix in c["nodes"].items() for i in ix)
        drawn = {(s, d): (color, width) for s, d, color, width in report.page.svg_edges[f"svg-{task}"]}
        assert set(drawn) == {(s, d) for s, d, _ in c["edges"]}
        biggest = max(abs(w) for *_, w in c["edges"])
        for s, d, w in c["edges"]:
            color, width = drawn[(s, d)]
            assert color == (circuit_svg.POS_COLOR if w > 0 else circuit_svg.NEG_COLOR)
            assert width == pytest.approx(0.6 + 3.4 * abs(w) / biggest, abs=0.01)
    assert "svg-hard" not in report.page.svg_nodes


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
    messages = []
    path = H.write_report(str(tmp_path), node_info={}, log=messages.append)
    text = open(path, encoding="utf-8").read()
    assert "parameter counts are unavailable" in text and "no checkpoint loaded" in messages[0]
    assert 'data-task="quote" data-key="n_edges" data-value="3"' in text


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
