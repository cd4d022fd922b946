"""Device-level GPU memory in use while a child runs (its caches included), less the idle level.

`torch.cuda.max_memory_allocated` only sees tensors of one process; what a user can fit on a GPU
is what the device reports. Sampled through NVML (`nvidia-ml-py`) every 20 ms; without NVML or
a GPU, `peak_mb` stays None.
"""

from __future__ import annotations

import threading
import time

SAMPLE_EVERY_S = 0.02


class DevicePeak:
    def __init__(self, device_index: int = 0):
        self.index, self.peak_mb = device_index, None
        self._stop = threading.Event()

    def __enter__(self) -> DevicePeak:
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        except Exception:  # no NVML library or no GPU: nothing to measure
            self._handle = None
            return self
        self._nvml = pynvml
        self._idle = self._used()
        self._top = self._idle
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _used(self) -> int:
        return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._top = max(self._top, self._used())
            time.sleep(SAMPLE_EVERY_S)

    def __exit__(self, *exc) -> None:
        if self._handle is None:
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = round((self._top - self._idle) / 2**20, 1)
