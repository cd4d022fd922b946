"""The API's parts on their own: address checks, layers, migrations, signatures, input checks,
and pulling a hostile image from the real registry."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from standardwebhooks.webhooks import Webhook

from api import db, inputs, oci, webhooks
from api.models import Base
from api.pull import pull
from api.registry import Registry
from api.safe_fetch import URLRefusedError, check


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.zip",
        "http://10.0.0.8/a.zip",
        "http://172.16.3.4/a.zip",
        "http://192.168.1.1/a.zip",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/a.zip",
        "http://0.0.0.0/a.zip",
        "http://[::1]/a.zip",
        "http://[fd00::1]/a.zip",
        "http://[::ffff:10.0.0.1]/a.zip",
        "http://224.0.0.1/a.zip",
    ],
)
def test_non_public_addresses_are_refused(url):
    with pytest.raises(URLRefusedError, match="non-public address"):
        check(url, "input.instance_data", allow_private=False)
    assert check(url, "x", allow_private=True)[2] is not None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/a.zip", "not an http"),
        ("file:///etc/passwd", "not an http"),
        ("https://user:pw@example.com/a.zip", "credentials"),
        ("/etc/passwd", "not an http"),
    ],
)
def test_only_plain_http_urls_are_fetched(url, why):
    with pytest.raises(URLRefusedError, match=why):
        check(url, "input.instance_data", allow_private=False)


def test_a_public_address_is_allowed():
    assert check("https://8.8.8.8/x.zip", "f", allow_private=False) == ("8.8.8.8", 443, "8.8.8.8")


def test_layers_are_reproducible_and_read_back_by_tarfile(tmp_path):
    (tmp_path / "w" / "unet").mkdir(parents=True)
    (tmp_path / "w" / "unet" / "model.safetensors").write_bytes(b"\x01" * 1000)
    (tmp_path / "w" / "model_index.json").write_text("{}")
    first = b"".join(oci.tar_stream(oci.directory_entries(tmp_path / "w", "src/weights")))
    again = b"".join(oci.tar_stream(oci.directory_entries(tmp_path / "w", "src/weights")))
    assert first == again
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        names = archive.getnames()
        assert archive.extractfile("src/weights/unet/model.safetensors").read() == b"\x01" * 1000
    assert names == [
        "src",
        "src/weights",
        "src/weights/model_index.json",
        "src/weights/unet",
        "src/weights/unet/model.safetensors",
    ]


def test_zip_members_become_tar_entries_without_escapes(tmp_path):
    path = tmp_path / "output.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model_index.json", "{}")
        archive.writestr("../escape.txt", "no")
        archive.writestr("unet/weights.safetensors", b"\x02" * 4096)
    with zipfile.ZipFile(path) as archive:
        data = b"".join(oci.tar_stream(oci.zip_entries(archive, "src/weights")))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert "src/weights/unet/weights.safetensors" in archive.getnames()
        assert not any("escape" in name for name in archive.getnames())


def test_the_migrations_create_exactly_the_models_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db.migrate(url)
    db.migrate(url)  # idempotent
    with db.engine(url).connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_upgrading_an_old_database_keeps_its_rows(tmp_path):
    from alembic import command
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    command.upgrade(db.alembic_config(url), "0001")
    with db.engine(url).begin() as connection:
        connection.execute(text("INSERT INTO owners VALUES ('old', 'whsec_x', '2026-01-01')"))
    db.migrate(url)
    with db.engine(url).connect() as connection:
        assert connection.execute(text("SELECT name FROM owners")).scalar() == "old"
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
            "0002"
        )


def test_webhook_headers_verify_with_standard_webhooks():
    from api.auth import new_webhook_secret

    secret = new_webhook_secret()
    body = json.dumps({"id": "t1", "status": "succeeded"})
    at = datetime.now(timezone.utc)
    headers = webhooks.headers(secret, "msg_1", body, at)
    assert Webhook(secret).verify(body, headers) == {"id": "t1", "status": "succeeded"}
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == str(
        int(at.timestamp())
    )


def test_backoff_doubles_and_is_capped():
    from api.settings import load

    settings = load()
    delays = [webhooks.delay(settings, n) for n in range(1, 20)]
    assert delays[1] == 2 * delays[0] and delays[-1] == webhooks.MAX_DELAY


SCHEMA = {
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "required": ["prompt", "photos"],
                "properties": {
                    "prompt": {"type": "string"},
                    "steps": {"type": "integer", "minimum": 1},
                    "photos": {"type": "string", "format": "uri"},
                    "seed": {"type": "integer", "nullable": True},
                },
            }
        }
    }
}


def test_input_checks_name_fields_and_suggest_the_closest():
    checked = inputs.validate(
        {"promt": "x", "photos": "/data/p.zip", "steps": 0, "seed": None}, SCHEMA, True
    )
    errors = {e["loc"][-1]: e["msg"] for e in checked.errors}
    assert "did you mean 'prompt'" in errors["promt"]
    assert errors["prompt"] == "field required"
    assert "server-local paths" in errors["photos"]
    assert "minimum" in errors["steps"] or "less than" in errors["steps"]
    assert "seed" not in errors  # nullable


def test_a_hostile_layer_is_refused_when_pulled(registry, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("src/../../escaped.txt")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"no"))
    with Registry(registry.url) as client:
        layer = client.upload_bytes("evil/image", buffer.getvalue())
        config = client.upload_bytes("evil/image", b"{}")
        digest = client.put_manifest(
            "evil/image",
            "latest",
            oci.manifest(
                oci.descriptor(oci.CONFIG, config.digest, config.size),
                [oci.descriptor(oci.TAR, layer.digest, layer.size)],
            ),
        )
        with pytest.raises(tarfile.OutsideDestinationError):
            pull(client, "evil/image", digest, tmp_path / "versions")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_trainer_output_is_a_pipeline_an_adapter_or_refused_by_name(tmp_path):
    from api.build import _unpack

    pipeline = tmp_path / "output.zip"
    with zipfile.ZipFile(pipeline, "w") as archive:
        archive.writestr("model_index.json", "{}")
    adapter = tmp_path / "trained_model.tar"
    (tmp_path / "manifest.json").write_text("{}")
    with tarfile.open(adapter, "w") as archive:
        archive.add(tmp_path / "manifest.json", arcname="manifest.json")
    neither = tmp_path / "other.zip"
    with zipfile.ZipFile(neither, "w") as archive:
        archive.writestr("notes.txt", "hello")
    text = tmp_path / "output.txt"
    text.write_text("not an archive")
    assert _unpack(pipeline, tmp_path / "a") is False
    assert _unpack(adapter, tmp_path / "b") is True and (tmp_path / "b" / "manifest.json").is_file()
    with pytest.raises(ValueError, match=r"neither model_index\.json nor manifest\.json"):
        _unpack(neither, tmp_path / "c")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        _unpack(text, tmp_path / "d")


def test_an_adapter_output_on_a_trainer_without_its_base_is_refused_by_name(
    registry, quick_version, template_version, tmp_path
):
    from api.build import build_version

    adapter = tmp_path / "output.zip"
    with zipfile.ZipFile(adapter, "w") as archive:
        archive.writestr("manifest.json", "{}")
    with Registry(registry.url) as client, pytest.raises(ValueError, match="no /src/base-weights"):
        build_version(
            client,
            "cog/vanilla",
            template_version,
            adapter,
            "erin/adapter",
            "t1",
            {},
            trainer=("cog/quick", quick_version),
        )
