"""Pure status functions: JSON records, table, checks, Prometheus exposition."""

from __future__ import annotations

import json
import re

import pytest

from containerfs.status.check import CRITICAL, OK, WARNING, Thresholds, evaluate, render_check, render_unknown
from containerfs.status.model import (
    SCHEMA,
    Container,
    Cpu,
    Daemon,
    Latency,
    Load,
    Memory,
    Oom,
    Pids,
    Reads,
    SamplerCost,
    Status,
    Swap,
    Views,
    status_from_json,
    to_json,
)
from containerfs.status.prometheus import render_down, render_prometheus
from containerfs.status.render import human_bytes, human_duration, human_latency, render_table, select

MiB = 1024 * 1024
DAEMON = Daemon(
    pid=4242,
    version="0.1.0",
    mountpoint="/var/lib/containerfs",
    uptime_seconds=7384.0,
    cgroup_layout="v1",
    libfuse="3.14.0",
    reads=Reads(1000, 20, 3),
    errors=0,
    last_error_age_seconds=None,
    latency=Latency(1003, 0.2, 150e-6, 1.2e-3),
    sampler=SamplerCost(2, 100, 0.05, 0.0004),
)


def container(name: str = "web", **changes: object) -> Container:
    row = Container(
        name=name,
        kind="runc",
        id=name,
        short_id=name,
        init_pid=100,
        cgroup=f"/cfstest/{name}",
        memory=Memory(usage=200 * MiB, working_set=150 * MiB, limit=256 * MiB),
        swap=Swap(0, 0),
        cpu=Cpu(visible=1, quota=0.5, usage_seconds=12.5),
        load=Load(0.5, 0.25, 0.1),
        uptime_seconds=3725.0,
        pids=Pids(current=5, limit=100),
        oom=Oom(kills=0, last_kill_age_seconds=None),
        views=Views(live=8, stale=0, total=8),
    )
    return row._replace(**changes)  # type: ignore[arg-type]


def status(*rows: Container, **daemon_changes: object) -> Status:
    return Status(SCHEMA, DAEMON._replace(**daemon_changes), list(rows), 0.002)  # type: ignore[arg-type]


# -- records -----------------------------------------------------------------------------


def test_json_round_trip() -> None:
    original = status(container("a"), container("b", memory=None, load=None, views=None, swap=None))
    text = json.dumps(to_json(original))
    assert status_from_json(json.loads(text)) == original


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: d.update(schema=99), "schema 99"),
        (lambda d: d["daemon"].pop("reads"), "Daemon: no 'reads'"),
        (lambda d: d.update(containers=None), "no container list"),
        (lambda d: d["containers"][0].update(memory=[1, 2]), "Memory: expected an object"),
    ],
)
def test_malformed_answers_are_reported(mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    data = to_json(status(container()))
    mangle(data)
    with pytest.raises(ValueError, match=re.escape(message)):
        status_from_json(data)


# -- human units -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (1023, "1023"), (1024, "1.0K"), (1536, "1.5K"), (10240, "10K"), (512 * MiB, "512M"), (3 << 30, "3.0G")],
)
def test_human_bytes(value: int, text: str) -> None:
    assert human_bytes(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (3725, "1h02m"), (86400 * 2 + 3 * 3600, "2d03h")]
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(None, "-"), (150e-6, "150us"), (1.25e-3, "1.2ms"), (2.5, "2.50s")])
def test_human_latency(seconds: float | None, text: str) -> None:
    assert human_latency(seconds) == text


# -- table -------------------------------------------------------------------------------


def test_table_names_every_container_with_its_figures() -> None:
    text = render_table(status(container("web"), container("db", memory=None, pids=Pids(3, None), views=None)))
    lines = text.splitlines()
    assert "pid 4242" in lines[0] and "cgroup v1" in lines[0] and "libfuse 3.14.0" in lines[0]
    assert "reads 1023 (containers 1000, host 20, fallbacks to the host's file 3); errors 0" in text
    assert "p50 150us, p99 1.2ms" in text
    header = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    web, db = lines[header + 1].split(), lines[header + 2].split()
    assert web[:8] == ["web", "runc", "200M/256M", "59%", "0/0", "1", "0.50", "12s"]
    assert web[8:] == ["0.50", "0.25", "0.10", "5/100", "0", "1h02m", "8/8", "/cfstest/web"]
    assert db[:4] == ["db", "runc", "?", "?"] and "3/-" in db and "?" in db[-2:]


def test_table_without_containers() -> None:
    assert render_table(status()).endswith("\nno containers\n")


@pytest.mark.parametrize(
    ("views", "cell"),
    [(Views(8, 0, 8), "8/8"), (Views(0, 0, 8), "-"), (Views(2, 6, 8), "2/8 +6 stale"), (None, "?")],
)
def test_views_cell(views: Views | None, cell: str) -> None:
    line = render_table(status(container(views=views))).splitlines()[-1]
    assert re.search(rf"  {re.escape(cell)} +/cfstest/web$", line), line


@pytest.mark.parametrize(
    ("pattern", "names"),
    [("*", ["web", "db"]), ("web", ["web"]), ("/cfstest/d*", ["db"]), ("nothing", [])],
)
def test_select(pattern: str, names: list[str]) -> None:
    assert [row.name for row in select(status(container("web"), container("db")), pattern).containers] == names


# -- checks ------------------------------------------------------------------------------

LIMIT = 100 * MiB


