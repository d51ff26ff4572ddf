"""
Real local servers and pytest fixtures for testing pipelines built on this provider.

Shipped with the package; ``pip install airflow-provider-outamation[testing]`` adds pytest for
:mod:`airflow_outamation.testing.pytest_plugin`, the only module here that needs it. The SFTP
servers other than the in-process asyncssh one start Debian's OpenSSH, ProFTPD or rclone binaries
as unprivileged processes, so they need a Unix system (they use :mod:`pwd`).
"""
