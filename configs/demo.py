"""The CPU default that `make demo` trains: the standard library plus generated everyday Python, about 8 minutes of
training on 2 cores.

A 4-layer, D = 128 weight-sparse model (interior density 1/8, embeddings and biases 1/4, AbsTopK 1/4, with an
attention sink and a bigram table), 1000 steps of 32 x 64 tokens, the density annealed over the first 30% of
training. Batch 32 and lr 3e-2 were chosen by validation loss on library code and on generated programs (their mean),
never by task results: docs/results/demo_tuning.md. Pruning uses the `fast` budget of configs/prune.py (one setting,
200 steps of 8 pairs). `:dense` is the same model without weight or activation sparsity. README.md gives the measured
times and results.
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
    # Mostly the simple-idiom component, as the paper's small experiments, with real library code mixed in.
    c.data.update(default_sources=True, max_source_bytes=20_000_000, synthetic_weight=0.9,
                  tokenizer_train_bytes=20_000_000)
    c.train.update(steps=1000, batch_size=32, log_every=50, eval_every=250, eval_batches=8, checkpoint_every=250)
    c.prune = prune.get_config("fast,cheap_card")  # the demo's faithfulness card: swapped_answers
    if arg == "dense":
        c.name = "demo_dense"
        c.sparsity.enabled = False
        c.model.afrac = 1.0
    return c
