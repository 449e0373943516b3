"""The run report: one self-contained HTML page with the model, its tasks, and a diagram of every circuit."""

from wsparse.report.html import write_report

__all__ = ["write_report"]
