"""The run report: one self-contained HTML page with the model, its tasks, and a diagram of every circuit.

Modules: ``artifacts`` (reading a run directory), ``layout`` (the page), ``circuit_svg`` and ``plots`` (its figures),
``node_info`` (what a node responds to), ``html`` (``write_report``); ``static/`` holds the page's CSS and JS.
"""

from wsparse.report.html import ReportInputs, write_report

__all__ = ["ReportInputs", "write_report"]
