"""How much the SSH libraries (asyncssh, paramiko) log: WARNING unless ``[outamation] ssh_log_level`` says."""

from __future__ import annotations

import logging

from airflow.sdk.configuration import conf

#: The loggers of the SSH libraries the hooks use.
SSH_LOGGERS = ("asyncssh", "paramiko")
#: Their level when ``[outamation] ssh_log_level`` is not set (INFO logs ~13 lines per connection).
DEFAULT_SSH_LOG_LEVEL = "WARNING"


def set_ssh_log_level() -> None:
    """
    Set the SSH libraries' log level: ``[outamation] ssh_log_level`` when set, else WARNING.

    Set the option (``AIRFLOW__OUTAMATION__SSH_LOG_LEVEL=DEBUG``) to see their connection chatter; without
    it, a level the logging configuration already gave these loggers is left as it is.
    """
    configured = conf.get("outamation", "ssh_log_level", fallback=None)
    for name in SSH_LOGGERS:
        logger = logging.getLogger(name)
        if configured:
            logger.setLevel(configured.strip().upper())
        elif logger.level == logging.NOTSET:
            logger.setLevel(DEFAULT_SSH_LOG_LEVEL)
