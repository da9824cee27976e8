"""HA groups: a primary and secondaries that vote, and read replicas, each a
``lakewave serve`` process with its own database file, described by one group
file (TOML; ``lakewave group init`` writes one).

This module is the ``lakewave group`` command's side: it starts and stops the
members' processes and HAProxy, and reads each member's state from its status
port. Replication itself (openraft, in the Rust core) runs inside each member.
"""

from __future__ import annotations

import contextlib
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
    file: Path,
    group: dict[str, Any],
    member: dict[str, Any],
    env: dict[str, str] | None = None,
    config: dict[str, str] | None = None,
) -> int:
    """Start one member as a ``lakewave serve --group`` process (detached,
    its output in ``lakewave.log`` in its directory); returns its pid once
    its status port answers."""
    folder = Path(member["dir"])
    folder.mkdir(parents=True, exist_ok=True)
    running = _read_pid(_pid_file(member))
    if running is not None:
        return running
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
    for key, value in (config or {}).items():
        command += ["--config", f"{key}={value}"]
    with open(folder / "lakewave.log", "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    _pid_file(member).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (folder / "lakewave.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"member {member['name']} exited with {process.returncode}:\n{tail}")
        if member_status(group, member, timeout=0.5).get("state") != "OFFLINE":
            return process.pid
        time.sleep(0.1)
    raise TimeoutError(
        f"member {member['name']} did not answer on its status port within {START_TIMEOUT:.0f} s"
    )


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
    with open(config.with_suffix(".log"), "ab") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", os.fspath(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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


def _differences(group: dict[str, Any], reported: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """What a member runs that differs from its target (the group's
    settings with the member's own overrides)."""
    out: dict[str, Any] = {}
    for section in ("shape", "config"):
        running = reported.get(section)
        if running is None:
            continue
        target = spec[section]
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
            "differs": _differences(group, report, spec),
        }
        if primary is not None and entry["applied_index"] is not None:
            entry["lag"] = max(0, int(primary.get("applied_index") or 0) - int(entry["applied_index"]))
        else:
            entry["lag"] = None
        if entry["state"] == "OFFLINE":
            problems.append(f"{spec['name']} is offline")
        members.append(entry)
    inconsistent = [
        f"{m['name']} {key}: observed {values['running']!r}, target {values['target']!r}"
        for m in members
        for key, values in m["differs"].items()
    ]
    if inconsistent:
        problems.append(
            "the group's members are inconsistent in the following properties: " + "; ".join(inconsistent)
        )
    journal = rollout_path(Path(file))
    rollout = None
    if journal.exists():
        try:
            rollout = json.loads(journal.read_text())
        except ValueError:
            rollout = None
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
        "rollout": None if rollout is None else {k: rollout[k] for k in ("state", "to_operate", "operated")},
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


class GroupCommandError(RuntimeError):
    """A group command could not do what it was asked; the group is left as
    the message says."""


