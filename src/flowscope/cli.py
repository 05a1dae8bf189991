"""The ``flowscope`` command: one Typer command per verb, each parsing, calling one domain
function and printing its result."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flowscope.errors import FlowscopeError, MissingDependencyError

app = typer.Typer(
    name="flowscope",
    help="An extended MLflow: durable tracking, rich evaluation, best runs and more.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow store: sqlite:///FILE, postgresql://..., or http(s)://HOST:PORT.",
        show_default=False,
    ),
]
Format = Annotated[str, typer.Option("--format", "-f", help="Output: table, json or csv.")]
AllowedHosts = Annotated[
    str | None,
    typer.Option(
        "--allowed-hosts",
        help="Host headers answered besides localhost and the --host address, "
        "comma-separated, * as a wildcard (e.g. 'mlflow.example.com,server:*'); others get "
        "400. The allowed_hosts setting (or MLFLOW_SERVER_ALLOWED_HOSTS) when unset.",
        show_default=False,
    ),
]
CorsOrigins = Annotated[
    str | None,
    typer.Option(
        "--cors-allowed-origins",
        help="Origins whose pages may call it from a browser, comma-separated "
        "(https://app.example.com); none when unset, or the cors_allowed_origins setting.",
        show_default=False,
    ),
]


def _settings(tracking_uri: str | None, **overrides: str | None) -> Any:
    """The settings, with the command line's values (those given) taking precedence."""
    from flowscope.config import load_settings

    given = {"tracking_uri": tracking_uri, **overrides}
    return load_settings(**{name: value for name, value in given.items() if value})


def _print(text: str | None) -> None:
    if text is not None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _check_format(fmt: str) -> None:
    from flowscope._output import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format"
        )


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--param")
        params[key.strip()] = value.strip()
    return params


_HEADLINE = ("accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2", "pinball_0.5")


@app.command()
def train(
    dataset: Annotated[
        str, typer.Option(help="iris, wine, breast_cancer, diabetes, digits, or a CSV/XLSX file.")
    ],
    model: Annotated[str, typer.Option(help="Model type from the catalog.")] = "random_forest",
    target: Annotated[
        str | None, typer.Option(help="Target column (the built-in datasets know theirs).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Model parameter KEY=VALUE; repeat for more.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Task name: the experiment (default: the dataset's name).")
    ] = None,
    run_name: Annotated[str | None, typer.Option(help="Name of the run.")] = None,
    test_size: Annotated[float, typer.Option(help="Share of rows held out.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed for the split and the model.")] = 0,
    threshold: Annotated[
        list[float] | None, typer.Option(help="Decision threshold (binary); repeat for more.")
    ] = None,
    register: Annotated[
        str | None, typer.Option(help="Register the model as a new version of this name.")
    ] = None,
    sensitive: Annotated[
        str | None, typer.Option(help="Column whose groups fairness metrics compare.")
    ] = None,
    explain: Annotated[
        bool, typer.Option(help="Log SHAP explanations of up to 1,000 held-out rows.")
    ] = True,
    tracking_uri: TrackingUri = None,
) -> None:
    """Train a model, evaluate it on a held-out split and log everything as a run."""
    from flowscope.modeling.data import load_dataset
    from flowscope.modeling.train import train as train_model

    params = _parse_params(param or [])
    settings = _settings(tracking_uri)
    frame, default_target = load_dataset(dataset)
    chosen_target = target or default_target
    if chosen_target is None:
        raise FlowscopeError(f"{dataset} has no default target; name one with --target")
    name = task or Path(dataset).stem
    with _spinner(f"training {model} on {dataset}"):
        result = train_model(
            frame,
            chosen_target,
            model,
            params,
            task=name,
            test_size=test_size,
            seed=seed,
            run_name=run_name,
            thresholds=threshold,
            register=register,
            dataset_name=dataset,
            settings=settings,
            explain=explain,
            sensitive=sensitive,
        )
    shown = ", ".join(
        f"{key}={result.metrics[key]:.4g}" for key in _HEADLINE if key in result.metrics
    )
    typer.echo(f"run {result.run_id} ({result.problem}, task {name}): {shown}")
    if result.registered_version:
        typer.echo(f"registered {register} version {result.registered_version}")
    if not result.delivered:
        typer.echo("some records are still in the journal; `flowscope sync` delivers them")


