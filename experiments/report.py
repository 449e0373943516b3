"""Write a run's report: one self-contained HTML page (model, tasks, circuit diagrams) that opens offline.

    python -m experiments.report --workdir=runs/demo

Reads config.json, metrics.jsonl, tasks.json and circuits/*/circuit.json, loads the latest checkpoint for the
parameter counts and the circuit nodes' activation statistics, and prints the path of RUN/report/index.html. A run
without a loadable checkpoint still gets a report, without those two parts.
"""

from absl import flags

from wsparse import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (made by experiments.train).", required=True)
_NODE_TOKENS = flags.DEFINE_integer("node_tokens", 32768,
                                    "Validation tokens for each node's mean activation and top contexts.")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Top-activating contexts shown per node.")


def main(argv):
    del argv
    import wsparse
    from wsparse import workflow
    from wsparse.report import write_report

    workdir = _WORKDIR.value
    try:
        run = wsparse.load_run(workdir)
    except Exception as e:  # a report of a partial run is still useful; say what is missing
        print(f"report: no checkpoint loaded from {workdir} ({type(e).__name__}: {e}); "
              "parameter counts and node statistics left out")
        inputs = {}
    else:
        inputs = workflow.report_inputs(run, node_tokens=_NODE_TOKENS.value, top_k=_TOP_K.value)
    print(write_report(workdir, **inputs))


if __name__ == "__main__":
    cli.run(main)
