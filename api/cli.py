"""`dreambooth`: the trainings API from a terminal.

    dreambooth token create OWNER                    # prints a new API token (local database)
    dreambooth train payload.json                    # the seed's payload, as a file
    dreambooth train --trainer-version … --template-version … --model me/dog \\
        --instance-data photos.zip -i instance_prompt="a photo of sks dog" -i max_train_steps=800
    dreambooth list | status ID [--logs] | download ID | cancel ID
    dreambooth predict me/dog[:VERSION] -i prompt="a photo of sks dog on the moon"
    dreambooth worker --name gpu0 --gpu 0            # a worker for the job queue

The API is $DREAMBOOTH_API_URL (default http://127.0.0.1:5000); the token $DREAMBOOTH_API_TOKEN.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import typer

from api.client import APIError, Client, data_uri

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True, add_completion=False)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _value(text: str):
    if text.startswith("@"):
        path = Path(text[1:])
        if not path.is_file():
            raise typer.BadParameter(f"{path} is not a file")
        return data_uri(path)
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_inputs(pairs: list[str]) -> dict:
    """`-i key=value` as `cog predict` reads it: JSON values, `@file` for a file's bytes."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"-i {pair!r}: expected key=value")
        out[key] = _value(value)
    return out


def _fail(error: APIError) -> None:
    typer.secho(f"error: HTTP {error.status}", fg="red", err=True)
    details = error.detail if isinstance(error.detail, list) else [error.detail]
    for item in details:
        if isinstance(item, dict):
            where = ".".join(str(p) for p in item.get("loc", [])[1:])
            typer.echo(f"  {where}: {item.get('msg')}", err=True)
        else:
            typer.echo(f"  {item}", err=True)
    raise typer.Exit(1)


