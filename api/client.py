"""A small client for the API (used by the CLI, the demo, the benchmark and the tests)."""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import time
from pathlib import Path

import httpx


class APIError(RuntimeError):
    def __init__(self, status: int, detail):
        self.status, self.detail = status, detail
        super().__init__(f"HTTP {status}: {json.dumps(detail)[:2000]}")


def data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"


class Client:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 120):
        self.url = (url or os.environ.get("DREAMBOOTH_API_URL") or "http://127.0.0.1:5000").rstrip(
            "/"
        )
        token = token or os.environ.get("DREAMBOOTH_API_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response):
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            raise APIError(response.status_code, detail)
        return response.json()

    def train(self, payload: dict) -> dict:
        return self._json(self.http.post("/v1/trainings", json=payload))

    def training(self, training_id: str) -> dict:
        return self._json(self.http.get(f"/v1/trainings/{training_id}"))

    def trainings(self, limit: int = 20, cursor: str | None = None) -> dict:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        return self._json(self.http.get("/v1/trainings", params=params))

    def cancel(self, training_id: str) -> dict:
        return self._json(self.http.post(f"/v1/trainings/{training_id}/cancel"))

    def deliveries(self, training_id: str) -> list[dict]:
        return self._json(self.http.get(f"/v1/trainings/{training_id}/webhooks"))["results"]

    def versions(self, model: str | None = None) -> list[dict]:
        path = f"/v1/models/{model}/versions" if model else "/v1/versions"
        return self._json(self.http.get(path))["results"]

    def predict(self, model: str, inputs: dict, version: str | None = None) -> dict:
        body = {"input": inputs, **({"version": version} if version else {})}
        return self._json(
            self.http.post(f"/v1/models/{model}/predictions", json=body, timeout=1800)
        )

    def secret(self) -> str:
        return self._json(self.http.get("/v1/webhooks/default/secret"))["key"]

    def download(self, training_id: str, destination: Path) -> Path:
        with self.http.stream("GET", f"/v1/trainings/{training_id}/weights") as response:
            if response.status_code >= 400:
                response.read()
                self._json(response)
            with Path(destination).open("wb") as out:
                for chunk in response.iter_bytes(1024 * 1024):
                    out.write(chunk)
        return Path(destination)

    def wait(
        self, training_id: str, timeout: float = 3600, every: float = 0.5, on_poll=None
    ) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            t = self.training(training_id)
            if on_poll:
                on_poll(t)
            if t["status"] in ("succeeded", "failed", "canceled"):
                return t
            if time.monotonic() > deadline:
                raise TimeoutError(f"training {training_id} still {t['status']} after {timeout}s")
            time.sleep(every)