@app.command()
def tune(
    dataset: Annotated[
        str, typer.Option(help="iris, wine, breast_cancer, diabetes, digits, or a CSV/XLSX file.")
    ],
    model: Annotated[str, typer.Option(help="Model type from the catalog.")],
    trials: Annotated[int, typer.Option(help="Trials in the study, shared by all workers.")],
    target: Annotated[
        str | None, typer.Option(help="Target column (the built-in datasets know theirs).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Start no trial after this many seconds.")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(help="Metric to optimize (default: roc_auc, accuracy or rmse)."),
    ] = None,
    direction: Annotated[
        str | None, typer.Option(help="max or min (default: the metric's own).")
    ] = None,
    space: Annotated[
        Path | None, typer.Option(help="YAML search space (default: the catalog's).")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (default: TASK-MODEL); resumed if it exists.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            envvar="FLOWSCOPE_OPTUNA_STORAGE",
            help="Optuna storage URL (default: sqlite:///optuna.db beside the store).",
        ),
    ] = None,
    n_jobs: Annotated[int, typer.Option(help="Trials at once in each worker.")] = 1,
    workers: Annotated[int, typer.Option(help="Worker processes to start here.")] = 1,
    sampler: Annotated[str, typer.Option(help="tpe, random or cmaes.")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median, hyperband or none.")] = "median",
    register: Annotated[
        str | None, typer.Option(help="Register the refit best model under this name.")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Task name: the experiment (default: the dataset's name).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split, the models and the sampler.")] = 0,
    heartbeat: Annotated[
        int, typer.Option(help="Seconds between a worker's heartbeats (dead workers' trials fail).")
    ] = 30,
    tracking_uri: TrackingUri = None,
) -> None:
    """Tune a catalog model with Optuna: the study is a run, each trial a child run; the
    best configuration is refit, evaluated and logged."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from flowscope.tuning.catalog_study import TuneSpec, quiet_optuna, run_catalog_study

    quiet_optuna()  # the progress bar says what Optuna's per-trial log lines would
    spec = TuneSpec(
        dataset=dataset,
        model=model,
        trials=trials,
        target=target,
        timeout=timeout,
        metric=metric,
        direction=direction,
        space=str(space) if space else None,
        study=study,
        storage=storage,
        n_jobs=n_jobs,
        workers=workers,
        sampler=sampler,
        pruner=pruner,
        register=register,
        task=task,
        seed=seed,
        heartbeat=heartbeat,
    )
    settings = _settings(tracking_uri)
    if not sys.stderr.isatty():  # piped: the summary lines are enough
        outcome = run_catalog_study(spec, settings)
    else:
        from rich.console import Console

        columns = (
            TextColumn("tuning {task.fields[name]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True, console=Console(stderr=True)) as progress:
            bar = progress.add_task("tune", total=trials, name=model, best="-")

            def on_progress(done: int, total: int | None, best: float | None) -> None:
                shown = "-" if best is None else f"{best:.4g}"
                progress.update(bar, completed=done, total=total, best=shown)

            outcome = run_catalog_study(spec, settings, on_progress)
    counts = outcome.summary.counts
    typer.echo(
        f"study {outcome.study_name} (run {outcome.parent_run_id}): {counts['total']} trials, "
        f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed"
    )
    best = outcome.summary.best
    if best is None:
        typer.echo("no trial completed; nothing to refit")
    else:
        typer.echo(
            f"best trial {best['number']}: {outcome.metric}={best['value']:.4g} {best['params']}"
        )
    if outcome.refit is not None:
        shown = ", ".join(
            f"{key}={outcome.refit.metrics[key]:.4g}"
            for key in _HEADLINE
            if key in outcome.refit.metrics
        )
        typer.echo(f"refit run {outcome.refit.run_id} on the test rows: {shown}")
        if outcome.refit.registered_version:
            typer.echo(f"registered {register} version {outcome.refit.registered_version}")
    for error in outcome.worker_errors:
        typer.echo(f"warning: {error}", err=True)
    if outcome.worker_errors:
        raise typer.Exit(1)


@app.command("explain")
def explain_run(
    run_id: Annotated[str, typer.Argument(help="Run whose logged model to explain.")],
    rows: Annotated[int, typer.Option(min=1, help="Explain at most this many rows.")] = 1000,
    data: Annotated[
        Path | None,
        typer.Option(help="CSV of feature rows (default: the held-out rows the run stored)."),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Compute SHAP values of a run's model and log them into the run (explain/)."""
    from flowscope.explain.stored import explain_stored_run

    with _spinner(f"explaining the model of run {run_id}"):
        explanation = explain_stored_run(_settings(tracking_uri), run_id, rows=rows, data=data)
    summary = explanation.summary()
    top = ", ".join(list(summary["mean_abs_shap_overall"])[:5])
    typer.echo(
        f"explained {summary['rows']} rows of run {run_id} with {summary['explainer']} "
        f"({summary['output_space']}); additivity error {summary['shap_additivity_error']:.2g}; "
        f"top features: {top}"
    )


@app.command()
def runs(
    task: Annotated[str, typer.Argument(help="Task (experiment) name.")],
    kind: Annotated[
        str | None, typer.Option(help="Only runs of this kind: training, inference, tuning...")
    ] = None,
    where: Annotated[
        str | None, typer.Option(help='MLflow filter, e.g. "metrics.accuracy > 0.9".')
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs (of the kind asked).")] = 100,
    fmt: Format = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """List the runs of a task (its predictions' runs included), newest first."""
    from flowscope._output import render
    from flowscope.analysis.query import reading_runs
    from flowscope.analysis.task_runs import list_task_runs

    _check_format(fmt)
    settings = _settings(tracking_uri)
    with reading_runs(settings) as store:
        rows = list_task_runs(store, settings, task, kind=kind, where=where, limit=limit)
    columns = None
    if fmt == "table":  # a terminal has room for the headline metrics, not every column
        present = {key for row in rows for key in row}
        metrics = [f"metrics.{key}" for key in _HEADLINE if f"metrics.{key}" in present]
        columns = ["run_id", "run_name", "kind", "status", "params.model_type", *metrics]
        columns = [column for column in columns if column in present]
    _print(render(rows, fmt, columns=columns, title=f"runs of {task}"))


@app.command()
def best(
    task: Annotated[str, typer.Argument(help="Task (experiment) name.")],
    metric: Annotated[str, typer.Option(help="Metric to rank by.")] = "accuracy",
    maximize: Annotated[
        bool | None,
        typer.Option(
            "--max/--min",
            help="Larger or smaller is better (default: by name).",
            show_default=False,
        ),
    ] = None,
    value: Annotated[
        str,
        typer.Option(
            help="Rank by the metric's last value, or its min or max over the run's steps."
        ),
    ] = "last",
    where: Annotated[
        str | None, typer.Option(help='Constraint in MLflow syntax: "metrics.recall_1 >= 0.9".')
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Also write every run considered to this CSV file.")
    ] = None,
    fmt: Format = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """Find the best training run of a task and show its params, metrics and confusion
    matrix. Runs without the metric (or with NaN) are left out; ties go to the earliest."""
    from flowscope._output import render, to_csv, to_json
    from flowscope.analysis.artifacts import confusion_matrix_of
    from flowscope.analysis.query import reading_runs
    from flowscope.analysis.task_runs import best_task_run, every_run_ranked

    _check_format(fmt)
    settings = _settings(tracking_uri)
    direction = None if maximize is None else ("max" if maximize else "min")
    with reading_runs(settings) as store:
        result = best_task_run(
            store, settings, task, metric=metric, direction=direction, value=value, where=where
        )
        if csv is not None:
            ranked = every_run_ranked(store, settings, task, result, value=value, where=where)
            csv.write_text(to_csv(ranked))
    matrix = confusion_matrix_of(settings, str(result.winner["run_id"]))
    if fmt == "json":
        _print(to_json({**result.as_dict(), "scored_by": value, "confusion_matrix": matrix}))
        return
    winner = result.winner
    scored = metric if value == "last" else f"{metric} ({value} over steps)"
    typer.echo(
        f"best run of {task} by {scored} ({result.direction}imum"
        + (f", where {where}" if where else "")
        + f"): {winner['run_name']} ({winner['run_id']}) with {scored} = {result.value:.6g}"
    )
    typer.echo(f"{result.considered} runs considered, {result.without_metric} without {metric}")
    if result.tie_break:
        typer.echo(result.tie_break)
    params = [{"param": k[7:], "value": v} for k, v in winner.items() if k.startswith("params.")]
    metrics = [{"metric": k[8:], "value": v} for k, v in winner.items() if k.startswith("metrics.")]
    _print(render(params, fmt, title="parameters"))
    _print(render(metrics, fmt, title="metrics"))
    if matrix is not None:
        labels = [str(label) for label in matrix["labels"]]
        grid = [
            {"true \\ predicted": label, **dict(zip(labels, counts, strict=True))}
            for label, counts in zip(labels, matrix["counts"], strict=True)
        ]
        _print(render(grid, fmt, title="confusion matrix"))
    if result.runners_up:
        up = [
            {"run": row["run_name"], "run_id": row["run_id"], scored: score}
            for row, score in zip(result.runners_up, result.scores[1:], strict=True)
        ]
        _print(render(up, fmt, title="runners-up"))


@app.command()
def sync(
    status: Annotated[
        bool, typer.Option("--status", help="Only show what is pending; deliver nothing.")
    ] = False,
    fmt: Format = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """Deliver what crashed or offline processes left in the journal."""
    from flowscope._output import render
    from flowscope.tracking import sync as journal_sync

    _check_format(fmt)
    settings = _settings(tracking_uri)
    if status:
        rows = [row.as_dict() for row in journal_sync.status(settings)]
        if not rows and fmt == "table":
            typer.echo(f"nothing pending in {settings.journal_dir}")
            return
        _print(render(rows, fmt, title=f"journal {settings.journal_dir}"))
        return
    pending = sum(row.pending_bytes for row in journal_sync.status(settings) if not row.in_use)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        bar = progress.add_task("delivering", total=max(pending, 1))
        result = journal_sync.sync(
            settings, deadline=60.0, on_progress=lambda n: progress.advance(bar, n)
        )
    typer.echo(
        f"delivered {len(result.delivered)} run(s); {len(result.skipped)} still in use by "
        f"running processes; {len(result.failed)} failed"
    )
    for local_id, reason in result.failed.items():
        typer.echo(f"  {local_id}: {reason}", err=True)
    if result.rejected:
        typer.echo(
            f"{result.rejected} record(s) refused by the store are kept in "
            f"{settings.journal_dir}/*.rejected",
            err=True,
        )
    if result.failed:
        raise typer.Exit(1)


@app.command()
def demo(
    quick: Annotated[bool, typer.Option(help="Fewer runs, for a fast look.")] = False,
    again: Annotated[
        bool, typer.Option("--again", help="Seed even if the workspace already has demo runs.")
    ] = False,
    serve: Annotated[bool, typer.Option(help="Start the dashboard afterwards.")] = False,
    host: Annotated[str, typer.Option(help="Dashboard address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Dashboard port.")] = 5050,
    tracking_uri: TrackingUri = None,
) -> None:
    """Seed a demo workspace with real training runs on bundled data, promote and serve the
    breast-cancer model to record inference runs with drift, show each task's best run,
    and optionally start the dashboard on it."""
    from rich.progress import Progress

    from flowscope.demo import is_seeded, seed_demo, seeded_summary

    settings = _settings(tracking_uri)
    try:  # the progress bar says what Optuna's line per trial of the demo's study would
        from flowscope.tuning.catalog_study import quiet_optuna

        quiet_optuna()
    except MissingDependencyError:
        pass  # the demo leaves its study out, and says so
    if is_seeded(settings) and not again:
        typer.echo("the demo workspace is already seeded (--again seeds it once more)")
        summary = seeded_summary(settings)
    else:
        with Progress() as progress:
            bar = progress.add_task("seeding the demo", total=None)

            def advance(done: int, total: int, label: str) -> None:
                progress.update(bar, completed=done, total=total, description=label)

            summary = seed_demo(settings, quick=quick, on_progress=advance)
    from flowscope.demo_sample import write_workbench_sample

    summary.append(write_workbench_sample(Path.cwd()))
    for line in summary:
        typer.echo(line)
    if serve:
        _serve(settings, host, port)


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5050,
    get: Annotated[
        str | None,
        typer.Option(
            "--get",
            help="Print what a dashboard path returns (e.g. /experiments.json)"
            " and exit; exit 1 on an error status.",
        ),
    ] = None,
    allowed_hosts: AllowedHosts = None,
    cors_allowed_origins: CorsOrigins = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Serve the dashboard for the configured store (SQLite, PostgreSQL or a server)."""
    settings = _settings(
        tracking_uri, allowed_hosts=allowed_hosts, cors_allowed_origins=cors_allowed_origins
    )
    if get is None:
        _serve(settings, host, port)
        return
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about its test client's httpx
        from fastapi.testclient import TestClient

    from flowscope.web import create_app

    # localhost: a Host the dashboard answers whatever allowed_hosts says
    with TestClient(
        create_app(settings), base_url="http://localhost", raise_server_exceptions=False
    ) as client:
        response = client.get(get if get.startswith("/") else "/" + get)
    _print(response.text)
    if response.status_code >= 400:
        raise typer.Exit(1)


@app.command()
def register(
    run_id: Annotated[str, typer.Argument(help="The run whose logged model to register.")],
    name: Annotated[str, typer.Argument(help="Registered model name (created if new).")],
    artifact_path: Annotated[
        str, typer.Option(help="Where in the run's artifacts the model is.")
    ] = "model",
    fmt: Format = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """Register a run's model as a new version of NAME; again for the same run, the version
    made before."""
    from flowscope._output import to_json
    from flowscope.registry.register import register_run

    _check_format(fmt)
    version = register_run(_settings(tracking_uri), run_id, name, artifact_path=artifact_path)
    if fmt == "json":
        _print(to_json(version.as_dict()))
        return
    typer.echo(f"registered run {run_id} as {name} version {version.version} ({version.uri})")
    typer.echo(
        "next: flowscope promote "
        + shlex.join([name, "--policy", "policy.yaml", "--version", str(version.version)])
    )


@app.command()
def promote(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    policy: Annotated[Path, typer.Option(help="Promotion policy file (YAML).")],
    version: Annotated[
        int | None, typer.Option(help="Evaluate only this version (and the holder it may replace).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the decisions; change and record nothing.")
    ] = False,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for another promotion of the model to end.")
    ] = 0.0,
    fmt: Format = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """Apply a promotion policy: move the staging and production aliases, tag every version
    with its lifecycle state, and record each decision with its reasons."""
    from flowscope._output import render, to_json
    from flowscope.registry import load_policy
    from flowscope.registry import promote as promote_model

    _check_format(fmt)
    rules = load_policy(policy)
    with _spinner(f"evaluating {model} against {policy}"):
        result = promote_model(
            _settings(tracking_uri), model, rules, version=version, dry_run=dry_run, wait=wait
        )
    if fmt == "json":
        _print(to_json(result.as_dict()))
        return
    label = {"dry-run": "dry run, nothing changed", "no-op": "nothing to change"}
    typer.echo(f"{model}: {result.plan.summary()} ({label.get(result.outcome, result.outcome)})")
    rows = [
        {"version": f"v{d.version}", "from": d.before, "to": d.after, "why": d.reason}
        for d in result.plan.decisions
    ]
    _print(render(rows, fmt, title=f"decisions (policy sha256 {rules.digest[:12]})"))
    if result.run_id:
        typer.echo(f"recorded as run {result.run_id} in {model}-lifecycle by {result.actor}")


@app.command()
def retrain(
    model: Annotated[str, typer.Argument(help="Registered model with a @production version.")],
    data: Annotated[str, typer.Option(help="New data: a CSV/XLSX file or a built-in dataset.")],
    target: Annotated[
        str | None, typer.Option(help="Target column (default: the champion's).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option(help="Policy file (default: the one last applied to MODEL).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed for the split and the model.")] = 0,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for another promotion of the model to end.")
    ] = 0.0,
    explain: Annotated[
        bool, typer.Option(help="Log SHAP explanations with the challenger.")
    ] = True,
    fmt: Format = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """Train a challenger with the champion's model type and parameters on new data, compare
    both on the new hold-out, and promote it if the policy says so."""
    from flowscope._output import to_json
    from flowscope.modeling.data import load_dataset
    from flowscope.registry import load_policy
    from flowscope.registry import retrain as retrain_model

    _check_format(fmt)
    rules = load_policy(policy) if policy is not None else None
    frame, _ = load_dataset(data)
    with _spinner(f"retraining {model} on {data}"):
        result = retrain_model(
            _settings(tracking_uri),
            model,
            frame,
            target=target,
            policy=rules,
            dataset_name=data,
            seed=seed,
            wait=wait,
            explain=explain,
        )
    if fmt != "table":
        _print(to_json(result.as_dict()))
        return
    shown = ", ".join(
        f"{key}={result.metrics[key]:.4g}" for key in _HEADLINE if key in result.metrics
    )
    decision = result.decision
    typer.echo(f"challenger v{result.challenger} (run {result.run_id}) on {data}: {shown}")
    comparison = decision["comparison"]
    if comparison and comparison.get("basis"):
        typer.echo(f"compared with champion v{result.champion}: {comparison['basis']}")
    verb = "promoted to" if decision["after"] in ("staging", "production") else "stays"
    typer.echo(f"v{result.challenger} {verb} {decision['after']}: {decision['reason']}")


report_app = typer.Typer(help="Reports as markdown or self-contained HTML.", no_args_is_help=True)
app.add_typer(report_app, name="report")
ReportOutput = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
]


def _write_report(text: str, output: Path | None) -> None:
    if output is None:
        _print(text)
        return
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output}")


# ``report compare --format``: md (or markdown), html, csv, json.
_COMPARE_FORMATS = {
    "md": "markdown",
    "markdown": "markdown",
    "html": "html",
    "csv": "csv",
    "json": "json",
}


@report_app.command("compare")
def report_compare(
    task: Annotated[str, typer.Argument(help="Task (experiment) name.")],
    metric: Annotated[
        str | None, typer.Option(help="Metric to rank by (default: the runs' main metric).")
    ] = None,
    direction: Annotated[
        str | None, typer.Option(help="max or min (default: by the metric's name).")
    ] = None,
    value: Annotated[
        str, typer.Option(help="Rank by the metric's last value, or its min or max over steps.")
    ] = "last",
    where: Annotated[
        str | None, typer.Option(help='MLflow filter, e.g. "metrics.f1 > 0.9".')
    ] = None,
    kind: Annotated[str, typer.Option(help="training runs or (tuning) trial runs.")] = "training",
    importance: Annotated[
        str, typer.Option(help="Parameter importance: auto, fanova or ped_anova.")
    ] = "auto",
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, html, csv or json.")] = "html",
    output: ReportOutput = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Compare a task's runs: the best run and how far ahead it is, every run, charts,
    which parameters drive the metric, and what to do next."""
    from flowscope.analysis.query import reading_runs
    from flowscope.reports import CompareQuery, compare_task, render_comparison, write_comparison

    chosen = _COMPARE_FORMATS.get(fmt)
    if chosen is None:
        raise typer.BadParameter(f"{fmt!r} is not md, html, csv or json", param_hint="--format")
    if chosen == "markdown" and output is None:
        raise typer.BadParameter(
            "markdown writes its charts beside the report; name the file with -o",
            param_hint="--output",
        )
    query = CompareQuery(
        metric=metric or "",
        direction=direction or "",
        value=value,
        where=where or "",
        kind=kind,
        importance=importance,
    )
    settings = _settings(tracking_uri)
    with _spinner(f"comparing the runs of {task}"), reading_runs(settings) as store:
        data = compare_task(settings, store, task, query)
    if output is None:
        _print(render_comparison(data, chosen))
        return
    written = write_comparison(data, chosen, output)
    typer.echo(f"wrote {', '.join(str(path) for path in written)}")


@report_app.command("versions")
def report_versions(
    model: Annotated[str, typer.Argument(help="Registered model name.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown or html.")] = "markdown",
    output: ReportOutput = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Every version's stage, description, metrics and parameters, the comparisons, and why
    each promotion happened."""
    from flowscope.reports import render_versions, versions_report

    if fmt not in ("markdown", "html"):
        raise typer.BadParameter(f"{fmt!r} is not markdown or html", param_hint="--format")
    data = versions_report(_settings(tracking_uri), model)
    _write_report(render_versions(data, fmt), output)


@report_app.command("deployed")
def report_deployed(
    ref: Annotated[str, typer.Argument(help="MODEL@ALIAS, e.g. heart-disease@production.")],
    data: Annotated[str, typer.Option(help="Test data: a CSV/XLSX file or a built-in dataset.")],
    target: Annotated[
        str | None, typer.Option(help="Target column (default: the model's).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="html or markdown.")] = "html",
    max_rows: Annotated[int, typer.Option(help="Rows timed one by one for latency.")] = 500,
    output: ReportOutput = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Accuracy and per-sample latency of the deployed version on a test set, with the
    latency distribution plotted."""
    from flowscope.modeling.data import load_dataset
    from flowscope.reports import deployed_report, render_deployed

    if fmt not in ("markdown", "html"):
        raise typer.BadParameter(f"{fmt!r} is not html or markdown", param_hint="--format")
    frame, _ = load_dataset(data)
    with _spinner(f"timing {ref} on {data}"):
        report = deployed_report(
            _settings(tracking_uri), ref, frame, target=target, max_latency_rows=max_rows
        )
    _write_report(render_deployed(report, fmt), output)


@app.command("serve")
def serve_model(
    model: Annotated[str, typer.Argument(help="MODEL@ALIAS (followed) or MODEL/VERSION.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    allowed_hosts: AllowedHosts = None,
    cors_allowed_origins: CorsOrigins = None,
    tracking_uri: TrackingUri = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            envvar="FLOWSCOPE_AUTH",
            help="Answer only users with READ on the model (a password by HTTP basic or an "
            "API token), every route but /health, from the users of `flowscope server "
            "--auth` (auth_database_uri, else the tracking database).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve a registered model over HTTP (/predict, /predict/batch, and MLflow's scoring
    protocol: /invocations, /ping, /version) and log its predictions as inference runs
    with drift."""
    from flowscope.serving.server import check_auth, check_model, run_server

    settings = _settings(
        tracking_uri, allowed_hosts=allowed_hosts, cors_allowed_origins=cors_allowed_origins
    )
    if auth is not None:
        settings = settings.model_copy(update={"auth": auth})
    check_auth(settings)  # its tables missing ends it here, named
    ref, version = check_model(settings, model)
    typer.echo(
        f"serving {ref} (version {version}) on http://{host}:{port}  (workers: {workers}"
        + ("; auth on)" if settings.auth else ")")
    )
    run_server(settings, model, host=host, port=port, workers=workers)


@app.command()
def predict(
    model: Annotated[str, typer.Argument(help="MODEL@ALIAS or MODEL/VERSION.")],
    input: Annotated[
        Path | None, typer.Option("--input", "-i", help="CSV or XLSX file of rows to score.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV to write (default: stdout).")
    ] = None,
    record: Annotated[
        str | None, typer.Option("--json", help="One record as JSON: '{\"col\": 1.5, ...}'.")
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Predict a file's rows (logged as one batch inference run) or one JSON record."""
    import json

    from flowscope._output import frame_to_csv
    from flowscope.serving.predict import predict_file, predict_record

    if (input is None) == (record is None):
        raise typer.BadParameter("give either --input FILE or --json RECORD", param_hint="--input")
    settings = _settings(tracking_uri)
    if input is None:
        try:
            payload = json.loads(record or "")
        except ValueError:
            raise FlowscopeError("--json is not valid JSON") from None
        result = predict_record(settings, model, payload)
        answer = {"model": result.model, "version": result.version, "run_id": result.run_id}
        _print(json.dumps({**answer, "predictions": result.answers}, indent=2))
        return
    with _spinner(f"predicting {input.name} with {model}"):
        result = predict_file(settings, model, input, output)
    if output is None:
        _print(frame_to_csv(result.table))
    counts = ", ".join(f"{label}: {count}" for label, count in result.class_counts.items())
    typer.echo(
        f"predicted {result.rows} rows with {result.model} version {result.version}"
        + (f" ({counts})" if counts else "")
        + (f"; written to {output}" if output is not None else ""),
        err=output is None,
    )
    if result.run_id:
        typer.echo(f"inference run {result.run_id}", err=output is None)
    if not result.delivered:
        typer.echo("some records are still in the journal; `flowscope sync` delivers them")


def _serve(settings: Any, host: str, port: int) -> None:
    import uvicorn

    from flowscope.web import create_app

    run_jobs = settings.runs_jobs_itself
    typer.echo(f"flowscope dashboard on http://{host}:{port}  (store: {settings.tracking_uri})")
    typer.echo(
        "jobs run in this process"
        if run_jobs
        else "jobs are queued for `flowscope worker` processes"
    )
    dashboard = create_app(settings, run_jobs=run_jobs, bind_host=host)
    uvicorn.run(dashboard, host=host, port=port, log_level="warning")


@app.command()
def worker(
    processes: Annotated[
        int, typer.Option(min=1, help="Worker processes, each running one job at a time.")
    ] = 1,
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            help="The artifacts destination of the `flowscope server` on the same database: "
            "jobs write their runs' artifacts there, under the server's proxied root, so "
            "that every client reaches them through the server.",
            show_default=False,
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Run the workbench's queued jobs (training, tuning) until interrupted."""
    from flowscope.jobs import JobQueue

    settings = _settings(tracking_uri)
    if artifacts_destination is not None:
        from flowscope.server import settings_beside_server

        settings = settings_beside_server(settings, artifacts_destination)
    queue = JobQueue(settings)
    typer.echo(f"flowscope worker: {processes} process(es) on the queue {queue.location}")
    queue.run_worker(processes)


@app.command()
def server(
    backend_store_uri: Annotated[
        str,
        typer.Option(
            envvar="MLFLOW_BACKEND_STORE_URI",
            help="The database runs are kept in: postgresql://USER:PASSWORD@HOST:PORT/DB "
            "for a team, sqlite:///FILE on one machine.",
        ),
    ],
    artifacts_destination: Annotated[
        str | None,
        typer.Option(
            help="Where artifacts are stored (clients reach them through this server): "
            "s3://BUCKET/PATH or a folder; ./mlartifacts when unset.",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
    allowed_hosts: AllowedHosts = None,
    cors_allowed_origins: CorsOrigins = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth/--no-auth",
            envvar="FLOWSCOPE_AUTH",
            help="Require signing in on every route but /health and the login page, with "
            "MLflow's users and permissions; the first admin comes from "
            "FLOWSCOPE_ADMIN_USERNAME and FLOWSCOPE_ADMIN_PASSWORD.",
        ),
    ] = False,
) -> None:
    """Serve MLflow's tracking server (REST API, proxied artifacts, its UI at /) and
    flowscope's dashboard at /flowscope/, on one port."""
    from flowscope.server import ServerConfig, resolve_destination
    from flowscope.server.serve import prepare, run

    settings = _settings(
        None, allowed_hosts=allowed_hosts, cors_allowed_origins=cors_allowed_origins
    )
    config = ServerConfig(
        backend_store_uri,
        resolve_destination(artifacts_destination),
        allowed_hosts=settings.allowed_hosts,
        bind_host=host,
        cors_allowed_origins=settings.cors_allowed_origins,
        auth=auth,
    )
    prepare(config)  # a database or artifact destination at fault ends it here, named
    typer.echo(
        f"flowscope server on http://{host}:{port}  (MLflow at /, dashboard at /flowscope/; "
        f"{workers} worker(s))"
    )
    run(host, port, workers)


class _spinner:
    """A transient status line on a terminal; nothing when output is piped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._status: Any = None

    def __enter__(self) -> None:
        if sys.stderr.isatty():
            from rich.console import Console

            self._status = Console(stderr=True).status(self.text)
            self._status.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)


def main(argv: list[str] | None = None) -> None:
    """Entry point: domain errors print one line and exit 1; usage errors print the
    command's help and exit 1."""
    # Typer ships its own copy of click; its usage error is BadParameter's base class.
    usage_error = typer.BadParameter.__base__
    command = typer.main.get_command(app)
    _quiet_mlflow()
    try:
        result = command.main(args=argv, prog_name="flowscope", standalone_mode=False)
    except usage_error as exc:  # type: ignore[misc]
        if exc.ctx is not None:
            typer.echo(exc.ctx.get_help(), err=True)
        typer.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except FlowscopeError as exc:
        typer.echo(f"error: {exc.for_operator}", err=True)
        sys.exit(1)
    except Exception as exc:
        refusal = _refused_by_tracking_server(exc)
        if refusal is None:
            raise
        typer.echo(f"error: {refusal}", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)


def _refused_by_tracking_server(exc: Exception) -> str | None:
    """The line for MLflow's client turned away by a server with auth on (a 401 or 403 from
    any command that reaches it: serve started before its token existed, say), with what
    the server said; ``None`` for any other error. An ``MlflowException`` can only have
    been raised once ``mlflow.exceptions`` was imported, so commands that never import
    MLflow stay light."""
    exceptions = sys.modules.get("mlflow.exceptions")
    if exceptions is None or not isinstance(exc, exceptions.MlflowException):
        return None
    # MLflow's client wraps a plain-text answer: "... failed with error code 401 != 200.
    # Response body: '...'"; a JSON one is its message
    body = re.search(r"Response body: '(.*)'\s*$", exc.message, re.DOTALL)
    said = (body[1] if body else exc.message).strip().split("\n")[0]
    if exc.error_code == "UNAUTHENTICATED":
        return (
            f"the tracking server asks who is calling ({said}): set MLFLOW_TRACKING_TOKEN "
            "(an API token) or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
    if exc.error_code == "PERMISSION_DENIED":
        return f"the tracking server refused the request: {said}"
    return None


def _quiet_mlflow() -> None:
    """MLflow draws a "Downloading artifacts" progress bar for every model it loads and
    logs its database set-up at INFO: in a command's output, noise nobody can act on.
    MLflow reads both switches from the environment only (and the log level once, when it
    is imported), so they are set here, once, at the command's entry, before any import
    of MLflow; a value the user set wins. Processes the command starts inherit them."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


if __name__ == "__main__":
    main()