@token_app.command("create")
def token_create(owner: str) -> None:
    """Create an API token for OWNER and print it (it is stored only hashed)."""
    from api import auth, db
    from api.settings import load

    settings = load()
    db.migrate(settings.database_url)
    try:
        with db.session(settings.database_url) as session:
            token = auth.create_token(session, owner)
    except ValueError as error:
        typer.secho(f"error: {error}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(token)


def _payload(payload, trainer, template, model, notes, webhook, instance_data, inputs) -> dict:
    body = json.loads(Path(payload).read_text()) if payload else {}
    body.setdefault("input", {})
    body["input"].update(parse_inputs(inputs))
    if instance_data:
        is_url = instance_data.startswith(("http://", "https://"))
        body["input"]["instance_data"] = instance_data if is_url else _value("@" + instance_data)
    for key, value in (
        ("trainer_version", trainer),
        ("template_version", template),
        ("model", model),
        ("notes", notes),
        ("webhook_completed", webhook),
    ):
        if value is not None:
            body[key] = value
    return body


@app.command()
def train(
    payload: Path | None = typer.Argument(None, help="a JSON file with the whole payload"),
    trainer_version: str | None = typer.Option(None, help="sha256:… from script/push trainer"),
    template_version: str | None = typer.Option(None, help="sha256:… from script/push TEMPLATE"),
    model: str | None = typer.Option(None, help="owner/name to push the new version to"),
    notes: str | None = typer.Option(None),
    webhook: str | None = typer.Option(None, help="webhook_completed URL"),
    instance_data: str | None = typer.Option(None, help="a .zip/.tar of photos, or its URL"),
    inputs: list[str] = typer.Option([], "--input", "-i", help="key=value (JSON; @file)"),
    wait: bool = typer.Option(True, help="follow the training until it ends"),
) -> None:
    """Start a training (Train → Build → Push → Webhook) and follow it."""
    body = _payload(
        payload, trainer_version, template_version, model, notes, webhook, instance_data, inputs
    )
    client = Client()
    try:
        t = client.train(body)
    except APIError as error:
        _fail(error)
    typer.echo(t["id"])
    if wait:
        _follow(client, t["id"])


def _follow(client: Client, training_id: str) -> None:
    shown = {"lines": 0}

    def show(t: dict) -> None:
        lines = (t.get("logs") or "").splitlines()
        for line in lines[shown["lines"] :]:
            typer.echo(f"  {line}", err=True)
        shown["lines"] = len(lines)

    t = client.wait(training_id, on_poll=show)
    color = "green" if t["status"] == "succeeded" else "red"
    typer.secho(f"{t['status']}: {t.get('version') or t.get('error')}", fg=color, err=True)
    if t["status"] != "succeeded":
        raise typer.Exit(1)


@app.command("list")
def list_trainings(limit: int = typer.Option(10, help="how many, newest first")) -> None:
    """Your most recent trainings."""
    try:
        page = Client().trainings(limit=limit)
    except APIError as error:
        _fail(error)
    for t in page["results"]:
        seconds = t["metrics"].get("predict_time")
        took = f"{seconds:.0f}s" if seconds is not None else "-"
        typer.echo(f"{t['id']}  {t['status']:<10} {t['created_at']}  {took:>6}  {t['model']}")


@app.command()
def status(training_id: str, logs: bool = typer.Option(False, "--logs")) -> None:
    """One training's status (and its logs with --logs)."""
    try:
        t = Client().training(training_id)
    except APIError as error:
        _fail(error)
    typer.echo(f"{t['id']}: {t['status']} ({t['stage']})")
    for key in ("model", "version", "error"):
        if t.get(key):
            typer.echo(f"  {key}: {t[key]}")
    if t["metrics"]:
        typer.echo(f"  metrics: {json.dumps(t['metrics'])}")
    if logs and t.get("logs"):
        typer.echo(t["logs"].rstrip("\n"))


@app.command()
def download(training_id: str, output: Path | None = typer.Option(None, "-o", "--output")) -> None:
    """Download a training's weights (output.zip)."""
    try:
        path = Client().download(training_id, output or Path(f"{training_id}.zip"))
    except APIError as error:
        _fail(error)
    typer.echo(str(path))


@app.command()
def cancel(training_id: str) -> None:
    """Cancel a training: stops the trainer's prediction."""
    try:
        typer.echo(Client().cancel(training_id)["status"])
    except APIError as error:
        _fail(error)


@app.command()
def predict(
    model: str = typer.Argument(..., help="owner/name or owner/name:VERSION"),
    inputs: list[str] = typer.Option([], "--input", "-i", help="key=value (JSON; @file)"),
    output: Path = typer.Option(Path(), "-o", "--output", help="folder for the files"),
) -> None:
    """Generate with a model version; file outputs are written to --output."""
    name, _, version = model.partition(":")
    try:
        result = Client().predict(name, parse_inputs(inputs), version or None)
    except APIError as error:
        _fail(error)
    if result.get("status") != "succeeded":
        typer.secho(f"failed: {result.get('error')}", fg="red", err=True)
        raise typer.Exit(1)
    outputs = result["output"] if isinstance(result["output"], list) else [result["output"]]
    output.mkdir(parents=True, exist_ok=True)
    for index, item in enumerate(outputs):
        if isinstance(item, str) and item.startswith("data:"):
            header, _, payload = item.partition(",")
            suffix = {"image/png": ".png", "image/jpeg": ".jpg"}.get(header[5:].split(";")[0], "")
            path = output / f"output-{index}{suffix}"
            path.write_bytes(base64.b64decode(payload))
            typer.echo(str(path))
        else:
            typer.echo(json.dumps(item))


@app.command()
def versions(
    model: str | None = typer.Argument(None, help="owner/name; none: trainers, templates"),
):
    """Versions of a model (with notes), or the trainer and template versions you can use."""
    try:
        rows = Client().versions(model)
    except APIError as error:
        _fail(error)
    for v in rows:
        typer.echo(
            f"{v['id']}  {v['kind']:<8} {v['target']:<20} {v['created_at']}  {v['notes'] or ''}"
        )


@app.command()
def worker(
    name: str | None = typer.Option(None, help="a stable name: a restarted worker re-attaches"),
    gpu: str | None = typer.Option(None, help="the GPU this worker's trainings use"),
) -> None:
    """Run a worker for the job queue (one training at a time)."""
    from api import worker as worker_module

    worker_module.main(name, gpu)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
