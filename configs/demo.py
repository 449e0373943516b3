"""The CPU default used by `make demo`: real Python plus simple synthetic idioms, about 10 minutes on 2 cores."""

from configs.common import defaults


def get_config(arg: str = ""):
    c = defaults()
    c.name = "demo"
    c.model.update(n_layer=4, d_model=128, n_head=8, d_head=16, d_mlp=512, n_ctx=128, bigram_table=True,
                   attn_sink=True)
    c.sparsity.update(interior_density=0.125, embed_density=0.25, bias_density=0.25, min_alive_per_neuron=4,
                      anneal_start_frac=0.01, anneal_end_frac=0.5)
    c.optim.lr = 1e-2
    # The release's gradient normalisation: with eps 0.1, clipping alone leaves updates of about lr * g / 0.1 for
    # gradients of RMS ~3e-4, and a small model barely moves (demo loss 6.55 vs 3.94 after 150 steps).
    c.optim.grad_rms_mode = "normalize"
    c.data.update(default_sources=True, max_source_bytes=40_000_000, synthetic_weight=0.5,
                  tokenizer_train_bytes=20_000_000)
    c.train.update(steps=3000, batch_size=32, log_every=50, eval_every=500, eval_batches=8, checkpoint_every=500)
    if arg == "dense":
        c.name = "demo_dense"
        c.sparsity.enabled = False
        c.model.afrac = 1.0
    return c
