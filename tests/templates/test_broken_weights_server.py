"""A broken weights folder: the template boots READY and every prediction says what is wrong.

tests/core/test_weights.py checks every breakage's message in-process; here one breakage per
stage that finds it goes through the real server: the folder check (a pickle), loading (a config
that does not match its weights) and the value check (NaN weights).
"""

import pytest

from tests.templates.broken_weights import BREAKAGES, assert_names_the_problem, broken_copy
from tests.templates.helpers import SMALL, serve

THROUGH_THE_SERVER = ("pickle_unet", "unet_config_mismatch", "nan_unet")


@pytest.mark.parametrize(
    "breakage", [b for b in BREAKAGES if b.name in THROUGH_THE_SERVER], ids=lambda b: b.name
)
def test_broken_weights_boot_ready_and_every_prediction_names_the_problem(
    breakage, trained_weights, template_weights, tmp_path
):
    weights = broken_copy(trained_weights, breakage, tmp_path)
    with serve("vanilla", weights, template_weights("vanilla"), tmp_path) as server:
        assert server.health()["status"] == "READY"
        for _ in range(2):  # the server keeps answering, with the same message
            status, body = server.predict(prompt="a cat", **SMALL)
            assert status == 200 and body["status"] == "failed", body
            assert_names_the_problem(body["error"], breakage, [tmp_path, weights])
            assert server.settles_ready()
