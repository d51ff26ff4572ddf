"""
Many projects of the example DAG on a few SFTP servers (the distributed tests' and benchmark's set-up).

Projects ``<prefix>00``, ``<prefix>01``, ... alternate over the given servers, one Airflow ``sftp``
connection per server (``outamation_<prefix>_<kind>``) and one document API connection for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.airflow_processes import example_dag_home


@dataclass(frozen=True)
class ManyProjects:
    """
    The DAGs folder and environment of an Airflow home serving many projects.

    :param dags: the DAGs folder (the example DAG)
    :param env: ``OUTAMATION_PROJECTS_FILE`` and the ``AIRFLOW_CONN_*`` connections
    :param bases: project id -> (server kind, project folder on that server)
    :param servers: server kind -> server
    """

    dags: Path
    env: dict[str, str]
    bases: dict[str, tuple[str, str]]
    servers: dict[str, SftpTestServer]

    @staticmethod
    def dag_id(project: str) -> str:
        """The DAG id of a project."""
        return f"outamation_sftp_ingest_{project}"

    def put_files(self, tag: str, count: int, projects: list[str] | None = None) -> dict[str, set[str]]:
        """
        Write ``count`` ready PDFs named ``<tag>_<project>_<n>.pdf`` into each project's input folder.

        :param tag: prefix of the file names
        :param count: files per project
        :param projects: which projects (all when not given)
        :return: project id -> the names written
        """
        names = {}
        for project in projects or list(self.bases):
            kind, base = self.bases[project]
            names[project] = {f"{tag}_{project}_{i:03d}.pdf" for i in range(count)}
            for name in names[project]:
                self.servers[kind].write(f"{base}/input/{name}", b"%PDF-1.7 " + name.encode())
        return names


def many_projects(
    home: Path,
    servers: dict[str, SftpTestServer],
    receiver: DocumentApiReceiver,
    count: int,
    prefix: str = "dist",
) -> ManyProjects:
    """
    Write a projects file for ``count`` projects into ``home`` and create their input folders.

    :param home: the Airflow home (gets ``projects.json`` and ``dags/``)
    :param servers: server kind -> server; projects alternate over them in this order
    :param receiver: the document API every project sends to
    :param count: how many projects
    :param prefix: project ids are ``<prefix>00``, ``<prefix>01``, ...
    """
    kinds = list(servers)
    bases = {}
    entries = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        project = f"{prefix}{i:02d}"
        base = servers[kind].remote_path(f"{prefix}-{home.name}/{project}")
        servers[kind].makedirs(f"{base}/input")
        bases[project] = (kind, base)
        entries.append(
            {
                "project_id": project,
                "sftp_conn_id": f"outamation_{prefix}_{kind}",
                "document_api_conn_id": f"outamation_{prefix}_api",
                "base_path": base,
                "profile_code": f"profile_{project}",
                "poke_interval": 1,
            }
        )
    dags, projects_env = example_dag_home(home, entries)
    env = {
        **projects_env,
        f"AIRFLOW_CONN_OUTAMATION_{prefix.upper()}_API": receiver.connection_json(
            backoff_initial=0.1, backoff_max=1
        ),
    }
    for kind, server in servers.items():
        env[f"AIRFLOW_CONN_OUTAMATION_{prefix.upper()}_{kind.upper()}"] = server.connection_json()
    return ManyProjects(dags, env, bases, servers)


def process_tree(root: int) -> set[int]:
    """A process and all its descendants (from ``/proc``), those that still exist."""
    pids, pending = set(), [root]
    while pending:
        pid = pending.pop()
        pids.add(pid)
        try:
            pending += [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
    return pids
