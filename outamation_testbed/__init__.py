"""
The repository's test bed, not shipped in the wheel: Airflow process launcher, PostgreSQL and Redis
launchers, the many-projects bed, the demo (``python -m outamation_testbed.demo``) and DAG-run helpers.

Used by the DAG and end-to-end tests and the benchmarks, run from the repository root.
"""
