"""Times evaluating all 20 tasks (500 test pairs each) on the demo model's shapes, random init.

    python -m benchmarks.tasks [--tokenizer=PATH] [--n=500]

Prints generation+encoding time, the first (compiling) evaluation and a second, warm one. Without --tokenizer the
tokenizer of configs/tiny.py's prepared data is used (any 2048-token tokenizer built with the task tokens works).
"""

import time

from absl import app, flags

_TOKENIZER = flags.DEFINE_string("tokenizer", None, "tokenizer.json (default: configs/tiny.py's prepared data).")
_N = flags.DEFINE_integer("n", 500, "Test pairs per task.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Sequences per jitted batch.")


def main(argv):
    del argv
    import jax

    from configs.demo import get_config
    from wsparse import config, model, tasks
    from wsparse.data import tokenizer as tok_lib

    path = _TOKENIZER.value
    if path is None:
        from configs.tiny import get_config as tiny

        from wsparse import data

        path = data.prepare(config.from_configdict(tiny()).data, log=lambda _: None).tokenizer_path
    tok = tok_lib.load(path)
    cfg = config.from_configdict(get_config()).model
    params = model.init_params(cfg, jax.random.key(0))
    names = list(tasks.PAPER_ORDER)

    t0 = time.perf_counter()
    for name in names:
        tasks.get(name).generate("test", _N.value)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    batches = tasks.encode_all(tok, names, cfg.n_ctx, n=_N.value)
    t_enc = time.perf_counter() - t0
    n_seq = sum(len(b.last) for b in batches.values())
    mean_len = sum(int(b.last.sum()) + len(b.last) for b in batches.values()) / n_seq
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        res = tasks.evaluate_batches(params, cfg, batches, batch_size=_BATCH.value)
        times.append(time.perf_counter() - t0)
    print(f"demo model: {cfg.n_layer} layers, d_model {cfg.d_model}, n_ctx {cfg.n_ctx}; {len(names)} tasks, "
          f"{n_seq} sequences, mean length {mean_len:.0f} tokens; {jax.device_count()} {jax.default_backend()} "
          f"device(s)")
    print(f"generate (alone)        {t_gen:6.2f} s")
    print(f"generate + encode       {t_enc:6.2f} s")
    print(f"evaluate, first (jit)   {times[0]:6.2f} s")
    print(f"evaluate, warm          {times[1]:6.2f} s   ({n_seq / times[1]:.0f} sequences/s)")
    print(f"total (encode + first)  {t_enc + times[0]:6.2f} s")
    print(f"mean accuracy of the random model {sum(r['accuracy'] for r in res.values()) / len(res):.3f}")


if __name__ == "__main__":
    app.run(main)
