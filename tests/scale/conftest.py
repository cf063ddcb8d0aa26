"""A real PostgreSQL server in a temporary directory (initdb + pg_ctl on a free 127.0.0.1 port) for the
multi-machine search tests; skipped with one line where PostgreSQL is not installed."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def _pg_bin(tool: str) -> str | None:
    found = shutil.which(tool)
    if found:
        return found
    cands = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return cands[-1] if cands else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """``postgresql://hap@127.0.0.1:PORT/hap`` of a throw-away server (stopped and deleted afterwards)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin)")
    pytest.importorskip("psycopg2")
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="hap-pg-")
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the 'postgres' system user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root)
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as (.ci/run creates one)")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = Path(root) / "data", _free_port()
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "hap", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off -c max_connections=100"
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", f"{root}/log", "-w", "start"],
                       check=True, capture_output=True, timeout=120)
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=port, user="hap", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE hap")
        con.close()
        yield f"postgresql://hap@127.0.0.1:{port}/hap"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=120)
        shutil.rmtree(root, ignore_errors=True)
