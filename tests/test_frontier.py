"""The frontier experiment: grid expansion, matched-loss interpolation and the headline on synthetic records, and the
`tiny` variant end to end (members alone, skip and resume of members and stages, the entry point's --aggregate)."""

import json
import math
import os
import subprocess
import sys

import pytest

from configs import frontier as frontier_config
from wsparse import config as config_lib
from wsparse.config import ConfigError
from wsparse.frontier import aggregate, grid, pipeline, stages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- Grid expansion -------------------------------------------------------------------------------------------------


def test_cpu_grid_has_three_of_each_family_sharing_data_and_pruning_budget():
    f = grid.expand(frontier_config.get_config("cpu").to_dict())
    fams = [m.family for m in f.members]
    assert fams.count("sparse") >= 3 and fams.count("dense") >= 3
    assert len({config_lib.fingerprint(m.cfg.data) for m in f.members}) == 1
    assert all(m.cfg.prune == f.prune for m in f.members)
    by = {m.name: m.cfg for m in f.members}
    assert by["s128_d8"].model.d_model == 128 and by["s128_d8"].sparsity.interior_density == 1 / 8
    assert by["s64_d4"].model.d_model == 64 and by["s64_d4"].model.d_mlp == 256 and by["s64_d4"].model.n_head == 4
    assert by["dense32"].model.d_model == 32 and not by["dense32"].sparsity.enabled
    assert by["dense32"].model.afrac == 1.0 and by["s64_d4"].model.afrac < 1.0
    assert all(c.name == f"frontier_cpu_{n}" for n, c in by.items())
    assert [m.family for m in f.members[:2]] == ["sparse", "dense"]  # the spec's run order, not sorted names
    assert f.tasks and len(f.tasks) == 20  # no task list: every registered task
    assert f.fig2_targets == (0.5, 0.3, 0.15, 0.05) and f.prune.target_loss in f.fig2_targets


def test_paper_grid_spans_widths_and_l0_with_dense_baselines():
    f = grid.expand(frontier_config.get_config("paper").to_dict())
    sparse = [m.cfg for m in f.members if m.family == "sparse"]
    dense = [m.cfg for m in f.members if m.family == "dense"]
    assert {c.model.d_model for c in sparse} == {256 * e for e in (1, 2, 4, 8, 16)}
    assert {c.model.d_model for c in dense} == {256, 512, 1024}
    assert all(c.sparsity.interior_density < 1 for c in sparse)
    # L0 = pfrac x 7.4M at every width: the interior density falls with the square of the width.
    pfracs = {round(c.sparsity.interior_density * (c.model.d_model / 256) ** 2, 6) for c in sparse}
    assert pfracs == {0.125, 0.25, 0.5, 1.0, 2.0}


def _spec(**members):
    spec = frontier_config.get_config("tiny").to_dict()
    spec["members"] = members
    return spec


def test_expansion_rejects_what_would_spoil_the_comparison():
    ok = {"family": "sparse", "set": {"sparsity": {"enabled": True}}}
    with pytest.raises(ConfigError, match="family"):
        grid.expand(_spec(a={"family": "medium"}))
    with pytest.raises(ConfigError, match="sparsity.enabled"):
        grid.expand(_spec(a={"family": "dense", "set": {"sparsity": {"enabled": True}}}))
    with pytest.raises(ConfigError, match="model.widht"):
        grid.expand(_spec(a=ok | {"set": {"model": {"widht": 3}}}))
    with pytest.raises(ConfigError, match="one data config"):
        grid.expand(_spec(a=ok, b=ok | {"set": {"sparsity": {"enabled": True}, "data": {"synthetic_weight": 0.5}}}))
    with pytest.raises(ConfigError, match="unknown members"):
        grid.expand(_spec(a=ok) | {"order": ["b"]})
    with pytest.raises(ConfigError, match="no member 'c'"):
        grid.expand(_spec(a=ok)).member("c")
    f = grid.expand(_spec(a=ok | {"lrs": [0.5]}))
    assert f.members[0].lrs == (0.5,)


