"""Serving, side by side: one model behind ``mlflow models serve`` and ``flowscope serve``.

Run from the repository root (either form)::

    .venv/bin/python bench/serving.py
    .venv/bin/python -m bench.serving --seconds 10 --soak 60 --json figures.json

A random forest of 100 trees trained on breast_cancer is registered in a fresh SQLite
store and served three ways, each a subprocess with one worker on loopback: MLflow's
scoring server (``--env-manager local``), flowscope with its inference monitor on, and
flowscope with it off. The same closed-loop client posts the same ``/invocations``
payload (``dataframe_split``, 1 or 100 rows) at each concurrency; per cell, MLflow runs
once, then the two flowscope servers in ``--rounds`` alternating rounds, so that a change in
the machine's load falls on monitoring on and off alike: monitoring's cost is the median of
the rounds' back-to-back differences, beside the CPU that the monitor thread and the helper
process spent, which the kernel counts exactly.
A fourth server, ``flowscope serve --auth`` (monitor off), is loaded in the same rounds with
a read token of a user with READ on the model (users and token made in an auth database of
its own with MLflow's store and flowscope's): auth's cost is the median over the rounds of
its throughput against the unmonitored server's, measured back to back (target: at most 5%).
Then flowscope (monitoring on) is soaked while its memory is sampled, stopped gracefully,
and its inference runs are checked to hold every prediction it made.
"""

from __future__ import annotations

import os
import sys

# Run as ``python bench/serving.py``, this file's folder is sys.path[0], where the logging
# benchmark would shadow the standard ``logging`` module; tests.servers (the server
# process helper) and bench._load are imported from the repository root.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from mlflow import MlflowClient
from rich.console import Console
from rich.table import Table
from tests.servers import FlowscopeServer, ServerProcess

from bench._load import Cell, post_request, rss_mb, run_load
from flowscope.config import Settings, load_settings
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train

MODEL = "bench-cancer"
TASK = "bench-serving"
TARGET_RPS_AT_32 = 10.0  # flowscope's requests/s over MLflow's at concurrency 32, at least
TARGET_P50_AT_1 = 0.5  # flowscope's median latency over MLflow's at concurrency 1, at most
TARGET_MONITORING_COST = 0.05  # throughput lost to monitoring, at most
TARGET_AUTH_COST = 0.05  # throughput lost to auth (a read token), at most
AUTHED = "flowscope-unmonitored-auth"  # the unmonitored server's twin with --auth
BIN = Path(sys.executable).parent


class MlflowModelServer(ServerProcess):
    """``mlflow models serve`` of the registered model, in the current environment."""

    name = "mlflow-models-serve"
    health_path = "/ping"

    def __init__(self, root: Path, tracking_uri: str) -> None:
        super().__init__(root)
        self.tracking_uri = tracking_uri

    def command(self) -> list[str]:
        return [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}/1",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-w",
            "1",
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # it starts `uvicorn`
        return env


def flowscope_server(
    root: Path, tracking_uri: str, monitor: bool, auth_database: str | None = None
) -> FlowscopeServer:
    """``flowscope serve MODEL@champion``, its monitor on or off; with ``--auth`` on the
    users of ``auth_database`` when it is given."""
    settings = {
        "monitor": str(monitor).lower(),
        "artifacts_dir": str(root.parent / "mlartifacts"),
        "autolog": "false",
    }
    if auth_database is not None:
        settings.update(auth_database_uri=auth_database, default_permission="NO_PERMISSIONS")
    return FlowscopeServer(
        root,
        tracking_uri,
        ["serve", f"{MODEL}@champion", *(["--auth"] if auth_database else [])],
        health_path="/health",
        settings=settings,
        name=f"flowscope-serve-monitor-{'on' if monitor else 'off'}"
        + ("-auth" if auth_database else ""),
    )


