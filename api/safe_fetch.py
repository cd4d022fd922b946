"""Fetching user URLs without becoming a proxy into the operator's network (SSRF).

A URL is allowed when it is http(s) and every address its host resolves to is a global one;
loopback, private, link-local, shared (CGNAT), multicast and reserved addresses are refused,
for input files and webhooks alike, unless the operator sets DREAMBOOTH_ALLOW_PRIVATE_URLS=1.
The connection goes to the address that was checked (the host name is still used for TLS and
the Host header), so a second DNS answer cannot swap in a private address; every redirect is
checked again. Bodies are bounded in size and time.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

MAX_REDIRECTS = 5


class URLRefusedError(ValueError):
    """The URL may not be fetched; the message names the field and says why."""


def _addresses(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise URLRefusedError(f"host {host!r} does not resolve ({error.strerror})") from None
    return sorted({info[4][0] for info in infos})


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check(
    url: str, field: str, allow_private: bool, connect: bool = True
) -> tuple[str, int, str | None]:
    """(host, port, address to connect to) for an allowed URL; URLRefusedError otherwise.

    With `connect=False` (checking a request before anything is fetched) a host that does not
    resolve yet is let through; the fetch checks again and fails with a clear message then.
    """
    if not isinstance(url, str):
        raise URLRefusedError(f"{field}: expected a URL string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise URLRefusedError(
            f"{field}: {url[:100]!r} is not an http(s) URL (use https://…, or a data: URI)"
        )
    if parts.username or parts.password:
        raise URLRefusedError(f"{field}: credentials in the URL are not accepted")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if allow_private and not connect:
        return parts.hostname, port, None
    try:
        addresses = _addresses(parts.hostname, port)
    except URLRefusedError as error:
        if not connect:
            return parts.hostname, port, None
        raise URLRefusedError(f"{field}: {error}") from None
    if not allow_private:
        private = [a for a in addresses if not _is_public(a)]
        if private:
            raise URLRefusedError(
                f"{field}: {parts.hostname} resolves to a non-public address ({private[0]}); "
                "loopback and private networks are refused (operators can allow them with "
                "DREAMBOOTH_ALLOW_PRIVATE_URLS=1)"
            )
    return parts.hostname, port, addresses[0]


def pinned_request(method: str, url: str, address: str, host: str) -> httpx.Request:
    """A request that connects to `address` while speaking to `host` (Host header and SNI)."""
    parts = urlsplit(url)
    literal = f"[{address}]" if ":" in address else address
    target = httpx.URL(url).copy_with(host=literal.strip("[]"))
    port_suffix = f":{parts.port}" if parts.port else ""
    return httpx.Request(
        method,
        target,
        headers={"Host": f"{host}{port_suffix}", "User-Agent": "dreambooth-api"},
        extensions={"sni_hostname": host},
    )


def fetch(
    url: str, destination: Path, field: str, allow_private: bool, max_bytes: int, timeout: float
) -> int:
    """Download `url` to `destination` (bounded); returns its size."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=httpx.Timeout(min(timeout, 30.0), connect=10.0)) as client:
        for _ in range(MAX_REDIRECTS + 1):
            host, _port, address = check(url, field, allow_private)
            request = pinned_request("GET", url, address, host)
            try:
                response = client.send(request, stream=True)
            except httpx.TransportError as error:
                raise URLRefusedError(f"{field}: could not fetch {url[:100]} ({error})") from None
            try:
                if response.is_redirect and "location" in response.headers:
                    url = str(httpx.URL(url).join(response.headers["location"]))
                    continue
                if response.status_code != 200:
                    raise URLRefusedError(
                        f"{field}: {url[:100]} answered HTTP {response.status_code}"
                    )
                return _save(response, destination, field, max_bytes, deadline)
            finally:
                response.close()
    raise URLRefusedError(f"{field}: more than {MAX_REDIRECTS} redirects from {url[:100]}")


def _save(response, destination: Path, field: str, max_bytes: int, deadline: float) -> int:
    declared = int(response.headers.get("content-length") or 0)
    if declared > max_bytes:
        raise URLRefusedError(f"{field}: {declared} bytes is over the limit of {max_bytes}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    size = 0
    try:
        with partial.open("wb") as out:
            for chunk in response.iter_bytes(1024 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise URLRefusedError(f"{field}: over the limit of {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise URLRefusedError(f"{field}: the download took too long")
                out.write(chunk)
        partial.replace(destination)
    except httpx.TransportError as error:
        raise URLRefusedError(f"{field}: the download broke off ({error})") from None
    finally:
        partial.unlink(missing_ok=True)
    return size
