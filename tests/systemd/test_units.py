"""The systemd units and deploy snippets, checked with systemd's own tools but no systemd as PID 1.

Units are installed into a scratch root (a copy of the distribution's unit directory, so that
targets such as sysinit.target resolve, plus a stub at the ExecStart path) and checked there with
`systemd-analyze verify`/`security --offline`; `systemd-sysusers`/`systemd-tmpfiles --root` apply
the deploy snippets to another scratch root.
"""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from wesctl.config import FIELDS, Settings, load_settings
from wesctl.errors import ConfigError
from wesctl.systemd import DEFAULT_WESCTL_PATH, install_units, render_units

if shutil.which("systemd-analyze") is None:
    pytest.skip("systemd-analyze is not installed", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "systemd"
DEPLOY = REPO / "deploy"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")
SERVICES = ("wesctl-submit-queued.service", "wesctl-sync-status.service", "wesctl-notify.service")
TIMERS = ("wesctl-submit-queued.timer", "wesctl-sync-status.timer")
UNITS = (*SERVICES, *TIMERS, "wesctl-notify.socket")
UNIX_EXAMPLE = "wesctl-notify.socket.d/50-unix.conf.example"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def make_settings(tmp: Path, **environ: str) -> Settings:
    """Settings from `environ` only: no real environment, no .env in the working directory."""
    empty = tmp / "empty.env"
    empty.write_text("")
    return load_settings(environ=environ, env_file=empty, export_sdk=False)


def build_root(root: Path, units: dict[str, str], wesctl_path: str = DEFAULT_WESCTL_PATH) -> Path:
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    install_units(units, root)
    stub = root / wesctl_path.lstrip("/")
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    return root


def verify(root: Path, unit: str) -> None:
    """Fail on any message: without --recursive-errors a misspelt key only warns, with exit 0."""
    path = root / "etc/systemd/system" / unit  # a path, not a name: only then it prints why
    result = run("systemd-analyze", "verify", "--recursive-errors=yes", f"--root={root}", str(path))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def directives(text: str) -> list[tuple[str, str, str]]:
    """Return (section, key, value) for every assignment in a unit file, in order."""
    section, found = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(text: str, key: str) -> list[str]:
    return [value for _, k, value in directives(text) if k == key]


def timespans_us(spans: list[str]) -> list[int]:
    """Parse with systemd's own parser; return microseconds."""
    result = run("systemd-analyze", "timespan", *spans)
    assert result.returncode == 0, result.stderr
    parsed = [int(n) for n in re.findall(r"μs: (\d+)", result.stdout)]
    assert len(parsed) == len(spans)
    return parsed


@pytest.fixture(scope="module")
def default_units(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return render_units(make_settings(tmp_path_factory.mktemp("settings")))


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, default_units: dict[str, str]) -> Path:
    return build_root(tmp_path_factory.mktemp("root"), default_units)


def test_shipped_units_are_the_rendering_of_the_default_settings(
    default_units: dict[str, str],
) -> None:
    shipped = {
        path.relative_to(SHIPPED).as_posix(): path.read_text(encoding="utf-8")
        for path in SHIPPED.rglob("*")
        if path.is_file()
    }
    assert shipped == default_units


@pytest.mark.parametrize("unit", UNITS)
def test_unit_verifies_cleanly(root: Path, unit: str) -> None:
    verify(root, unit)


@pytest.mark.parametrize("service", SERVICES)
def test_service_exposure_is_at_most_2(root: Path, service: str) -> None:
    result = run(
        "systemd-analyze", "security", "--offline=true", f"--root={root}", "--threshold=20", service
    )
    match = re.search(
        rf"Overall exposure level for {re.escape(service)}: (\d+\.\d+)", result.stdout
    )
    assert match, result.stdout + result.stderr
    assert float(match[1]) <= 2.0
    assert result.returncode == 0, result.stderr


def test_every_time_span_parses_and_intervals_come_from_settings(
    default_units: dict[str, str],
) -> None:
    spans = {
        (name, key): value
        for name, text in default_units.items()
        for _, key, value in directives(text)
        if key.endswith("Sec")
    }
    parsed = dict(zip(spans, timespans_us(list(spans.values())), strict=True))
    assert parsed[("wesctl-submit-queued.timer", "OnUnitInactiveSec")] == 300_000_000
    assert parsed[("wesctl-sync-status.timer", "OnUnitInactiveSec")] == 300_000_000
    assert parsed[("wesctl-submit-queued.timer", "OnBootSec")] == 120_000_000


def test_timers_with_on_unit_sec_also_have_on_boot_sec(default_units: dict[str, str]) -> None:
    for name in TIMERS:
        keys = {key for _, key, _ in directives(default_units[name])}
        assert {"OnUnitInactiveSec", "OnBootSec", "AccuracySec", "RandomizedDelaySec"} <= keys
    for text in default_units.values():
        keys = {key for _, key, _ in directives(text)}
        if keys & {"OnUnitActiveSec", "OnUnitInactiveSec"}:
            assert "OnBootSec" in keys


def test_oneshot_services_bound_their_run_time(default_units: dict[str, str]) -> None:
    oneshots = [name for name, text in default_units.items() if values(text, "Type") == ["oneshot"]]
    assert sorted(oneshots) == ["wesctl-submit-queued.service", "wesctl-sync-status.service"]
    for name in oneshots:
        (timeout,) = values(default_units[name], "TimeoutStartSec")
        assert 0 < timespans_us([timeout])[0] < 3600 * 10**6
        assert values(default_units[name], "SuccessExitStatus") == ["75"]


def test_notify_service_is_socket_activated_without_accept(default_units: dict[str, str]) -> None:
    socket = default_units["wesctl-notify.socket"]
    assert values(socket, "Accept") == ["no"]
    assert values(socket, "ListenStream") == ["127.0.0.1:5001"]
    assert values(socket, "FileDescriptorName") == ["notify"]
    assert values(socket, "Backlog") == []
    assert all(values(text, "Accept") in ([], ["no"]) for text in default_units.values())
    service = default_units["wesctl-notify.service"]
    assert values(service, "Requires") == ["wesctl-notify.socket"]
    assert values(service, "RestartPreventExitStatus") == ["78"]
    assert values(service, "ExecStart") == [f"{DEFAULT_WESCTL_PATH} serve-notify --idle-exit 60"]


def test_no_secrets_in_environment(default_units: dict[str, str]) -> None:
    secret_names = {f.env for f in FIELDS if f.secret}
    for text in default_units.values():
        assert values(text, "SetCredential") == []
        for assignments in values(text, "Environment"):
            for name in (a.partition("=")[0] for a in assignments.split()):
                assert name not in secret_names
                assert not re.search(r"TOKEN|SECRET|PASSWORD|KEY|URI", name), name


def test_every_credential_is_loaded_by_bare_name(default_units: dict[str, str]) -> None:
    """A bare name is searched in /etc/credstore etc. and skipped if missing; a path must exist."""
    loaded = set()
    for service in SERVICES:
        names = values(default_units[service], "LoadCredential")
        assert "database-uri" in names
        assert all(":" not in name and "/" not in name for name in names)
        loaded.update(names)
    assert loaded == {f.credential for f in FIELDS if f.credential}


def test_exec_start_percent_signs_are_escaped(tmp_path: Path) -> None:
    wesctl = "/opt/we%sctl/bin/wesctl"  # unescaped, %s would expand to the user's shell
    units = render_units(make_settings(tmp_path), wesctl_path=wesctl)
    for text in units.values():
        for command in values(text, "ExecStart"):
            assert "%" not in command.replace("%%", "")
    root = build_root(tmp_path / "root", units, wesctl_path=wesctl)
    verify(root, "wesctl-notify.service")


def test_rendering_follows_non_default_settings(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        DAEMON_POLL_INTERVAL="90",
        DAEMON_STATUS_CHECK_INTERVAL="2m",
        DAEMON_NOTIFICATION_HOST="::1",
        DAEMON_NOTIFICATION_PORT="6001",
        WESCTL_NOTIFY_IDLE_EXIT="30",
        WESCTL_METRICS_DIR="/srv/metrics",
    )
    units = render_units(settings, wesctl_path="/usr/local/bin/wesctl", env_file="/srv/wesctl.env")
    assert values(units["wesctl-submit-queued.timer"], "OnUnitInactiveSec") == ["90s"]
    assert values(units["wesctl-submit-queued.timer"], "RandomizedDelaySec") == ["9s"]
    assert values(units["wesctl-sync-status.timer"], "OnUnitInactiveSec") == ["120s"]
    assert values(units["wesctl-notify.socket"], "ListenStream") == ["[::1]:6001"]
    assert values(units["wesctl-notify.service"], "ExecStart") == [
        "/usr/local/bin/wesctl serve-notify --idle-exit 30"
    ]
    assert values(units["wesctl-sync-status.service"], "EnvironmentFile") == ["-/srv/wesctl.env"]
    hardening = units["wesctl-.service.d/50-hardening.conf"]
    assert values(hardening, "ReadWritePaths") == ["-/srv/metrics"]
    root = build_root(tmp_path / "root", units, wesctl_path="/usr/local/bin/wesctl")
    for unit in UNITS:
        verify(root, unit)


@pytest.mark.parametrize(
    ("environ", "kwargs"),
    [
        ({"DAEMON_NOTIFICATION_HOST": "api.example.org"}, {}),
        ({"WESCTL_METRICS_DIR": "metrics"}, {}),
        ({}, {"wesctl_path": "wesctl"}),
        ({}, {"env_file": "/etc/wes ctl/wesctl.env"}),
    ],
)
def test_unrenderable_settings_are_config_errors(
    tmp_path: Path, environ: dict[str, str], kwargs: dict[str, str]
) -> None:
    with pytest.raises(ConfigError):
        render_units(make_settings(tmp_path, **environ), **kwargs)


def test_localhost_listens_on_the_ipv4_loopback(tmp_path: Path) -> None:
    units = render_units(make_settings(tmp_path, DAEMON_NOTIFICATION_HOST="localhost"))
    assert values(units["wesctl-notify.socket"], "ListenStream") == ["127.0.0.1:5001"]


def test_install_units_writes_under_the_prefix(
    tmp_path: Path, default_units: dict[str, str]
) -> None:
    (tmp_path / "etc/systemd/system/wesctl-notify.socket").parent.mkdir(parents=True)
    (tmp_path / "etc/systemd/system/wesctl-notify.socket").write_text("stale")
    written = install_units(default_units, tmp_path)
    unit_dir = tmp_path / "etc/systemd/system"
    assert written == [unit_dir / name for name in default_units]
    for path, text in zip(written, default_units.values(), strict=True):
        assert path.read_text(encoding="utf-8") == text
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in unit_dir.rglob("*") if p.is_file()) == sorted(
        Path(name).name for name in default_units
    )