def auth_users(root: Path) -> tuple[str, str]:
    """An auth database with a user granted READ on the model, and a read token of theirs
    (what ``flowscope server --auth`` and its tokens page would make)."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    from flowscope.auth import TokenStore

    uri = f"sqlite:///{root / 'auth.db'}"
    users = SqlAlchemyStore()
    users.init_db(uri)
    users.create_user("scorer", "scorer-passphrase-1")
    users.create_registered_model_permission(MODEL, "scorer", "READ")
    token = TokenStore(users.engine).create("scorer", "bench", "read").token
    users.engine.dispose()
    return uri, f"Bearer {token}"


def prepare(root: Path) -> tuple[Settings, dict[int, bytes]]:
    """The store with the registered model, and the payload of each row count."""
    settings = load_settings(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifacts_dir=root / "mlartifacts",
        journal_dir=root / "journal",
        autolog=False,
        sync_on_start=False,
    )
    frame, target = load_builtin("breast_cancer")
    result = train(
        frame,
        target,
        "random_forest",
        {"n_estimators": 100},
        task=TASK,
        register=MODEL,
        settings=settings,
    )
    MlflowClient(settings.tracking_uri).set_registered_model_alias(MODEL, "champion", "1")
    features = frame.drop(columns=[target]).sample(100, random_state=0)
    payloads = {
        rows: json.dumps(
            {
                "dataframe_split": {
                    "columns": list(features.columns),
                    "data": features.head(rows).values.tolist(),
                }
            }
        ).encode()
        for rows in (1, 100)
    }
    assert result.registered_version == "1"
    return settings, payloads


def same_answers(
    servers: dict[str, ServerProcess], payload: bytes, authorization: dict[str, str]
) -> bool:
    answers = [
        httpx.post(
            f"{server.url}/invocations",
            content=payload,
            timeout=60,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": authorization[label]} if label in authorization else {}),
            },
        ).json()
        for label, server in servers.items()
    ]
    return all(answer == answers[0] for answer in answers)


def monitor_ready(server: FlowscopeServer, timeout: float = 180.0) -> None:
    """Wait until the server's monitor says its helper process is warmed up, so that the
    helper's start (imports, opening the store) is not measured as monitoring's cost."""
    deadline = time.monotonic() + timeout
    while "flowscope_monitor_helper_ready 1" not in httpx.get(f"{server.url}/metrics").text:
        if time.monotonic() > deadline:
            raise RuntimeError("the monitor's helper process did not start")
        time.sleep(0.2)


def monitor_cpu(server: ServerProcess) -> float:
    """CPU seconds the server's monitor thread has spent (0 for a server without one)."""
    if not isinstance(server, FlowscopeServer):  # MLflow's scoring server has no /metrics
        return 0.0
    for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
        if line.startswith("flowscope_monitor_cpu_seconds "):
            return float(line.split()[1])
    return 0.0


def soak(server: FlowscopeServer, payload: bytes, seconds: float) -> dict[str, Any]:
    """Load at concurrency 8 for ``seconds`` while sampling the server's memory."""
    assert server.process is not None
    pid = server.process.pid
    samples: list[float] = [rss_mb(pid)]
    result: dict[str, Cell] = {}
    worker = threading.Thread(
        target=lambda: result.update(
            cell=run_load(
                server.port,
                post_request(server.port, "/invocations", payload),
                concurrency=8,
                seconds=seconds,
                warmup=0,
                limit=10**9,
            )
        )
    )
    worker.start()
    while worker.is_alive():
        worker.join(1.0)
        samples.append(rss_mb(pid))
    cell = result["cell"]
    return {
        "seconds": seconds,
        "requests": cell.requests,
        "errors": cell.errors,
        "rps": cell.rps,
        "rss_start_mb": samples[0],
        "rss_max_mb": max(samples),
        "rss_end_mb": samples[-1],
        "rss_samples_mb": samples,
    }


def recorded_predictions(settings: Settings) -> tuple[int, int]:
    """Inference runs written for the model, and the predictions they hold."""
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(f"{TASK}-inference")
    if experiment is None:
        return 0, 0
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    return len(runs), int(sum(run.data.metrics.get("samples", 0) for run in runs))


def served_predictions(server: ServerProcess) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("flowscope_predictions_total{")
        )
    )


def render(cells: list[dict[str, Any]]) -> Table:
    table = Table(title="serving: /invocations, one worker each, loopback")
    for column in (
        "rows",
        "concurrency",
        "server",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/req",
        "children µs/req",
    ):
        table.add_column(column, justify="left" if column == "server" else "right")
    for cell in cells:
        table.add_row(
            str(cell["rows"]),
            str(cell["concurrency"]),
            cell["server"],
            f"{cell['requests']:,}",
            str(cell["errors"]),
            f"{cell['rps']:,.0f}",
            f"{cell['p50_ms']:.2f}",
            f"{cell['p99_ms']:.2f}",
            f"{cell['cpu_us']:.0f}",
            f"{cell['helper_cpu_us']:.0f}",
        )
    return table


