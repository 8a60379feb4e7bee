"""perf_analyzer beside the project's load tool: where it can run, its command line, its input data, its report.

perf_analyzer's binary needs glibc >= 2.38, so it never runs on the CPU machines this suite runs on: the command
builder is checked against the options perf_analyzer 2.60 documents, and the report parser against the CSV report
NVIDIA's documentation prints (perf_analyzer's docs/measurements_metrics.md, "Visualizing Latency vs. Throughput").
A real run happens only on the GPU machine (Ubuntu 24.04).
"""

from __future__ import annotations

import json
import stat

import pytest

from helpers.errors import ConfigError
from helpers.serving.perf_analyzer import (NEEDS_GLIBC, PerfConfig, glibc_version, parse_report, perf_analyzer_command,
                                           perf_sweep, run_case, why_not_perf_analyzer, write_input_data)

#: perf_analyzer's CSV report as its documentation shows it (inception_graphdef, --concurrency-range 1:4 -f perf.csv).
#: Rows come sorted by throughput, latencies in microseconds.
DOCUMENTED_REPORT = """\
Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,p99 latency
1,69.2,225,2148,64,206,11781,19,0,13891,18795,19753,21018
3,84.2,237,1768,21673,209,11742,17,0,35398,43984,47085,51701
4,84.2,279,1604,33669,233,11731,18,1,47045,56545,59225,64886
2,87.2,235,1973,9151,190,11346,17,0,21874,28557,29768,34766
"""

#: Options of perf_analyzer 2.60 (its docs/cli.md) that take a value, and those that take none.
VALUED = {"-m", "-u", "-i", "-b", "-f", "--concurrency-range", "--input-data", "--measurement-interval", "--max-trials",
          "--stability-percentage", "--percentile", "--warmup-request-count"}
FLAGS: set[str] = set()


def test_the_documented_report_parses_into_milliseconds_by_concurrency():
    rows = parse_report(DOCUMENTED_REPORT)
    assert [r["concurrency"] for r in rows] == [1, 2, 3, 4]
    first = rows[0]
    assert first["sentences_per_s"] == 69.2 and first["p50_ms"] == 13.891 and first["p99_ms"] == 21.018
    assert first["p90_ms"] == 18.795 and first["p95_ms"] == 19.753 and first["queue_ms"] == 0.064
    assert first["compute_ms"] == pytest.approx((206 + 11781 + 19) / 1000)
    assert rows[1]["sentences_per_s"] == 87.2 and rows[3]["p99_ms"] == 64.886


def test_a_report_without_latencies_or_rows_is_refused():
    with pytest.raises(ConfigError, match="no measurement"):
        parse_report("")
    with pytest.raises(ConfigError, match=r"lacks the columns \['Concurrency'"):
        parse_report("Request Rate,Inferences/Second,p50 latency,p99 latency\n100,99.5,1000,2000\n")


def _options(command: list[str]) -> dict[str, str]:
    """``{option: value}`` of a command line, refusing anything perf_analyzer 2.60 does not document."""
    options, args = {}, iter(command[1:])
    for arg in args:
        name, eq, value = arg.partition("=")
        if name in FLAGS and not eq:
            options[name] = ""
        elif name in VALUED:
            options[name] = value if eq else next(args)
        else:
            raise AssertionError(f"perf_analyzer has no option {arg!r}")
    return options


def test_the_command_measures_one_sentence_per_request_at_one_concurrency(tmp_path):
    command = perf_analyzer_command("/bin/perf_analyzer", model="sentiment", url="127.0.0.1:8001", protocol="grpc",
                                    concurrency=64, input_data=tmp_path / "in.json", report=tmp_path / "r.csv",
                                    config=PerfConfig(measurement_ms=2000, warmup_requests=100))
    options = _options(command)
    assert command[0] == "/bin/perf_analyzer"
    assert options["-m"] == "sentiment" and options["-u"] == "127.0.0.1:8001" and options["-i"] == "grpc"
    assert options["-b"] == "1" and options["--concurrency-range"] == "64:64"
    assert options["--input-data"] == str(tmp_path / "in.json") and options["-f"] == str(tmp_path / "r.csv")
    assert options["--measurement-interval"] == "2000" and options["--max-trials"] == "10"
    assert options["--warmup-request-count"] == "100"
    with pytest.raises(ConfigError, match="protocol"):
        perf_analyzer_command("pa", model="m", url="u", protocol="tcp", concurrency=1, input_data="i", report="r")
    with pytest.raises(ConfigError, match="concurrency"):
        perf_analyzer_command("pa", model="m", url="u", protocol="http", concurrency=0, input_data="i", report="r")
    with pytest.raises(ConfigError, match="max_trials"):
        PerfConfig(max_trials=1)


