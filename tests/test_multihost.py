"""Multi-host training: two local processes under jax.distributed train the same model as one process."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import wsparse
from configs import tiny
from wsparse import config as config_lib
from wsparse import data, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROCESS = textwrap.dedent("""
    import os, sys
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, {repo!r})
    from configs import tiny
    from wsparse import config as config_lib, parallel
    cd = tiny.get_config()
    cd.data.cache_dir = {cache!r}
    cd.distributed.update(enabled=True, coordinator_address={addr!r}, num_processes=2, process_id={pid})
    cfg = config_lib.from_configdict(cd)
    parallel.initialize(cfg.distributed)
    import jax
    from wsparse import train
    assert jax.process_count() == 2 and len(jax.devices()) == 2
    result = train.train(cfg, {workdir!r}, progress=False, log=lambda s: None)
    print("FINAL", jax.process_index(), int(result.state.step), result.final_loss)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.multihost
def test_two_processes_match_one(tmp_path):
    cd = tiny.get_config()
    cd.data.cache_dir = str(tmp_path / "cache")
    cfg = config_lib.from_configdict(cd)
    data.prepare(cfg.data, log=lambda s: None)  # both processes then read the same cache
    addr = f"127.0.0.1:{_free_port()}"
    workdir = tmp_path / "multi"
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS.format(repo=REPO, cache=cfg.data.cache_dir, addr=addr,
                                                                     pid=pid, workdir=str(workdir))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for pid in (0, 1)]
    outs = [p.communicate(timeout=400) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    finals = [line.split() for out, _ in outs for line in out.splitlines() if line.startswith("FINAL")]
    assert sorted(int(f[1]) for f in finals) == [0, 1] and all(int(f[2]) == cfg.train.steps for f in finals)

    single = train.train(cfg, str(tmp_path / "single"), progress=False, log=lambda s: None)
    multi = wsparse.load_run(str(workdir))
    assert multi.step == cfg.train.steps
    # The cross-process gradient sum adds in another order than one process does; after 20 Adam steps that float32
    # difference is a few 1e-6 on weights of size 1e-2. The sparsity pattern must agree exactly.
    for a, b in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(multi.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(a) == 0, np.asarray(b) == 0)
    assert abs(float(finals[0][3]) - single.final_loss) < 1e-4
