"""The CPU default used by `make demo`: real Python plus simple synthetic idioms, about 10 minutes on 2 cores.

A 4-layer, D = 128 weight-sparse model (interior density 1/8, embeddings and biases 1/4, AbsTopK 1/4 with an
attention sink and a bigram table), 1000 steps of 64 x 64 tokens. On this 2-core machine a step takes about 0.53 s
(0.50 s dense); the pipeline, the projection and AbsTopK are small shares of it (benchmarks/). Pruning uses the `fast`
budget of configs/prune.py (one setting, 200 steps of 8 pairs), about 35 s per task here.

What decided the task results (one run each, 2 cores, tasks below 0.15 at step 1000; issue 6's note has the table):
lr 2e-2 -> 3e-2, the density annealed over 30% instead of 50% of training and a synthetic share of 0.9 instead of
0.8: 1 -> 4 tasks; a synthetic vocabulary of ~200 names and ~240 message words instead of ~50 and ~40, so that the
model learns rules about names in general and is not thrown by unfamiliar words around the cue: 3 -> 8 tasks (the
latter a fresh-clone `make demo`).
Denser weights (1/4), denser activations (afrac 1/2) and 2000 steps of 32 sequences did not do better.
"""

from configs import prune
from configs.common import defaults


def get_config(arg: str = ""):
    c = defaults()
    c.name = "demo"
    c.model.update(n_layer=4, d_model=128, n_head=8, d_head=16, d_mlp=512, n_ctx=64, bigram_table=True,
                   attn_sink=True)
    c.sparsity.update(interior_density=0.125, embed_density=0.25, bias_density=0.25, min_alive_per_neuron=4,
                      anneal_start_frac=0.01, anneal_end_frac=0.3)
    c.optim.lr = 3e-2
    # The release's gradient normalisation: with eps 0.1, clipping alone leaves updates of about lr * g / 0.1 for
    # gradients of RMS ~3e-4, and a small model barely moves (demo loss 6.55 vs 3.94 after 150 steps).
    c.optim.grad_rms_mode = "normalize"
    # Mostly the simple-idiom component, as the paper's small experiments, with real library code mixed in.
    c.data.update(default_sources=True, max_source_bytes=20_000_000, synthetic_weight=0.9,
                  tokenizer_train_bytes=20_000_000)
    c.train.update(steps=1000, batch_size=64, log_every=50, eval_every=250, eval_batches=8, checkpoint_every=250)
    c.prune = prune.get_config("fast")
    if arg == "dense":
        c.name = "demo_dense"
        c.sparsity.enabled = False
        c.model.afrac = 1.0
    return c
