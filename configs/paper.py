"""The paper's model family (docs/method.md sections 1-2): `--config=configs/paper.py:4x`, or `:4x,dense`.

Expansion factor e: 8 layers, D = 256e, d_mlp = 1024e, 16e heads of 16, n_ctx 256, vocab 2048. Densities follow the
release: interior pfrac / e^2, embeddings, unembedding and biases pfrac / e, so L0 is about pfrac * 7.4M at every e.
Override pfrac with `--config.sparsity.interior_density=...` or pass `:4x,pfrac=0.5`.
"""

from configs.common import defaults


def get_config(arg: str = "4x"):
    opts = [a for a in arg.split(",") if a]
    e = 4
    pfrac = 0.25
    dense = False
    for o in opts:
        if o.endswith("x"):
            e = int(o[:-1])
        elif o.startswith("pfrac="):
            pfrac = float(o.split("=")[1])
        elif o == "dense":
            dense = True
        else:
            raise ValueError(f"configs/paper.py: unknown option {o!r}; use e.g. '4x', '2x,pfrac=0.5', '4x,dense'")
    c = defaults()
    c.name = f"paper_{e}x" + ("_dense" if dense else f"_pfrac{pfrac:g}")
    c.model.update(n_layer=8, d_model=256 * e, d_mlp=1024 * e, n_head=16 * e, d_head=16, n_ctx=256,
                   vocab_size=2048, afrac=0.25, bigram_table=True, attn_sink=False)
    c.sparsity.update(enabled=not dense, interior_density=min(1.0, pfrac / e**2),
                      embed_density=min(1.0, pfrac / e), bias_density=min(1.0, pfrac / e),
                      min_alive_per_neuron=4, anneal_start_frac=0.01,
                      anneal_end_frac=0.8 if e >= 8 else 0.5)
    c.optim.update(lr=1.28e-2, warmup_frac=0.01)
    # The release's default run: batch 512 x 256 tokens, 32B tokens -> about 244k steps.
    c.train.update(batch_size=512, steps=244_140, log_every=100, eval_every=2000, eval_batches=16,
                   checkpoint_every=2000, keep_checkpoints=3)
    c.data.update(default_sources=True, max_source_bytes=0, synthetic_weight=0.5)
    if dense:
        c.model.afrac = 1.0
    return c
