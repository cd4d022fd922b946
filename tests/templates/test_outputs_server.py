"""Where a template server writes its images: one owned folder, one request's images, removed."""

from buildkit.cog_client import succeeded
from templates.outputs import _running
from tests.templates.helpers import SMALL, serve


def a_pid_that_is_not_running() -> int:
    return next(pid for pid in range(4_000_000, 3_000_000, -1) if not _running(pid))


def test_outputs_stay_in_one_owned_folder_holding_only_the_last_request(
    trained_weights, template_weights, tmp_path
):
    root = tmp_path / "outputs"
    stale = root / f"vanilla-{a_pid_that_is_not_running()}"
    stale.mkdir(parents=True)
    (stale / "out-0.png").write_bytes(b"left by a killed server")
    env = {"TEMPLATE_OUTPUTS_DIR": str(root)}
    with serve("vanilla", trained_weights, template_weights("vanilla"), tmp_path, **env) as server:
        assert not stale.exists()
        succeeded(*server.predict(**SMALL, num_outputs=3, seed=1))
        (folder,) = root.iterdir()
        assert sorted(p.name for p in folder.iterdir()) == ["out-0.png", "out-1.png", "out-2.png"]
        assert oct(folder.stat().st_mode & 0o777) == "0o700"
        succeeded(*server.predict(**SMALL, num_outputs=1, seed=1))
        assert [p.name for p in folder.iterdir()] == ["out-0.png"]
    assert list(root.iterdir()) == []  # removed when the server stopped
