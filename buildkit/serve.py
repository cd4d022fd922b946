"""Serve a target over Cog's real HTTP server (coglet), as its image would, without Docker.

    script/serve trainer                  # POST /predictions -> output.zip (the DreamBooth API way)
    script/serve trainer --mode train     # POST /trainings -> {"weights": ...} (Cog training API)
    script/serve vanilla                  # a template; weights from $WEIGHTS_DIR (default weights/)
    script/serve vanilla --context DIR    # serve a context written by script/build-template
    script/serve api                      # the trainings API, with its registry and a worker

The input schema is generated from the code first, exactly where `cog build` puts it
(`.cog/openapi_schema.json` beside cog.yaml), so bad inputs get 422 as on Replicate. The port is
$PORT (default 5000); the host is 127.0.0.1 unless --host says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from buildkit import schema, targets


def server_command(host: str, mode: str, upload_url: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "cog.server.http", "--host", host]
    if mode == "train":
        command += ["--x-mode", "train"]
    if upload_url:  # file outputs are PUT there and returned as URLs instead of data URIs
        command += ["--upload-url", upload_url]
    return command


def server_env(
    target: targets.Target, root: Path, port: int | None, baked: bool = False
) -> dict[str, str]:
    """The environment the image would have: cog.yaml's `environment:` plus Cog's own variables.

    Paths in the target's environment point into /src in the image; locally they are resolved
    under `root`. The caller's own values win, except for a built context (`baked`), whose
    cog.yaml environment is what its image would have.
    """
    env = dict(os.environ)
    for key, value in target.environment.items():
        local = str(root / value.removeprefix("/src/")) if value.startswith("/src/") else value
        if baked:
            env[key] = local
        else:
            env.setdefault(key, local)
    env["COG_PREDICT_TYPE_STUB"] = target.run
    if target.train:
        env["COG_TRAIN_TYPE_STUB"] = target.train
    env.setdefault("COG_LOG_LEVEL", "warning")
    # coglet starts its worker as `python` from PATH: make that this interpreter (the venv's).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    if port is not None:
        env["PORT"] = str(port)
    return env


def prepare(target_name: str, root: Path, mode: str, context: bool = False) -> targets.Target:
    if context:  # a built context: its own cog.yaml and schema, as in the image
        target = targets.from_cog_yaml(root / "cog.yaml")
        if target.name != target_name:
            raise SystemExit(f"{root} is a build context for {target.name}, not {target_name}")
        if not (root / ".cog" / "openapi_schema.json").is_file():
            schema.write(root, target.run, target.train)
        return target
    target = targets.get(target_name)
    if mode == "train" and not target.train:
        raise SystemExit(f"{target_name} has no train: entry; only the trainer can --mode train")
    schema.write(root, target.run, target.train)
    return target


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["api"]:  # not a Cog target: the trainings API (api/stack.py)
        from api import stack

        stack.main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="trainer, or a template name (see script/build-template)")
    parser.add_argument("--mode", choices=["predict", "train"], default="predict")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None, help="default: $PORT or 5000")
    parser.add_argument("--context", type=Path, help="serve a built context instead of the repo")
    parser.add_argument("--upload-url", help="PUT file outputs to this URL (coglet's option)")
    args = parser.parse_args(argv)
    root = (args.context or targets.REPO_ROOT).resolve()
    target = prepare(args.target, root, args.mode, context=args.context is not None)
    env = server_env(target, root, args.port, baked=args.context is not None)
    os.chdir(root)
    command = server_command(args.host, args.mode, args.upload_url)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
