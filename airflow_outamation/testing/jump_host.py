"""
An SFTP server reachable only through a jump host: two real sshds in a private network namespace.

The target sshd and the jump sshd listen on the namespace's 127.0.0.1; a bridge on this side's
127.0.0.1 leads to the jump sshd only. A connection to the target's address from here finds nothing
listening; the jump sshd reaches it by forwarding (``direct-tcpip``), as a bastion does.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.netns import NetworkNamespace
from airflow_outamation.testing.openssh_server import OpenSshServer


class JumpHostRoute:
    """
    A target sshd behind a jump sshd; :attr:`bridge_port` on 127.0.0.1 reaches the jump sshd.

    Root only (a network namespace); :func:`~airflow_outamation.testing.netns.namespaces_available`.
    """

    def __init__(self) -> None:
        self.namespace = NetworkNamespace()
        self.target = OpenSshServer()
        self.jump = OpenSshServer()
        self.bridge: LatencyProxy | None = None

    def start(self) -> JumpHostRoute:
        """Create the namespace, start both sshds in it and the bridge to the jump sshd."""
        self.namespace.start()
        self.namespace.run(self.target.start)
        self.namespace.run(self.jump.start)
        self.bridge = LatencyProxy(self.jump.port, 0, target_namespace=self.namespace).start()
        return self

    @property
    def bridge_port(self) -> int:
        """The port on 127.0.0.1 that leads to the jump sshd."""
        assert self.bridge is not None, "start() the route first"
        return self.bridge.port

    def jump_connection_json(self, **extra: Any) -> str:
        """An Airflow ``sftp`` connection to the jump sshd (through the bridge), its host key verified."""
        conn = self.jump.connection_dict(**extra)
        conn["port"] = self.bridge_port
        return json.dumps(conn)

    def target_connection_json(self, **extra: Any) -> str:
        """An Airflow ``sftp`` connection to the target sshd at its own address, its host key verified."""
        return self.target.connection_json(**extra)

    def proxy_command(self) -> str:
        """An OpenSSH ``ssh -W`` command that reaches the target through the jump sshd, host key checked."""
        known_hosts = Path(self.jump._workdir) / "client_known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{self.bridge_port} {self.jump.host_key_line}\n")
        return (
            f"ssh -q -i {self.jump.client_key_path} -o IdentitiesOnly=yes -o BatchMode=yes "
            f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known_hosts} -p {self.bridge_port} "
            f"-W 127.0.0.1:{self.target.port} {self.jump.username}@127.0.0.1"
        )

    def close(self) -> None:
        """Stop the bridge, both sshds and the namespace."""
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        self.target.close()
        self.jump.close()
        self.namespace.close()

    def __enter__(self) -> JumpHostRoute:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