def test_unix_socket_variant_verifies(tmp_path: Path, default_units: dict[str, str]) -> None:
    units = {name: text for name, text in default_units.items() if name != UNIX_EXAMPLE}
    units[UNIX_EXAMPLE.removesuffix(".example")] = default_units[UNIX_EXAMPLE]
    root = build_root(tmp_path, units)
    verify(root, "wesctl-notify.socket")
    verify(root, "wesctl-notify.service")
    assert values(default_units[UNIX_EXAMPLE], "ListenStream") == ["", "/run/wesctl/notify.sock"]
    assert values(default_units[UNIX_EXAMPLE], "SocketMode") == ["0660"]


def _ids(path: Path) -> dict[str, int]:
    return {line.split(":")[0]: int(line.split(":")[2]) for line in path.read_text().splitlines()}


def test_sysusers_then_tmpfiles_create_the_directories(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    users = run("systemd-sysusers", f"--root={tmp_path}", str(DEPLOY / "sysusers.d/wesctl.conf"))
    assert users.returncode == 0, users.stderr
    assert all(line.startswith("Creating ") for line in users.stderr.splitlines()), users.stderr
    uid, gid = _ids(tmp_path / "etc/passwd"), _ids(tmp_path / "etc/group")
    assert {"wesctl", "wesctl-notify"} <= gid.keys()

    files = run(
        "systemd-tmpfiles", f"--root={tmp_path}", "--create", str(DEPLOY / "tmpfiles.d/wesctl.conf")
    )
    assert (files.returncode, files.stdout + files.stderr) == (0, "")
    expected = {
        "etc/wesctl": (0o750, 0, gid["wesctl"]),
        "run/wesctl": (0o755, uid["wesctl"], gid["wesctl"]),
        "var/lib/node_exporter/textfile_collector": (0o775, 0, gid["wesctl"]),
    }
    for path, (mode, owner, group) in expected.items():
        info = (tmp_path / path).stat()
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (mode, owner, group), path


def test_sysusers_adds_the_api_user_to_the_notify_group(tmp_path: Path) -> None:
    """The documented step for the unix socket: uncomment the `m` line."""
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "wesctl.conf"
    text = (DEPLOY / "sysusers.d/wesctl.conf").read_text()
    assert "#m www-data wesctl-notify" in text
    conf.write_text(text.replace("#m www-data", "m www-data"))
    assert run("systemd-sysusers", f"--root={tmp_path}", str(conf)).returncode == 0
    groups = (tmp_path / "etc/group").read_text().splitlines()
    assert any(g.startswith("wesctl-notify:") and g.endswith(":www-data") for g in groups)


def test_env_file_example_loads_as_shipped_and_with_every_setting_enabled(tmp_path: Path) -> None:
    example = DEPLOY / "wesctl.env.example"
    shipped = load_settings(environ={}, env_file=example, export_sdk=False)
    assert shipped.providers == ("sevenbridges",)
    enabled = tmp_path / "wesctl.env"
    enabled.write_text(re.sub(r"(?m)^#([A-Z][A-Z0-9_]*=)", r"\1", example.read_text()))
    settings = load_settings(environ={}, env_file=enabled, export_sdk=False)
    assert settings.sources["poll_interval"] == f"env file {enabled}"
    assert render_units(settings) == render_units(shipped)  # the commented values are the defaults
