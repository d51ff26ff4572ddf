"""Errors raised by the provider: each says what failed and where, never a secret."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class OutamationError(AirflowException):
    """Base class of every error this provider raises."""


class SFTPConnectError(OutamationError):
    """The SFTP server could not be reached (refused, timed out, unresolvable, dropped)."""


class SFTPPoolExhaustedError(OutamationError):
    """No pooled SFTP connection became free in time (often: get_conn() clients never returned)."""


class SFTPAuthenticationError(OutamationError):
    """The SFTP server rejected the connection's credentials."""


class SFTPHostKeyError(OutamationError):
    """The SFTP server's host key is unknown or differs from the one configured."""


class SFTPPathError(OutamationError):
    """A remote path is missing, of the wrong type (a directory for a file) or not permitted."""


class SFTPClaimError(OutamationError):
    """Claiming files into the in-progress folder failed; every file is still in one place."""


class DocumentApiError(OutamationError):
    """
    The document API answered with an error or could not be reached after all retries.

    :param status: the HTTP status of the (last) answer, ``None`` when there was none
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