def ratios(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (rows, concurrency): flowscope (monitor on) over MLflow, and monitoring's cost."""
    found = []
    keys = sorted({(c["rows"], c["concurrency"]) for c in cells})
    for rows, concurrency in keys:
        by = {c["server"]: c for c in cells if (c["rows"], c["concurrency"]) == (rows, concurrency)}
        mlflow, on, off = by["mlflow"], by["flowscope"], by["flowscope-unmonitored"]
        authed = by[AUTHED]
        found.append(
            {
                "rows": rows,
                "concurrency": concurrency,
                "rps_ratio": on["rps"] / mlflow["rps"],
                "p50_ratio": on["p50_ms"] / mlflow["p50_ms"],
                "p99_ratio": on["p99_ms"] / mlflow["p99_ms"],
                "monitoring_cost": statistics.median(on["paired_costs"]),
                "rounds": len(on["paired_costs"]),
                "pooled_monitoring_cost": 1 - on["rps"] / off["rps"],
                "server_cpu_cost": on["cpu_us"] / off["cpu_us"] - 1,
                "helper_cpu_share": on["helper_cpu_us"] / off["cpu_us"],
                "monitor_thread_share": on["monitor_cpu_us"] / on["cpu_us"],
                "auth_cost": statistics.median(authed["paired_auth_costs"]),
                "pooled_auth_cost": 1 - authed["rps"] / off["rps"],
                "auth_cpu_cost": authed["cpu_us"] / off["cpu_us"] - 1,
            }
        )
    return found


def render_ratios(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="flowscope (monitoring on) against mlflow models serve")
    columns = (
        "rows",
        "concurrency",
        "req/s ×",
        "p50 ×",
        "p99 ×",
        "monitoring cost",
        "server CPU",
        "helper CPU",
        "auth cost",
        "auth CPU",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["rows"]),
            str(row["concurrency"]),
            f"{row['rps_ratio']:.1f}",
            f"{row['p50_ratio']:.2f}",
            f"{row['p99_ratio']:.2f}",
            f"{row['monitoring_cost']:+.1%}",
            f"{row['server_cpu_cost']:+.1%}",
            f"{row['helper_cpu_share']:+.1%}",
            f"{row['auth_cost']:+.1%}",
            f"{row['auth_cpu_cost']:+.1%}",
        )
    return table


def verdicts(rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    found = []
    for row in rows:
        where = f"{row['rows']}-row payload, concurrency {row['concurrency']}"
        if row["concurrency"] == 32:
            found.append(
                (
                    f"{where}: req/s {row['rps_ratio']:.1f}× MLflow's (≥ "
                    f"{TARGET_RPS_AT_32:.0f}×) with lower p99 ({row['p99_ratio']:.2f}×)",
                    row["rps_ratio"] >= TARGET_RPS_AT_32 and row["p99_ratio"] < 1,
                )
            )
        if row["concurrency"] == 1:
            found.append(
                (
                    f"{where}: p50 {row['p50_ratio']:.2f}× MLflow's (≤ {TARGET_P50_AT_1})",
                    row["p50_ratio"] <= TARGET_P50_AT_1,
                )
            )
    costs = [row["monitoring_cost"] for row in rows]
    mean = statistics.fmean(costs)
    found.append(
        (
            f"monitoring costs {mean:+.1%} throughput on average over the cells, each "
            f"the median of its {rows[0]['rounds'] if rows else 0} paired rounds "
            f"(≤ {TARGET_MONITORING_COST:.0%}; per cell "
            f"{', '.join(f'{c:+.0%}' for c in costs)})",
            mean <= TARGET_MONITORING_COST,
        )
    )
    auth = [row["auth_cost"] for row in rows]
    auth_mean = statistics.fmean(auth)
    auth_cpu = ", ".join(f"{row['auth_cpu_cost']:+.0%}" for row in rows)
    found.append(
        (
            f"auth (a read token, monitor off on both) costs {auth_mean:+.1%} throughput on "
            f"average over the cells, each the median of its paired rounds "
            f"(≤ {TARGET_AUTH_COST:.0%}; per cell {', '.join(f'{c:+.0%}' for c in auth)}; "
            f"server CPU per request per cell {auth_cpu})",
            auth_mean <= TARGET_AUTH_COST,
        )
    )
    return found


def guard_cost(settings: Settings, auth_database: str, token: str, calls: int = 20_000) -> float:
    """Microseconds the service's auth guard adds to a request with a token it has already
    checked (the cached path every request but one per ``token_cache_seconds`` takes),
    timed in this process around a no-op app: unlike throughput on a loaded machine, a
    figure that does not swing from one run to the next."""
    import asyncio

    from flowscope.serving.guard import ServiceGuard, open_service_auth

    auth_settings = settings.model_copy(
        update={"auth": True, "auth_database_uri": auth_database, "secret_key": None}
    )
    services = open_service_auth(auth_settings)
    assert services is not None

    async def nothing(scope: Any, receive: Any, send: Any) -> None:
        return None

    guard = ServiceGuard(nothing, services, MODEL, settings.token_cache_seconds)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [(b"authorization", token.encode()), (b"content-type", b"application/json")],
    }

    async def timed(middleware: Any) -> float:
        await middleware(scope, None, None)  # the first call checks the token and the grant
        started = time.perf_counter()
        for _ in range(calls):
            await middleware(scope, None, None)
        return (time.perf_counter() - started) / calls * 1e6

    async def both() -> float:
        return await timed(guard) - await timed(nothing)

    return asyncio.run(both())