def _admin(
    group: dict[str, Any], member: dict[str, Any], action: str, enabled: bool | None = None
) -> dict[str, Any]:
    """An administration request to a member's status port, with the token
    the member keeps in its directory (loopback only)."""
    token = (Path(member["dir"]) / "admin.token").read_text().strip()
    query = "" if enabled is None else f"?enabled={int(enabled)}"
    request = urllib.request.Request(
        f"http://{group['host']}:{member['status_port']}/admin/{action}{query}",
        method="POST",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        raise GroupCommandError(
            f"member {member['name']}: {answer.read().decode(errors='replace').strip()}"
        ) from None


def _haproxy(file: Path, command: str) -> str | None:
    """A command on HAProxy's runtime API (its stats socket), if it runs."""
    _, pid_file, sock = haproxy_paths(file)
    if _read_pid(pid_file) is None or not sock.exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(os.fspath(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _haproxy_server_up(file: Path, backend: str, server: str) -> bool | None:
    """Whether HAProxy sees `server` of `backend` up (None: no HAProxy)."""
    answer = _haproxy(file, f"show servers state {backend}")
    if answer is None:
        return None
    for line in answer.splitlines():
        fields = line.split()
        # be_id be_name srv_id srv_name srv_addr srv_op_state ...
        if len(fields) > 5 and fields[1] == backend and fields[3] == server:
            return fields[5] == "2"
    return False


def _wait(what: str, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise GroupCommandError(f"timed out after {timeout:.0f} s waiting for {what}")


def _by_name(group: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in group["members"]}


def switchover(file: Path, to: str | None = None, log=None) -> dict[str, Any]:
    """A controlled failover: close writes on the primary, wait until the
    target secondary has everything, elect it, and wait until the
    read/write endpoint leads to it. The former primary stays a secondary.
    Returns the steps taken with their times."""
    group = read_file(file)
    members = _by_name(group)
    current = status(file)
    old = current["primary"]
    if old is None:
        raise GroupCommandError("the group has no primary to switch from")
    voters = [m for m in current["members"] if m["kind"] == "voter"]
    if to is None:
        candidates = [m for m in voters if m["name"] != old and m["state"] == "ONLINE"]
        if not candidates:
            raise GroupCommandError("no online secondary to switch to")
        to = max(candidates, key=lambda m: m["applied_index"] or 0)["name"]
    target = next((m for m in current["members"] if m["name"] == to), None)
    if target is None:
        raise GroupCommandError(f"the group has no member {to!r} (its members: {', '.join(members)})")
    if target["kind"] != "voter":
        raise GroupCommandError(f"{to} is a read replica; only a voting member can become the primary")
    if to == old:
        raise GroupCommandError(f"{to} is already the primary")
    if target["state"] != "ONLINE":
        raise GroupCommandError(f"{to} is {target['state']}; it must be ONLINE to take over")
    steps: list[dict[str, Any]] = []
    started = time.time()

    def step(name: str) -> None:
        steps.append({"step": name, "at": time.time()})
        if log is not None:
            log(f"switchover: {name}")

    others = [members[m["name"]] for m in voters if m["name"] != to and m["state"] != "OFFLINE"]
    try:
        step(f"close writes on {old}")
        _admin(group, members[old], "writes", False)
        for member in others:
            _admin(group, member, "elect", False)
        step(f"wait until {to} has everything {old} committed")

        def caught_up() -> bool:
            report = member_status(group, members[old])
            matched = (report.get("replication") or {}).get(to)
            return matched is not None and matched >= (report.get("last_log_index") or 0)

        _wait(f"{to} to catch up with {old}", caught_up, 30)
        step(f"elect {to}")
        _admin(group, members[old], "heartbeat", False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            _admin(group, members[to], "campaign")
            try:
                _wait(f"{to} to lead", lambda: member_status(group, members[to]).get("writable") is True, 3)
                break
            except GroupCommandError:
                continue
        else:
            raise GroupCommandError(f"{to} was not elected within 30 s")
    finally:
        for member in [members[m["name"]] for m in voters if m["state"] != "OFFLINE"]:
            try:
                _admin(group, member, "heartbeat", True)
                _admin(group, member, "elect", True)
            except (OSError, GroupCommandError):
                pass
        with contextlib.suppress(OSError, GroupCommandError):
            _admin(group, members[old], "writes", True)
    step(f"wait until the read/write endpoint leads to {to}")
    if _haproxy_server_up(file, "read_write", to) is not None:
        _wait(
            f"HAProxy to route writes to {to}",
            lambda: (
                _haproxy_server_up(file, "read_write", to) and not _haproxy_server_up(file, "read_write", old)
            ),
            30,
        )
    step("done")
    return {"from": old, "to": to, "seconds": round(time.time() - started, 3), "steps": steps}


def _restart_member(
    file: Path, group: dict[str, Any], member: dict[str, Any], config: dict[str, str] | None = None
) -> None:
    pid = _read_pid(_pid_file(member))
    if pid is not None:
        _stop_pid(pid, STOP_TIMEOUT)
    _pid_file(member).unlink(missing_ok=True)
    start_member(file, group, member, config=config)


def _wait_online(
    file: Path, group: dict[str, Any], member: dict[str, Any], timeout: float = START_TIMEOUT
) -> None:
    """The member is ONLINE and has applied what the primary has."""

    def online() -> bool:
        report = member_status(group, member)
        if report.get("state") != "ONLINE":
            return False
        primary = next(
            (member_status(group, m) for m in group["members"] if m["name"] == report.get("primary")), None
        )
        return primary is not None and (report.get("applied_index") or 0) >= (
            primary.get("applied_index") or 0
        )

    _wait(f"{member['name']} to be online and caught up", online, timeout)


def rollout_path(file: Path) -> Path:
    """Where ``group update`` records its progress."""
    return file.with_name(file.name + ".rollout.json")


def update(
    file: Path,
    shape: list[tuple[str, str]],
    config: list[tuple[str, str]],
    member: str | None = None,
    log=None,
) -> dict[str, Any]:
    """A rolling update: the file's shape and configuration (a read
    replica's own, with ``member``) take the new values, then every member
    whose running settings differ from its target is restarted with them, in
    the order HeatWave's HA DB systems take: read replicas one at a time
    (drained from the read-only endpoint, updated, caught up, put back), then
    each secondary, then a controlled switchover to an updated secondary, then
    the former primary, which rejoins as a secondary (a group with no
    secondaries restarts its primary last, with its endpoint down meanwhile).

    The file is the target and each member reports what it runs, so the
    rollout's state survives the command: with no changes given, ``update``
    resumes an interrupted rollout or retries a failed one, operating only the
    members that differ; a rollback is an update back to the old values. A
    member that fails to come back halts the rollout: it is started again with
    the settings it had, and the error names it. Progress is recorded in
    ``<file>.rollout.json``."""
    text = _internal.group_updated_text(os.fspath(file), shape, config, member) if shape or config else None
    journal_path = rollout_path(file)
    interrupted = False
    if journal_path.exists():
        with contextlib.suppress(ValueError, OSError):
            interrupted = json.loads(journal_path.read_text()).get("state") == "running"
    if interrupted:
        # An interrupted rollout may have left a member stopped: start it
        # (with the file's settings, its target).
        group = read_file(file)
        for spec in group["members"]:
            if member_status(group, spec).get("state") == "OFFLINE":
                start_member(file, group, spec)
                _wait_online(file, group, spec)
    current = status(file)
    offline = [m["name"] for m in current["members"] if m["state"] != "ONLINE"]
    if offline:
        raise GroupCommandError(f"every member must be ONLINE before an update; not: {', '.join(offline)}")
    if current["primary"] is None:
        raise GroupCommandError("the group has no primary")
    if member is not None:
        spec = next((m for m in current["members"] if m["name"] == member), None)
        if spec is None:
            raise GroupCommandError(f"the group has no member {member!r}")
        if spec["kind"] != "replica":
            raise GroupCommandError(f"{member} is a voting member; only a read replica is updated on its own")
    if text is not None:
        temporary = file.with_name(file.name + ".new")
        temporary.write_text(text)
        os.replace(temporary, file)
    group = read_file(file)
    specs = _by_name(group)
    observed = {m["name"]: m for m in current["members"]}
    differing = {
        name for name, m in observed.items() if _differences(group, {**m, "name": name}, specs[name])
    }
    if member is not None:
        differing &= {member}
    journal: dict[str, Any] = {
        "started": time.time(),
        "target": {name: {"shape": specs[name]["shape"], "config": specs[name]["config"]} for name in specs},
        "to_operate": sorted(differing),
        "operated": [],
        "steps": [],
        "state": "running",
    }

    def save() -> None:
        temporary = journal_path.with_name(journal_path.name + ".new")
        temporary.write_text(json.dumps(journal, indent=2))
        os.replace(temporary, journal_path)

    def step(name: str, who: str | None = None) -> None:
        journal["steps"].append({"step": name, "member": who, "at": time.time()})
        save()
        if log is not None:
            log(f"update: {name}")

    def operate(name: str, before: dict[str, Any]) -> None:
        """Restart `name` with its target settings; on failure, restart it
        with what it ran before and halt."""
        spec = specs[name]
        try:
            _restart_member(file, group, spec)
            _wait_online(file, group, spec)
        except (RuntimeError, TimeoutError, GroupCommandError) as failure:
            old = {**before.get("config", {}), **before.get("shape", {})}
            try:
                _restart_member(file, group, spec, config=old)
                _wait_online(file, group, spec)
                restored = "it runs its previous settings again"
            except (RuntimeError, TimeoutError, GroupCommandError) as again:
                restored = f"and it did not come back with its previous settings either: {again}"
            journal["state"] = f"failed at {name}"
            step(f"{name} failed to come back; rollout halted", name)
            raise GroupCommandError(
                f"{name} did not come back with the new settings ({failure}); the rollout stopped, "
                f"{restored}; `lakewave group status` shows what differs, `lakewave group update` retries"
            ) from None
        journal["operated"].append(name)
        step(f"{name} is back", name)

    step("start")
    primary = current["primary"]
    order = [m for m in group["members"] if m["role"] == "replica"]
    order += [m for m in group["members"] if m["role"] == "voter" and m["name"] != primary]
    moved = None
    for spec in order:
        name = spec["name"]
        if name not in differing:
            continue
        # A voter serves the read-only endpoint too (as a backup), so every
        # member leaves it before it stops; its own drain then ends its
        # connections as their statements finish.
        step(f"drain {name} from the read-only endpoint", name)
        _haproxy(file, f"set server read_only/{name} state drain")
        step(f"update {name}", name)
        operate(name, observed[name])
        _haproxy(file, f"set server read_only/{name} state ready")
    if primary in differing:
        secondaries = [m["name"] for m in group["members"] if m["role"] == "voter" and m["name"] != primary]
        if secondaries:
            step("switchover")
            moved = switchover(file, secondaries[0], log=log)
            step("switchover done")
            step(f"update {primary} (the former primary)", primary)
        else:
            step(f"update {primary} (the primary; no secondary can take over)", primary)
        _haproxy(file, f"set server read_only/{primary} state drain")
        operate(primary, observed[primary])
        _haproxy(file, f"set server read_only/{primary} state ready")
    journal["state"] = "done"
    step("done")
    final = status(file)
    return {
        "switchover": moved,
        "operated": journal["operated"],
        "steps": journal["steps"],
        "status": final,
    }


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
