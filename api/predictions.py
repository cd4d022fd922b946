"""Running a model version: pulled once, served by its real Cog server, kept warm.

A version is unpacked from the registry (api/pull.py) and served with `script/serve TARGET
--context <its /src>`, exactly as a built context is. The most recently used servers stay up
(DREAMBOOTH_WARM_VERSIONS, default 1), so the next request skips the model's setup.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

from api.pull import pull
from api.registry import Registry
from api.settings import Settings
from buildkit import targets
from buildkit.cog_client import CogServer


class Pool:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.size = max(1, int(os.environ.get("DREAMBOOTH_WARM_VERSIONS", "1")))
        self.servers: OrderedDict[str, CogServer] = OrderedDict()
        self.locks: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()

    def _server(self, repository: str, digest: str) -> CogServer:
        with self.lock:
            if digest in self.servers:
                self.servers.move_to_end(digest)
                return self.servers[digest]
        with Registry(self.settings.registry) as registry:
            src = pull(registry, repository, digest, self.settings.versions_dir)
        target = targets.from_cog_yaml(src / "cog.yaml").name
        logs = self.settings.home / "serving"
        logs.mkdir(parents=True, exist_ok=True)
        env = {"COG_TEST_LOG_DIR": str(logs), "TMPDIR": str(logs)}
        server = CogServer(target, env=env, context=src, setup_timeout=900).__enter__()
        with self.lock:
            self.servers[digest] = server
            while len(self.servers) > self.size:
                _, old = self.servers.popitem(last=False)
                old.__exit__(None, None, None)
        return server

    def predict(self, repository: str, digest: str, inputs: dict) -> tuple[int, dict]:
        with self.lock:
            lock = self.locks.setdefault(digest, threading.Lock())
        with lock:  # one prediction at a time per server (coglet's own concurrency is 1)
            server = self._server(repository, digest)
            return server.predict(**inputs)

    def close(self) -> None:
        with self.lock:
            for server in self.servers.values():
                server.__exit__(None, None, None)
            self.servers.clear()