def test_sweep_runs_scale_the_schedule_and_keep_the_model():
    f = grid.expand(frontier_config.get_config("cpu").to_dict())
    m = f.member("s128_d8")
    cfg = grid.sweep_config(m, 0.06, f.sweep_steps)
    assert cfg.optim.lr == 0.06 and cfg.train.steps == f.sweep_steps == cfg.train.eval_every
    assert cfg.model == m.cfg.model and cfg.sparsity == m.cfg.sparsity and cfg.data == m.cfg.data
    assert m.with_lr(0.06).train == m.cfg.train


def test_objective_and_final_losses_read_the_last_evaluation(tmp_path):
    rows = [{"step": 5, "eval_loss": 4.0, "eval_loss_real": 5.0, "eval_loss_synthetic": 3.0}, {"step": 6, "loss": 2},
            {"step": 10, "eval_loss": 3.0, "eval_loss_real": 4.0, "eval_loss_synthetic": 2.5}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    losses = stages.final_val_losses(str(tmp_path))
    assert losses == {"all": 3.0, "real": 4.0, "synthetic": 2.5}
    assert stages.objective(losses) == 3.25
    assert stages.objective({"all": 3.0}) == 3.0


# -- Matched-loss interpolation and the headline on synthetic records ---------------------------------------------


def test_interpolation_is_log_linear_between_neighbours_and_never_extrapolates():
    pts = [(3.0, 100.0), (2.0, 10_000.0), (4.0, None)]
    assert aggregate.interp_log_edges(pts, 2.5) == pytest.approx(1000.0)
    assert aggregate.interp_log_edges(pts, 2.0) == 10_000.0
    assert aggregate.interp_log_edges(pts, 2.75) == pytest.approx(10 ** 2.5)
    assert aggregate.interp_log_edges(pts, 1.9) is None  # below the range
    assert aggregate.interp_log_edges(pts, 3.5) is None  # a neighbour without a circuit
    assert aggregate.interp_log_edges(pts, 4.0) is None
    assert aggregate.interp_log_edges(pts, 4.1) is None
    assert aggregate.geomean([0, 100]) == pytest.approx(10.0)  # an empty circuit counts as one edge


def _m(name, family, loss, **edges):
    return {"name": name, "family": family, "val_loss": loss,
            "tasks": {t: {"n_edges": e} for t, e in edges.items()}}


def test_headline_matches_at_the_lowest_shared_loss_and_takes_the_geometric_mean():
    members = [
        _m("s1", "sparse", 2.5, a=100, b=50, c=None),
        _m("s2", "sparse", 3.0, a=200, b=None, c=10),
        _m("d1", "dense", 2.0, a=10_000, b=400, c=1000),
        _m("d2", "dense", 3.0, a=1000, b=200, c=1000),
        _m("d3", "dense", 3.5, a=None, b=None, c=None),
    ]
    h = aggregate.headline(members)
    assert h["matched_val_loss"] == 2.5  # max(min sparse 2.5, min dense 2.0)
    # dense at 2.5, halfway in loss between d1 and d2: a sqrt(10000*1000), b sqrt(400*200); c has no sparse value.
    assert h["tasks"] == ["a", "b"]
    assert h["per_task"]["a"]["dense_edges"] == pytest.approx(math.sqrt(1e7))
    ratios = [math.sqrt(1e7) / 100, math.sqrt(8e4) / 50]
    assert h["edge_ratio_dense_over_sparse"] == pytest.approx(math.sqrt(ratios[0] * ratios[1]))
    rows = {r["member"]: r for r in aggregate.by_sparse_member(members)}
    assert rows["s2"]["tasks"] == ["a", "c"]
    assert rows["s2"]["edge_ratio_dense_over_sparse"] == pytest.approx(math.sqrt(1000 / 200 * 1000 / 10))
    assert aggregate.matched_pair(members) == ("s2", "d2")


def test_figure2_prunes_per_target_the_tasks_both_unpruned_models_reach():
    s = {"tasks": {"a": {"unpruned_loss": 0.1}, "b": {"unpruned_loss": 0.4}, "c": {"unpruned_loss": 0.0},
                   "d": {"unpruned_loss": None}}}
    d = {"tasks": {"a": {"unpruned_loss": 0.2}, "b": {"unpruned_loss": 0.25}, "c": {"unpruned_loss": 0.01}}}
    assert aggregate.fig2_tasks(s, d, (0.5, 0.3, 0.15, 0.005)) == {0.5: ["a", "b", "c"], 0.3: ["a", "c"],
                                                                   0.15: ["c"], 0.005: []}
    assert aggregate.fig2_tasks(s, d, (0.5,), max_tasks=2) == {0.5: ["a", "b"]}


def test_headline_without_overlap_or_shared_tasks_says_why():
    apart = [_m("s", "sparse", 3.0, a=10), _m("d", "dense", 2.0, a=100), _m("d2", "dense", 2.5, a=100)]
    h = aggregate.headline(apart)
    assert h["edge_ratio_dense_over_sparse"] is None and "do not overlap" in h["note"]
    disjoint = [_m("s", "sparse", 2.0, a=10, b=None), _m("d", "dense", 2.0, a=None, b=100)]
    h = aggregate.headline(disjoint)
    assert h["matched_val_loss"] == 2.0 and h["edge_ratio_dense_over_sparse"] is None and h["note"]
    assert aggregate.headline([_m("s", "sparse", 2.0, a=1)])["note"] == "a family has no trained member"


# -- The tiny variant end to end ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_frontier(tiny_prepared, tmp_path_factory):
    """The tiny frontier run once: the sparse member alone first (as one cluster job would), then everything."""
    spec_dict = frontier_config.get_config("tiny").to_dict()
    spec_dict["base"]["data"]["cache_dir"] = os.path.dirname(tiny_prepared.dir)
    spec = grid.expand(spec_dict)
    workdir = str(tmp_path_factory.mktemp("frontier"))
    logs = []
    pipeline.run_members(workdir, spec, ["sparse"], log=logs.append)
    alone = sorted(os.listdir(workdir))
    out = pipeline.collect(workdir, spec, log=logs.append)
    partial_missing = list(out["missing"])
    pipeline.run_members(workdir, spec, log=logs.append)
    out = pipeline.collect(workdir, spec, log=logs.append)
    return spec, spec_dict, workdir, out, alone, partial_missing


def test_tiny_member_runs_alone_and_aggregation_lists_the_rest(tiny_frontier):
    spec, _, workdir, _, alone, partial_missing = tiny_frontier
    assert alone == ["sparse", "sweeps"]
    assert partial_missing == ["dense"]


def test_tiny_frontier_writes_every_artifact(tiny_frontier):
    spec, _, workdir, out, _, _ = tiny_frontier
    saved = json.load(open(os.path.join(workdir, "frontier.json")))
    assert saved == json.loads(json.dumps(out))
    assert sorted(m["name"] for m in saved["members"]) == ["dense", "sparse"] and saved["missing"] == []
    for m in saved["members"]:
        assert m["family"] == m["name"] and m["steps"] == spec.member(m["name"]).cfg.train.steps
        assert set(m["tasks"]) == set(spec.tasks) and m["n_nonzero"] <= m["n_params"]
        assert (m["n_params_no_bigram"], m["n_nonzero_no_bigram"]) == (m["n_params"], m["n_nonzero"])  # no table
        assert m["lr"] in spec.member(m["name"]).lrs
        if len(spec.member(m["name"]).lrs) > 1:
            assert m["lr"] == m["lr_sweep"]["chosen_lr"] and len(m["lr_sweep"]["runs"]) == 2
            assert min(m["lr_sweep"]["runs"], key=lambda r: r["objective"])["lr"] == m["lr"]
        else:
            assert m["lr_sweep"] is None and not os.path.exists(os.path.join(workdir, "sweeps", m["name"]))
        assert m["val_loss"] == pytest.approx(stages.objective(m["val_losses"]))
        for task, t in m["tasks"].items():
            reachable = t["unpruned_loss"] <= spec.prune.target_loss
            assert reachable or t["n_edges"] is None
            assert reachable == os.path.exists(os.path.join(workdir, m["name"], "circuits", task, "circuit.json"))
    by = {m["name"]: m for m in saved["members"]}
    assert by["sparse"]["n_nonzero"] < by["dense"]["n_nonzero"] == by["dense"]["n_params"]
    assert saved["prune"] == config_lib.to_dict(spec.prune)
    fig2 = saved["figure2"]
    assert fig2["pair"] == {"sparse": "sparse", "dense": "dense"}
    assert [r["target"] for r in fig2["targets"]] == sorted(spec.fig2_targets, reverse=True)
    for r in fig2["targets"]:
        for task in r["tasks"]:
            for fam in ("sparse", "dense"):
                name = fig2["pair"][fam]
                d = os.path.join(workdir, name)
                path = (os.path.join(d, "circuits", task, "circuit.json") if r["target"] == spec.prune.target_loss
                        else stages.target_path(d, r["target"], task))
                assert json.load(open(path))["target_loss"] == r["target"]
    for name in ("figure3.svg", "index.html"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0
    page = open(os.path.join(workdir, "index.html")).read()
    assert "Sparse vs dense frontier" in page and "tiny dense" in page


def test_tiny_rerun_skips_finished_stages_and_redoes_missing_ones(tiny_frontier, monkeypatch):
    spec, _, workdir, out, _, _ = tiny_frontier
    from wsparse import train, workflow
    from wsparse.circuits import extract

    calls = {"train": 0, "eval": 0, "prune": 0}

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    real_eval, real_prune = workflow.evaluate_tasks, extract.prune_task
    monkeypatch.setattr(train, "train", no_training)

    def counting_eval(*a, **k):
        calls["eval"] += 1
        return real_eval(*a, **k)

    def counting_prune(*a, **k):
        calls["prune"] += 1
        return real_prune(*a, **k)

    monkeypatch.setattr(workflow, "evaluate_tasks", counting_eval)
    monkeypatch.setattr(extract, "prune_task", counting_prune)
    pipeline.run_members(workdir, spec, log=lambda _: None)
    assert calls == {"train": 0, "eval": 0, "prune": 0}
    # A lost circuit of one member, the task results of the other: only those stages run again.
    sparse = next(m for m in out["members"] if m["name"] == "sparse")
    solved = [t for t, r in sparse["tasks"].items() if r["n_edges"] is not None]
    assert solved, "the tiny variant's loose target should leave tasks to prune"
    os.remove(os.path.join(workdir, "sparse", "circuits", solved[0], "circuit.json"))
    os.remove(os.path.join(workdir, "dense", "tasks.json"))
    assert not stages.member_done(workdir, spec.member("sparse"), spec.prune, spec.tasks)
    pipeline.run_members(workdir, spec, log=lambda _: None)
    assert calls["eval"] == 1 and calls["prune"] == 1
    assert stages.member_done(workdir, spec.member("dense"), spec.prune, spec.tasks)


def test_entry_point_aggregates_without_running_members(tiny_frontier, tmp_path):
    spec, spec_dict, workdir, out, _, _ = tiny_frontier
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "experiments.frontier", "--config=configs/frontier.py:tiny", f"--workdir={workdir}",
           f"--config.base.data.cache_dir={spec_dict['base']['data']['cache_dir']}", "--aggregate"]
    before = os.path.getmtime(os.path.join(workdir, "sparse", "tasks.json"))
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "headline:" in done.stdout and "frontier.json" in done.stdout
    assert os.path.getmtime(os.path.join(workdir, "sparse", "tasks.json")) == before
    bad = subprocess.run(cmd[:-1] + ["--member=nope"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "no member 'nope'" in bad.stderr