def test_input_data_holds_one_real_sentence_per_request(tmp_path):
    path = write_input_data(["这家店的服务很好", "   ", "质量太差了"], tmp_path / "data.json")
    assert json.loads(path.read_text(encoding="utf-8")) == {"data": [{"TEXT": ["这家店的服务很好"]},
                                                                     {"TEXT": ["质量太差了"]}]}
    with pytest.raises(ConfigError, match="no sentences"):
        write_input_data([" "], tmp_path / "none.json")


def test_why_it_cannot_run_is_one_sentence(tmp_path):
    old = why_not_perf_analyzer(binary=tmp_path / "perf_analyzer", glibc=(2, 36))
    assert old.startswith("perf_analyzer is skipped: its binary needs glibc >= 2.38 and this machine has glibc 2.36")
    assert "project's load tool measures alone" in old and old.count(". ") == 0
    absent = why_not_perf_analyzer(binary=None, glibc=(2, 39))
    if absent is not None:  # perf_analyzer may be installed on a new enough machine
        assert "not installed" in absent
    binary = tmp_path / "perf_analyzer"
    binary.write_text("#!/bin/sh\n")
    assert "not executable" in why_not_perf_analyzer(binary=binary, glibc=NEEDS_GLIBC)
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    assert why_not_perf_analyzer(binary=binary, glibc=NEEDS_GLIBC) is None


def test_this_machine_is_judged_by_its_own_glibc():
    glibc = glibc_version()
    reason = why_not_perf_analyzer()
    if glibc is not None and glibc < NEEDS_GLIBC:
        assert reason is not None and f"glibc {glibc[0]}.{glibc[1]}" in reason


def _stand_in(tmp_path, body: str):
    """An executable that stands where perf_analyzer would, run by run_case exactly as perf_analyzer would be."""
    script = tmp_path / "perf_analyzer"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return script


def test_a_case_reads_its_report_and_a_failed_case_says_why(tmp_path):
    report = tmp_path / "documented.csv"
    report.write_text(DOCUMENTED_REPORT, encoding="utf-8")
    # writes the documented report where -f says (the last argument), as perf_analyzer does
    ok = _stand_in(tmp_path, f'for a; do last="$a"; done; cp {report} "$last"\n')
    data = write_input_data(["好"], tmp_path / "in.json")
    record = run_case(ok, model="sentiment", url="h:1", protocol="http", concurrency=2, input_data=data,
                      workdir=tmp_path)
    assert record["tool"] == "perf_analyzer" and record["concurrency"] == 2 and record["sentences_per_s"] == 87.2
    assert record["p99_ms"] == 34.766 and "error" not in record and "-i http" in record["command"]
    assert record["command"].startswith("perf_analyzer -m sentiment") and str(tmp_path) not in record["command"]
    failing = _stand_in(tmp_path, 'echo "error: failed to get model metadata: unknown model" >&2; exit 99\n')
    failed = run_case(failing, model="nope", url="h:1", protocol="grpc", concurrency=1, input_data=data,
                      workdir=tmp_path)
    assert failed["error"].startswith("exit status 99") and "unknown model" in failed["error"]


def test_a_sweep_where_perf_analyzer_cannot_run_records_why(tmp_path, monkeypatch):
    import helpers.serving.perf_analyzer as pa

    monkeypatch.setattr(pa, "glibc_version", lambda: (2, 36))
    out = perf_sweep({"grpc": "h:1"}, ["好"], models=[("batching", "sentiment")], concurrencies=[1],
                     workdir=tmp_path, progress=False)
    assert out["ran"] is False and out["cases"] == [] and "glibc 2.36" in out["skipped"]
    assert not (tmp_path / "perf_input_data.json").exists()
