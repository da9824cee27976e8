"""HA groups: a primary and secondaries that vote, and read replicas, each a
``lakewave serve`` process with its own database file, described by one group
file (TOML; ``lakewave group init`` writes one).

This module is the ``lakewave group`` command's side: it starts and stops the
members' processes and HAProxy, and reads each member's state from its status
port. Replication itself (openraft, in the Rust core) runs inside each member.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lakewave import _internal

#: How long ``group start`` waits for a member or HAProxy to come up.
START_TIMEOUT = 60.0
#: How long ``group stop`` waits for a member before it kills it.
STOP_TIMEOUT = 30.0


class GroupMember:
    """This instance's membership of an HA group (:meth:`Connection.join_group`)."""

    __slots__ = ("_inner",)

    def __init__(self, inner: _internal.GroupMember) -> None:
        self._inner = inner

    @property
    def name(self) -> str:
        return str(self._inner.name)

    def status(self) -> dict[str, Any]:
        """Role (``primary``, ``secondary``, ``replica``), state, term, the
        primary's name, log and applied positions, and on the primary how far
        each member has replicated."""
        return json.loads(self._inner.status())

    @property
    def is_primary(self) -> bool:
        """The primary, with writes open."""
        return bool(self._inner.is_writable_primary())

    @property
    def is_readable(self) -> bool:
        """Serves reads within the group's lag bound."""
        return bool(self._inner.is_readable())

    def set_writes_open(self, open: bool) -> None:
        self._inner.set_writes_open(bool(open))

    def stop(self) -> None:
        """Leave the group's Raft (the instance stays open, refusing writes)."""
        self._inner.stop()


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The group file, read and checked by the core (unknown keys are errors)."""
    return json.loads(_internal.group_file(os.fspath(path)))


def init(
    path: Path,
    dir: Path,
    *,
    members: int = 3,
    replicas: int = 2,
    base_port: int = 13306,
    name: str | None = None,
    users_file: Path | None = None,
) -> str:
    """Write a group file for a group on loopback; returns its text."""
    dir = dir.resolve()
    text = _internal.group_init_text(
        name or dir.name or "lakewave",
        os.fspath(dir),
        members,
        replicas,
        base_port,
        None if users_file is None else os.fspath(users_file),
    )
    if path.exists():
        raise FileExistsError(f"{path} exists; remove it or choose another file")
    dir.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text


def write_users_file(path: Path, user: str, password: str) -> None:
    """A users file for every member with one account, holding the
    password's digests only (readable by its owner only)."""
    line = _internal.users_file_line(user, password)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# written by lakewave group init: digests, not the password\n{line}\n")


def _pid_file(member: dict[str, Any]) -> Path:
    return Path(member["dir"]) / "lakewave.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child) is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def member_status(group: dict[str, Any], member: dict[str, Any], timeout: float = 1.0) -> dict[str, Any]:
    """What a member's status port says (``GET /group``), or that it is offline."""
    url = f"http://{group['host']}:{member['status_port']}/group"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        # 503: a member that is not (yet) readable still describes itself.
        try:
            return json.loads(answer.read())
        except ValueError:
            pass
    except (OSError, ValueError):
        pass
    return {"name": member["name"], "state": "OFFLINE", "role": None}


