"""Seconds-scale config for tests: a 2-layer model on a small synthetic corpus."""

from configs.common import defaults


def get_config(arg: str = ""):
    c = defaults()
    c.name = "tiny"
    c.model.update(n_layer=2, d_model=32, n_head=2, d_head=16, d_mlp=128, n_ctx=32)
    c.sparsity.update(interior_density=0.25, embed_density=0.5, bias_density=0.5, min_alive_per_neuron=2)
    c.optim.lr = 1e-2
    c.data.update(default_sources=False, synthetic_weight=1.0, tokenizer_train_bytes=1_500_000,
                  max_source_bytes=1_500_000)
    c.train.update(steps=20, batch_size=8, log_every=5, eval_every=10, eval_batches=2, checkpoint_every=10)
    c.prune.update(steps=100, batch_pairs=16, n_train_pairs=256, n_val_pairs=128, n_test_pairs=128, means_tokens=4096,
                   n_random_controls=2)
    if arg == "dense":
        c.sparsity.enabled = False
        c.model.afrac = 1.0
    return c
