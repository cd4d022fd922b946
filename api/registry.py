"""A client for the OCI distribution API (the registry's own HTTP API), through httpx.

Blobs are uploaded in one streamed PATCH whose digest is computed on the way, so a layer is read
once and never held in memory; layers another repository already has are *mounted*, which moves
no bytes at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import httpx

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    [
        MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


class RegistryError(RuntimeError):
    """The registry refused, or did not answer; the message says which and where."""


class NotFoundError(RegistryError):
    pass


@dataclass(frozen=True)
class Blob:
    digest: str
    size: int


def _with_digest(location: str, digest: str) -> httpx.URL:
    """The upload URL the registry gave (with its own state query), plus ?digest=."""
    return httpx.URL(location).copy_merge_params({"digest": digest})


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(timeout, connect=5.0))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise RegistryError(
                f"the registry at {self.url} is not answering ({type(error).__name__}: {error})"
            ) from None
        if response.status_code == 404:
            raise NotFoundError(f"{path} not found in the registry at {self.url}")
        if response.status_code >= 400:
            raise RegistryError(
                f"the registry at {self.url} answered {response.status_code} to {method} "
                f"{path}: {response.text[:300]}"
            )
        return response

    def ping(self) -> bool:
        try:
            return self.http.get("/v2/", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def has_blob(self, repository: str, digest: str) -> bool:
        try:
            self._request("HEAD", f"/v2/{repository}/blobs/{digest}")
        except NotFoundError:
            return False
        return True

    def mount(self, repository: str, digest: str, source: str) -> bool:
        """Make `source`'s blob part of `repository` without moving its bytes."""
        if self.has_blob(repository, digest):
            return True
        response = self._request(
            "POST", f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": source}
        )
        return response.status_code == 201

    def upload(self, repository: str, chunks: Iterable[bytes]) -> Blob:
        """Stream `chunks` into one blob; its digest is computed as the bytes go by."""
        digest, size = hashlib.sha256(), 0

        def body() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                if chunk:
                    digest.update(chunk)
                    size += len(chunk)
                    yield chunk

        start = self._request("POST", f"/v2/{repository}/blobs/uploads/")
        patched = self._request(
            "PATCH",
            start.headers["Location"],
            content=body(),
            headers={"Content-Type": "application/octet-stream"},
        )
        blob = Blob("sha256:" + digest.hexdigest(), size)
        self._request("PUT", _with_digest(patched.headers["Location"], blob.digest))
        return blob

    def upload_bytes(self, repository: str, data: bytes) -> Blob:
        blob = Blob(sha256(data), len(data))
        if not self.has_blob(repository, blob.digest):
            start = self._request("POST", f"/v2/{repository}/blobs/uploads/")
            self._request(
                "PUT",
                _with_digest(start.headers["Location"], blob.digest),
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        return blob

    def blob(self, repository: str, digest: str) -> bytes:
        data = self._request("GET", f"/v2/{repository}/blobs/{digest}").content
        if sha256(data) != digest:
            raise RegistryError(f"blob {digest} of {repository} does not match its digest")
        return data

    def stream_blob(self, repository: str, digest: str):
        """A context manager over the streamed response of one blob."""
        try:
            return self.http.stream("GET", f"/v2/{repository}/blobs/{digest}")
        except httpx.TransportError as error:
            raise RegistryError(f"the registry at {self.url} is not answering ({error})") from None

    def put_manifest(self, repository: str, reference: str, manifest: dict) -> str:
        data = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        response = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            content=data,
            headers={"Content-Type": manifest.get("mediaType", MANIFEST)},
        )
        digest = sha256(data)
        if response.headers.get("Docker-Content-Digest", digest) != digest:
            raise RegistryError(f"{repository}:{reference} was stored under another digest")
        return digest

    def manifest(self, repository: str, reference: str) -> tuple[dict, str]:
        response = self._request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}
        )
        digest = sha256(response.content)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"manifest {reference} of {repository} does not match its digest")
        return json.loads(response.content), digest

    def has_manifest(self, repository: str, reference: str) -> bool:
        try:
            self._request(
                "HEAD", f"/v2/{repository}/manifests/{reference}", headers={"Accept": ACCEPT}
            )
        except NotFoundError:
            return False
        return True

    def repositories(self) -> list[str]:
        names, last = [], None
        while True:
            params = {"n": 1000, **({"last": last} if last else {})}
            page = self._request("GET", "/v2/_catalog", params=params).json()
            batch = page.get("repositories") or []
            names += batch
            if len(batch) < 1000:
                return names
            last = batch[-1]

    def tags(self, repository: str) -> list[str]:
        try:
            return self._request("GET", f"/v2/{repository}/tags/list").json().get("tags") or []
        except NotFoundError:
            return []

    def config(self, repository: str, manifest: dict) -> dict:
        return json.loads(self.blob(repository, manifest["config"]["digest"]))