@pytest.mark.parametrize(
    ("row", "daemon", "code", "texts"),
    [
        (container(), {}, OK, []),
        (container(memory=Memory(95 * MiB, 79 * MiB, LIMIT)), {}, OK, []),  # cache does not count
        (container(memory=Memory(80 * MiB, 80 * MiB, LIMIT)), {}, WARNING, ["web: memory 80% of its 100M limit"]),
        (container(memory=Memory(99 * MiB, 96 * MiB, LIMIT)), {}, CRITICAL, ["web: memory 96% of its 100M limit"]),
        (container(memory=Memory(99 * MiB, 99 * MiB, None)), {}, OK, []),  # no limit, no alert
        (container(pids=Pids(85, 100)), {}, WARNING, ["web: 85 of 100 pids (85%)"]),
        (container(pids=Pids(95, 100)), {}, CRITICAL, ["web: 95 of 100 pids (95%)"]),
        (container(pids=Pids(5000, None)), {}, OK, []),
        (container(oom=Oom(2, 60.0)), {}, CRITICAL, ["web: OOM kill 1m00s ago (2 in total)"]),
        (container(oom=Oom(2, 901.0)), {}, OK, []),  # outside the window
        (container(oom=Oom(2, None)), {}, OK, []),  # never seen rising
        (container(), {"errors": 3, "last_error_age_seconds": 10.0}, WARNING, ["daemon: 3 errors, the last 10s ago"]),
        (container(), {"errors": 3, "last_error_age_seconds": 1000.0}, OK, []),
        (
            container(pids=Pids(85, 100), oom=Oom(1, 5.0)),
            {},
            CRITICAL,
            ["web: OOM kill 5s ago (1 in total)", "web: 85 of 100 pids (85%)"],  # worst first
        ),
    ],
)
def test_evaluate(row: Container, daemon: dict[str, object], code: int, texts: list[str]) -> None:
    result = evaluate(status(row, **daemon), Thresholds())
    assert result.code == code
    assert [p.text.split(" (see")[0] for p in result.problems] == texts


def test_custom_thresholds() -> None:
    row = container(memory=Memory(60 * MiB, 60 * MiB, LIMIT))
    assert evaluate(status(row), Thresholds(memory_warning=50, memory_critical=90)).code == WARNING
    assert evaluate(status(row), Thresholds(memory_warning=50, memory_critical=55)).code == CRITICAL


def test_check_output_is_a_plugin_output() -> None:
    ok = status(container())
    assert render_check(ok, evaluate(ok, Thresholds())) == (
        "CONTAINERFS OK - 1 containers, daemon pid 4242 up 2h03m | containers=1 errors=0c fallbacks=3c\n"
    )
    bad = status(container(pids=Pids(99, 100)))
    lines = render_check(bad, evaluate(bad, Thresholds())).splitlines()
    assert lines[0].startswith("CONTAINERFS CRITICAL - web: 99 of 100 pids (99%) | containers=1")
    assert lines[1:] == ["CRITICAL: web: 99 of 100 pids (99%)"]
    assert render_unknown("no daemon serves /x") == "CONTAINERFS UNKNOWN - no daemon serves /x\n"


# -- prometheus --------------------------------------------------------------------------

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (NaN|[-+0-9.e]+)$')


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_0-9]+ .+$", line), line
            continue
        assert SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def test_prometheus_exposition() -> None:
    text = render_prometheus(status(container("web"), container('we"ird\\', memory=Memory(1, 1, None), load=None)))
    values = samples(text)
    labels = '{name="web",kind="runc",id="web",cgroup="/cfstest/web"}'
    assert values['containerfs_up{mountpoint="/var/lib/containerfs"}'] == 1
    assert values["containerfs_container_memory_limit_bytes" + labels] == 256 * MiB
    assert values["containerfs_container_memory_working_set_bytes" + labels] == 150 * MiB
    assert values["containerfs_container_pids_limit" + labels] == 100
    assert values["containerfs_container_oom_kills_total" + labels] == 0
    assert values["containerfs_container_cpu_quota" + labels] == 0.5
    assert (
        values[
            'containerfs_container_views_mounted{name="web",kind="runc",id="web",cgroup="/cfstest/web",state="live"}'
        ]
        == 8
    )
    assert values['containerfs_reads_total{result="fallback"}'] == 3
    assert values['containerfs_read_duration_seconds{quantile="0.99"}'] == pytest.approx(1.2e-3)
    assert values["containerfs_containers"] == 2
    weird = '{name="we\\"ird\\\\",kind="runc",id="we\\"ird\\\\",cgroup="/cfstest/we\\"ird\\\\"}'
    assert "containerfs_container_memory_usage_bytes" + weird in values
    assert "containerfs_container_memory_limit_bytes" + weird not in values  # no limit: no sample
    assert "containerfs_container_load1" + weird not in values
    # one HELP and TYPE per family
    assert text.count("# TYPE containerfs_container_memory_usage_bytes gauge") == 1
    assert text.count("# TYPE containerfs_read_duration_seconds summary") == 1


def test_prometheus_without_latency_samples_and_down() -> None:
    values = samples(render_prometheus(status(latency=Latency(0, 0.0, None, None))))
    assert str(values['containerfs_read_duration_seconds{quantile="0.5"}']) == "nan"
    assert samples(render_down("/x")) == {'containerfs_up{mountpoint="/x"}': 0}