def _wait_port(host: str, port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def start_member(
    file: Path, group: dict[str, Any], member: dict[str, Any], env: dict[str, str] | None = None
) -> int:
    """Start one member as a ``lakewave serve --group`` process (detached,
    its output in ``lakewave.log`` in its directory); returns its pid once
    its status port answers."""
    folder = Path(member["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    running = _read_pid(_pid_file(member))
    if running is not None:
        return running
    log = open(folder / "lakewave.log", "ab")
    command = [
        sys.executable,
        "-m",
        "lakewave",
        "serve",
        "--group",
        os.fspath(file),
        "--member",
        member["name"],
    ]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    log.close()
    _pid_file(member).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (folder / "lakewave.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"member {member['name']} exited with {process.returncode}:\n{tail}")
        if member_status(group, member, timeout=0.5).get("state") != "OFFLINE":
            return process.pid
        time.sleep(0.1)
    raise TimeoutError(f"member {member['name']} did not answer on its status port within {START_TIMEOUT:.0f} s")


def haproxy_paths(file: Path) -> tuple[Path, Path, Path]:
    """The HAProxy configuration, pid file and runtime socket of a group."""
    folder = file.resolve().parent
    return folder / "haproxy.cfg", folder / "haproxy.pid", folder / "haproxy.sock"


def start_haproxy(file: Path, group: dict[str, Any]) -> int | None:
    """Start HAProxy for the group's endpoints, if it is installed; its pid."""
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if binary is None:
        return None
    config, pid_file, sock = haproxy_paths(file)
    running = _read_pid(pid_file)
    if running is not None:
        return running
    config.write_text(_internal.group_haproxy_config(os.fspath(file), os.fspath(sock)))
    checked = subprocess.run([binary, "-c", "-f", os.fspath(config)], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"HAProxy refused {config}:\n{checked.stdout}{checked.stderr}")
    log = open(config.with_suffix(".log"), "ab")
    process = subprocess.Popen(
        [binary, "-db", "-f", os.fspath(config)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    pid_file.write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    if not _wait_port(group["host"], group["read_write_port"], deadline):
        raise TimeoutError("HAProxy did not open the read/write endpoint")
    return process.pid


def start(file: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start every member and replica that is not running, then HAProxy;
    waits (bounded) until the group has a primary and every member is
    ONLINE (caught up, in contact with the primary), and returns its status."""
    group = read_file(file)
    for member in group["members"]:
        start_member(file, group, member, env)
    start_haproxy(file, group)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        current = status(file)
        if current["primary"] is not None and all(m["state"] == "ONLINE" for m in current["members"]):
            return current
        time.sleep(0.2)
    problems = "; ".join(current["problems"]) or "members still recovering"
    raise TimeoutError(f"the group in {file} did not come online within {START_TIMEOUT:.0f} s: {problems}")


def _differences(group: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section in ("shape", "config"):
        running = reported.get(section)
        if running is None:
            continue
        target = group[section]
        for key in sorted(set(running) | set(target)):
            if running.get(key) != target.get(key):
                out[f"{section}.{key}"] = {"running": running.get(key), "target": target.get(key)}
    return out


def status(file: Path) -> dict[str, Any]:
    """Every member's role, state, shape, configuration, positions and lag,
    and what differs from the file (the target)."""
    group = read_file(file)
    reports = [(m, member_status(group, m)) for m in group["members"]]
    primary = next((r for _, r in reports if r.get("role") == "primary" and r.get("writable")), None)
    members = []
    problems = []
    for spec, report in reports:
        pid = _read_pid(_pid_file(spec))
        entry = {
            "name": spec["name"],
            "id": spec["id"],
            "kind": spec["role"],
            "role": report.get("role") or ("replica" if spec["role"] == "replica" else "secondary"),
            "state": report.get("state", "OFFLINE"),
            "mysql_port": spec["mysql_port"],
            "status_port": spec["status_port"],
            "pid": report.get("pid", pid),
            "term": report.get("term"),
            "primary": report.get("primary"),
            "applied_index": report.get("applied_index"),
            "last_log_index": report.get("last_log_index"),
            "writable": bool(report.get("writable")),
            "readable": bool(report.get("readable")),
            "shape": report.get("shape", {}),
            "config": report.get("config", {}),
            "differs": _differences(group, report),
        }
        if primary is not None and entry["applied_index"] is not None:
            entry["lag"] = max(0, int(primary.get("applied_index") or 0) - int(entry["applied_index"]))
        else:
            entry["lag"] = None
        if entry["state"] == "OFFLINE":
            problems.append(f"{spec['name']} is offline")
        members.append(entry)
    primaries = [m["name"] for m in members if m["role"] == "primary"]
    if len(primaries) > 1:
        problems.append(f"more than one member says it leads: {', '.join(primaries)}")
    if not primaries:
        problems.append("no primary")
    _, pid_file, _ = haproxy_paths(file)
    return {
        "group": group["name"],
        "file": os.fspath(file),
        "endpoints": {
            "read_write": f"{group['host']}:{group['read_write_port']}",
            "read_only": f"{group['host']}:{group['read_only_port']}",
        },
        "haproxy_pid": _read_pid(pid_file),
        "primary": primary.get("name") if primary else None,
        "members": members,
        "problems": problems,
    }


def _stop_pid(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def stop(file: Path) -> list[str]:
    """Stop HAProxy, then every member (SIGTERM: each ends its connections
    and closes its database cleanly; SIGKILL after the timeout)."""
    group = read_file(file)
    stopped = []
    _, pid_file, _ = haproxy_paths(file)
    haproxy = _read_pid(pid_file)
    if haproxy is not None:
        _stop_pid(haproxy, 5.0)
        stopped.append("haproxy")
    pid_file.unlink(missing_ok=True)
    for member in group["members"]:
        pid = _read_pid(_pid_file(member))
        if pid is not None:
            _stop_pid(pid, STOP_TIMEOUT)
            stopped.append(member["name"])
        _pid_file(member).unlink(missing_ok=True)
    return stopped


def format_status(current: dict[str, Any]) -> str:
    lines = [
        f"group {current['group']}: read/write {current['endpoints']['read_write']}, "
        f"read-only {current['endpoints']['read_only']}, primary {current['primary'] or '(none)'}"
    ]
    header = f"{'member':<8} {'role':<10} {'state':<11} {'port':>6} {'pid':>8} {'term':>5} {'applied':>8} {'lag':>5}"
    lines.append(header)
    for m in current["members"]:
        lines.append(
            f"{m['name']:<8} {m['role'] or '-':<10} {m['state']:<11} {m['mysql_port']:>6} "
            f"{m['pid'] or '-':>8} {m['term'] if m['term'] is not None else '-':>5} "
            f"{m['applied_index'] if m['applied_index'] is not None else '-':>8} "
            f"{m['lag'] if m['lag'] is not None else '-':>5}"
        )
        for key, values in m["differs"].items():
            lines.append(f"    {key}: running {values['running']!r}, target {values['target']!r}")
    for problem in current["problems"]:
        lines.append(f"! {problem}")
    return "\n".join(lines)
