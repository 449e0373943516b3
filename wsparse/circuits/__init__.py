"""Circuit extraction (docs/method.md section 5): learned node masks over a frozen model, bisection, validation.

    from wsparse.circuits import extract, means
    stats = means.for_run(run, cfg.prune)                 # pretraining node means (+ resample bank), cached
    record = extract.prune_task(run, "for_while", cfg.prune, stats)   # writes RUN/circuits/for_while/circuit.json

Modules: ``means`` (node statistics), ``masks`` (layout, Heaviside/sigmoid masks, temperatures, the masking
``node_fn``), ``prune`` (the jitted vmapped mask loop, bisection, calibration), ``graph`` (edges), ``validate``
(sufficiency, necessity, random controls, attribution baseline), ``extract`` (one task end to end, the artifact).
"""