def cpu_summary(rows: list[dict[str, Any]]) -> str:
    """What monitoring costs in CPU, which the kernel counts exactly while throughput on a
    small shared machine swings by several percent from one round to the next: the
    monitor thread's share of the serving process's CPU (packing, handing windows over;
    the request path itself only appends), and the helper process's CPU beside it."""
    thread = statistics.fmean(row["monitor_thread_share"] for row in rows)
    helper = statistics.fmean(row["helper_cpu_share"] for row in rows)
    per_cell = ", ".join(
        f"{row['rows']}×{row['concurrency']}: {row['monitor_thread_share']:.1%}"
        f"/{row['helper_cpu_share']:.1%}"
        for row in rows
    )
    return (
        f"monitoring's CPU: its thread in the serving process {thread:.1%} of that "
        f"process's CPU on average; the helper process {helper:.1%} of it more, on another "
        f"core (rows×concurrency: thread/helper {per_cell})"
    )


def measure_cell(
    servers: dict[str, Any],
    payload: bytes,
    concurrency: int,
    args: argparse.Namespace,
    console: Console,
    authorization: dict[str, str],
) -> tuple[list[tuple[str, Cell]], list[float], list[float]]:
    """One cell: MLflow once, then flowscope with its monitor off and on in ``--rounds``
    alternating rounds, so that a drift in the machine's load falls on both alike; each
    flowscope server's rounds are pooled into one figure. Also monitoring's cost in each
    round: on a small shared machine one round's throughput swings by several percent
    either way, so the cost is read as the median over the rounds of the pair measured
    back to back. Auth's cost is read the same way, ``flowscope serve --auth`` against the
    unmonitored server."""

    def load(label: str) -> Cell:
        server = servers[label]
        request = post_request(server.port, "/invocations", payload, authorization.get(label))
        with console.status(f"concurrency {concurrency}: {label}"):
            run_load(server.port, request, concurrency=concurrency, seconds=args.warmup, warmup=0)
            before = monitor_cpu(server)
            cell = run_load(
                server.port,
                request,
                concurrency=concurrency,
                seconds=args.seconds,
                warmup=0,
                limit=args.requests,
                pid=server.process.pid,
            )
            cell.cpu_monitor = monitor_cpu(server) - before
            return cell

    found = [("mlflow", load("mlflow"))]
    pooled = {label: Cell() for label in ("flowscope-unmonitored", "flowscope", AUTHED)}
    paired, auth_paired = [], []
    for round_ in range(args.rounds):
        order = list(pooled) if round_ % 2 == 0 else list(reversed(pooled))
        measured = {label: load(label) for label in order}
        for label, cell in measured.items():
            pooled[label].add(cell)
        paired.append(1 - measured["flowscope"].rps / measured["flowscope-unmonitored"].rps)
        auth_paired.append(1 - measured[AUTHED].rps / measured["flowscope-unmonitored"].rps)
    return found + list(pooled.items()), paired, auth_paired


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per cell")
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="alternating rounds of flowscope: monitor off and on, and with auth",
    )
    parser.add_argument("--requests", type=int, default=20_000, help="at most, per cell")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated")
    parser.add_argument("--rows", default="1,100", help="payload rows, comma-separated: 1, 100")
    parser.add_argument("--soak", type=float, default=20.0, help="seconds of the memory soak")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.concurrency = [int(part) for part in args.concurrency.split(",") if part.strip()]
    args.rows = [int(part) for part in args.rows.split(",") if part.strip()]
    if set(args.rows) - {1, 100} or min(args.concurrency) < 1 or args.seconds <= 0:
        parser.error("--rows takes 1 and/or 100; --concurrency and --seconds must be positive")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    console = Console(width=None if sys.stdout.isatty() else 130)
    report: dict[str, Any] = {"config": {**vars(args), "json": str(args.json)}}
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-serving-") as tmp:
        root = Path(tmp)
        with console.status("training and registering the model"):
            settings, payloads = prepare(root)
        uri = settings.tracking_uri
        auth_database, token = auth_users(root)
        authorization = {AUTHED: token}
        servers: dict[str, Any] = {
            "mlflow": MlflowModelServer(root / "mlflow", uri),
            "flowscope-unmonitored": flowscope_server(root / "off", uri, monitor=False),
            "flowscope": flowscope_server(root / "on", uri, monitor=True),
            AUTHED: flowscope_server(
                root / "auth", uri, monitor=False, auth_database=auth_database
            ),
        }
        try:
            with console.status("starting the four servers"):
                for server in servers.values():
                    server.start(timeout=180)
            with console.status("waiting for the monitor's helper process to warm up"):
                monitor_ready(servers["flowscope"])
            report["same_answers"] = same_answers(servers, payloads[100], authorization)
            cells = []
            for rows in args.rows:
                for concurrency in args.concurrency:
                    payload = payloads[rows]
                    measured, paired, auth_paired = measure_cell(
                        servers, payload, concurrency, args, console, authorization
                    )
                    for label, cell in measured:
                        cells.append(
                            {
                                "rows": rows,
                                "concurrency": concurrency,
                                "server": label,
                                "requests": cell.requests,
                                "errors": cell.errors,
                                "rps": cell.rps,
                                "p50_ms": cell.p50,
                                "p99_ms": cell.p99,
                                "cpu_us": cell.cpu_us(),
                                "helper_cpu_us": cell.cpu_us(helpers=True),
                                "monitor_cpu_us": cell.cpu_monitor / cell.requests * 1e6,
                                **({"paired_costs": paired} if label == "flowscope" else {}),
                                **({"paired_auth_costs": auth_paired} if label == AUTHED else {}),
                            }
                        )
                        console.print(
                            f"[dim]{rows} rows, concurrency {concurrency}, {label}: "
                            f"{cell.rps:,.0f} req/s, p50 {cell.p50:.2f} ms, "
                            f"p99 {cell.p99:.2f} ms, CPU {cell.cpu_us():.0f} + "
                            f"{cell.cpu_us(helpers=True):.0f} µs/request[/]"
                        )
            report["mlflow_rss_mb"] = rss_mb(servers["mlflow"].process.pid)
            report["guard_us"] = guard_cost(settings, auth_database, token)
            with console.status(f"soaking flowscope for {args.soak:.0f} s"):
                report["soak"] = soak(servers["flowscope"], payloads[1], args.soak)
            served = served_predictions(servers["flowscope"])
            with console.status("stopping flowscope: the open window is written"):
                servers["flowscope"].terminate()
            report["monitor"] = dict(
                zip(("runs", "recorded"), recorded_predictions(settings), strict=True),
                served=served,
            )
        finally:
            for server in servers.values():
                server.stop()
    report["cells"], report["ratios"] = cells, ratios(cells)
    report["verdicts"] = verdicts(report["ratios"])
    console.print(render(cells))
    console.print(render_ratios(report["ratios"]))
    soaked = report["soak"]
    console.print(
        f"memory: flowscope (monitoring on) {soaked['rss_start_mb']:.0f} MiB at the soak's "
        f"start, {soaked['rss_max_mb']:.0f} MiB at most, {soaked['rss_end_mb']:.0f} MiB after "
        f"{soaked['seconds']:.0f} s at {soaked['rps']:,.0f} req/s ({soaked['errors']} errors); "
        f"mlflow models serve {report['mlflow_rss_mb']:.0f} MiB"
    )
    monitor = report["monitor"]
    console.print(
        f"monitor: {monitor['served']:,} predictions served, {monitor['recorded']:,} recorded in "
        f"{monitor['runs']} inference runs; answers equal across servers: "
        f"{'yes' if report['same_answers'] else '[red]no[/]'}"
    )
    console.print(cpu_summary(report["ratios"]))
    fastest = min(
        (cell for cell in cells if cell["server"] == "flowscope-unmonitored"),
        key=lambda cell: cell["cpu_us"],
    )
    console.print(
        f"auth's own cost, timed in process: {report['guard_us']:.1f} µs per request with a "
        f"checked read token, {report['guard_us'] / fastest['cpu_us']:.1%} of the unmonitored "
        f"server's least CPU per request ({fastest['cpu_us']:.0f} µs, {fastest['rows']} rows, "
        f"concurrency {fastest['concurrency']})"
    )
    for text, met in report["verdicts"]:
        console.print(f"{'[green]met[/]' if met else '[red]missed[/]'}: {text}")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"figures written to {args.json}")
    # Missed targets are figures to read; wrong answers or lost records are failures.
    errors = sum(cell["errors"] for cell in cells) + soaked["errors"]
    intact = report["same_answers"] and monitor["recorded"] == monitor["served"]
    return 0 if intact and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
