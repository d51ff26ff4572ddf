"""
The claim ledger: claiming ready files into a dated folder, and the records that follow each batch.

- :mod:`~airflow_outamation.claims.protocol`: the claim itself (stage, place, move), crash-safe.
- :mod:`~airflow_outamation.claims.ledger`: batch records, receipts, attempts, leases, rejected and
  completed moves, all keyed by message id; files known by their claim identity (claim id, index).
- :mod:`~airflow_outamation.claims.housekeeping`: claim folders, retention, counts for the status.
- :mod:`~airflow_outamation.claims.renames`: renames that never replace a file, on every kind of server.
- :mod:`~airflow_outamation.claims.records` and :mod:`~airflow_outamation.claims.names`: where records
  live and how names are chosen.
"""

from airflow_outamation.claims.housekeeping import (
    claim_folders,
    folder_status,
    project_claim_folders,
    project_status,
    purge_finished,
)
from airflow_outamation.claims.ledger import (
    claim_status,
    complete,
    complete_many,
    file_key,
    message_ids,
    open_batches,
    record_attempt,
    record_attempts,
    record_batch,
    record_batch_many,
    record_sent,
    record_sent_many,
    reject,
    release_leases,
    relocate,
    relocate_many,
    sent_message_ids,
    settled,
    take_leases,
)
from airflow_outamation.claims.names import NAME_MAX, differences, manifest_id_for, unique_name, with_suffix
from airflow_outamation.claims.protocol import (
    Claim,
    ClaimedFile,
    SkippedFile,
    claim,
    claim_files,
    claimed_files,
    describe_skipped,
    intended_files,
)
from airflow_outamation.claims.records import (
    ATTEMPTS_DIR,
    BATCHES_DIR,
    CLAIMS_DIR,
    COMPLETED_DIR,
    LEASES_DIR,
    PLAN_SUFFIX,
    RECORD_VERSION,
    REJECTED_DIR,
    SENT_DIR,
    claim_dir_of,
    claims_folder,
    manifest_path,
    placed_path,
    record_dir,
    record_path,
    sibling_dir,
)
from airflow_outamation.claims.renames import (
    folder_lock,
    rename_replaces,
    renames_are_exclusive,
    renames_without_replacing,
)
from airflow_outamation.sftp_pipelining import pipelined_renames, pipelined_writes

__all__ = [
    "ATTEMPTS_DIR",
    "BATCHES_DIR",
    "CLAIMS_DIR",
    "COMPLETED_DIR",
    "LEASES_DIR",
    "NAME_MAX",
    "PLAN_SUFFIX",
    "RECORD_VERSION",
    "REJECTED_DIR",
    "SENT_DIR",
    "Claim",
    "ClaimedFile",
    "SkippedFile",
    "claim",
    "claim_dir_of",
    "claim_files",
    "claim_folders",
    "claim_status",
    "claimed_files",
    "claims_folder",
    "complete",
    "complete_many",
    "describe_skipped",
    "differences",
    "file_key",
    "folder_lock",
    "folder_status",
    "intended_files",
    "manifest_id_for",
    "manifest_path",
    "message_ids",
    "open_batches",
    "pipelined_renames",
    "pipelined_writes",
    "placed_path",
    "project_claim_folders",
    "project_status",
    "purge_finished",
    "record_attempt",
    "record_attempts",
    "record_batch",
    "record_batch_many",
    "record_dir",
    "record_path",
    "record_sent",
    "record_sent_many",
    "reject",
    "release_leases",
    "relocate",
    "relocate_many",
    "rename_replaces",
    "renames_are_exclusive",
    "renames_without_replacing",
    "sent_message_ids",
    "settled",
    "sibling_dir",
    "take_leases",
    "unique_name",
    "with_suffix",
]
