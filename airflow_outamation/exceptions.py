"""
Errors raised by the provider: each says what failed and where, never a secret.

Errors that retrying cannot heal (credentials, host key, a missing or forbidden path, an API
request refused with a 4xx) are also :class:`AirflowFailException`: the task fails at once,
without its Airflow retries.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class OutamationError(AirflowException):
    """Base class of every error this provider raises."""


class SFTPConnectError(OutamationError):
    """The SFTP server could not be reached (refused, timed out, unresolvable, dropped)."""


class SFTPPoolExhaustedError(OutamationError):
    """No pooled SFTP connection became free in time (often: get_conn() clients never returned)."""


class SFTPAuthenticationError(OutamationError, AirflowFailException):
    """The SFTP server rejected the connection's credentials."""


class SFTPHostKeyError(OutamationError, AirflowFailException):
    """The SFTP server's host key is unknown or differs from the one configured."""


class SFTPPathError(OutamationError, AirflowFailException):
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


class DocumentApiRejectedError(DocumentApiError, AirflowFailException):
    """The document API refused the request (HTTP 4xx but 408 and 429): sending it again cannot help."""


class SFTPConnectionTypeError(OutamationError, AirflowFailException):
    """The Airflow connection given for SFTP is of another type (e.g. the document API's) or has no host."""
