"""Drift reports: one self-contained HTML page per run and its JSON twin.

``build_report(data_dir, run_id=None, *, settings)`` is the API (``recon report`` and the
nightly pipeline call it); see ``reports.build``. Modules: ``collect`` gathers a run's files and
state (the saved repair plan through the repair floor's reader: the report never plans),
``model`` turns them into the report's typed model (frozen dataclasses), ``json_out`` writes
``report.json`` and the page's data island, ``html`` renders the page from the Jinja2 templates
in ``templates/`` (``assets/`` holds its CSS and JS), ``svg`` draws the charts.
"""

from reports.build import ReportPaths, build_report
from reports.errors import ReportError, RunNotFound
from reports.model import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "ReportError", "ReportPaths", "RunNotFound", "build_report"]
