"""Helpers of the pipeline tests (tests/jobs/test_pipeline*.py; their ``tenant`` and ``env``
fixtures are in tests/jobs/conftest.py): the sandbox's secret, the job steps with a fast
extractor, and the job history rows."""

from __future__ import annotations

import functools

from core.config import Settings
from core.state import StateDB
from jobs.pipeline import run_steps
from tests.support.extract import fast_options

SECRET = "sandbox-secret"


def steps(**kw):
    return functools.partial(run_steps, extract_options=fast_options(attempts=2, local=True,
                                                                     **kw))


def job_run_rows(settings: Settings) -> list[dict]:
    with StateDB(settings.data_dir) as st:
        frame = st.con.sql("SELECT * FROM job_runs ORDER BY started_at").pl()
    return frame.to_dicts()
