"""The API's edge: tokens, owners, input checked against the trainer's schema, SSRF, paging.

One API with no worker: trainings stay queued, which is all these tests need.
"""

from __future__ import annotations

import sqlite3

import pytest

from api.client import APIError
from tests.api.conftest import seed_payload
from tests.api.helpers import API, token


@pytest.fixture(scope="module")
def service(tmp_path_factory, registry):
    from tests.api.conftest import env_for

    home = tmp_path_factory.mktemp("edge")
    env = env_for(home / "home", registry.url)
    api = API(env, home).start()
    yield api, env, home / "home"
    api.stop()


@pytest.fixture(scope="module")
def tokens(service):
    _, env, _ = service
    return {"alice": token(env, "alice"), "bob": token(env, "bob")}


@pytest.fixture
def payload(trainer_version, template_version):
    body = seed_payload(trainer_version, template_version, "https://example.com/person.zip", None)
    body.pop("webhook_completed")
    body["model"] = "alice/dog"
    return body


def detail(error: APIError) -> dict[str, str]:
    return {".".join(str(p) for p in d["loc"][1:]): d["msg"] for d in error.detail}


def test_no_token_is_401_and_a_wrong_one_too(service):
    api, _, _ = service
    for value in (None, "dbt_not-a-real-token"):
        with pytest.raises(APIError) as caught:
            api.client(value).trainings()
        assert caught.value.status == 401
        assert "dreambooth token create" in str(caught.value.detail)


def test_another_owners_training_model_and_weights_are_404(service, tokens, payload):
    api, _, _ = service
    alice, bob = api.client(tokens["alice"]), api.client(tokens["bob"])
    made = alice.train(payload)
    assert alice.training(made["id"])["status"] == "starting"
    for call in (
        lambda: bob.training(made["id"]),
        lambda: bob.cancel(made["id"]),
        lambda: bob.deliveries(made["id"]),
        lambda: bob.download(made["id"], service[2] / "stolen.zip"),
        lambda: bob.versions("alice/dog"),
    ):
        with pytest.raises(APIError) as caught:
            call()
        assert caught.value.status == 404
    assert made["id"] not in [t["id"] for t in bob.trainings()["results"]]
    with pytest.raises(APIError) as caught:
        bob.train(payload)  # pushing to alice/dog
    assert caught.value.status == 403 and "alice" in str(caught.value.detail)


def test_tokens_are_stored_only_as_hashes(service, tokens):
    _, _, home = service
    rows = sqlite3.connect(home / "db.sqlite").execute("SELECT token_hash, hint FROM tokens")
    stored = " ".join(" ".join(row) for row in rows)
    for value in tokens.values():
        assert value not in stored
        assert len(value) > 40


def test_the_seed_payload_is_accepted_unchanged(service, tokens, trainer_version, template_version):
    api, _, _ = service
    body = seed_payload(
        trainer_version,
        template_version,
        "https://example.com/person.zip",
        "https://example.com/dreambooth-webhook",
    )
    made = api.client(token(service[1], "yourusername")).train(body)
    assert made["status"] == "starting" and made["model"] == "yourusername/yourmodel"
    assert made["input"] == body["input"] and made["notes"] == body["notes"]
    assert made["trainer_version"] == trainer_version
    assert made["webhook_completed"] == "https://example.com/dreambooth-webhook"
    assert {"id", "created_at", "error", "logs", "metrics", "status", "version"} <= set(made)


def test_unknown_input_fields_get_422_with_the_closest_name(service, tokens, payload):
    api, _, _ = service
    payload["input"]["instance_promt"] = payload["input"].pop("instance_prompt")
    payload["input"]["learning_rat"] = 1e-5
    with pytest.raises(APIError) as caught:
        api.client(tokens["alice"]).train(payload)
    assert caught.value.status == 422
    errors = detail(caught.value)
    assert "did you mean 'instance_prompt'" in errors["input.instance_promt"]
    assert "did you mean 'learning_rate'" in errors["input.learning_rat"]
    assert errors["input.instance_prompt"] == "field required"


def test_types_bounds_and_choices_are_checked_against_the_trainer_schema(service, tokens, payload):
    api, _, _ = service
    payload["input"].update(resolution=16, lr_scheduler="warp", max_train_steps="many")
    with pytest.raises(APIError) as caught:
        api.client(tokens["alice"]).train(payload)
    errors = detail(caught.value)
    assert "minimum of 64" in errors["input.resolution"] or "64" in errors["input.resolution"]
    assert "constant" in errors["input.lr_scheduler"]
    assert "integer" in errors["input.max_train_steps"]


def test_unknown_top_level_fields_and_bad_versions_are_named(service, tokens, payload):
    api, _, _ = service
    payload["webhook_complete"] = "https://example.com/hook"
    payload["trainer_version"] = "cd3f925f"
    payload["template_version"] = "a" * 64
    with pytest.raises(APIError) as caught:
        api.client(tokens["alice"]).train(payload)
    assert "did you mean 'webhook_completed'" in detail(caught.value)["webhook_complete"]
    payload.pop("webhook_complete")
    with pytest.raises(APIError) as caught:
        api.client(tokens["alice"]).train(payload)
    errors = detail(caught.value)
    assert "not a version id" in errors["trainer_version"]
    assert "no template version sha256:" + "a" * 64 in errors["template_version"]
    assert "script/push TEMPLATE" in errors["template_version"]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("/etc/passwd", "server-local paths"),
        ("file:///etc/passwd", "server-local paths"),
        ("work/api/db.sqlite", "server-local paths"),
        ("data:application/zip;base64,@@@", "does not decode"),
    ],
)
def test_file_inputs_must_be_urls_or_bytes(service, tokens, payload, value, why):
    api, _, _ = service
    payload["input"]["instance_data"] = value
    with pytest.raises(APIError) as caught:
        api.client(tokens["alice"]).train(payload)
    assert why in detail(caught.value)["input.instance_data"]


def test_pages_of_trainings_come_newest_first_without_repeats(service, tokens, payload):
    api, _, _ = service
    client = api.client(token(service[1], "pager"))
    payload["model"] = "pager/dog"
    made = [client.train(payload)["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = client.trainings(limit=2, cursor=cursor)
        seen += [t["id"] for t in page["results"]]
        if not page["next"]:
            break
        cursor = page["next"].split("cursor=")[1].split("&")[0]
    assert seen == made[::-1]


def test_canceling_a_queued_training_is_immediate(service, tokens, payload):
    api, _, _ = service
    client = api.client(tokens["alice"])
    made = client.train(payload)
    canceled = client.cancel(made["id"])
    assert canceled["status"] == "canceled" and canceled["completed_at"]
    assert client.training(made["id"])["status"] == "canceled"


@pytest.fixture(scope="module")
def strict(tmp_path_factory, registry):
    """An API as an operator runs it: private addresses refused."""
    from tests.api.conftest import env_for

    home = tmp_path_factory.mktemp("strict")
    env = env_for(home / "home", registry.url)
    env.pop("DREAMBOOTH_ALLOW_PRIVATE_URLS")
    api = API(env, home).start()
    yield api, token(env, "alice")
    api.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/photos.zip",
        "http://localhost/photos.zip",
        "http://10.1.2.3/photos.zip",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/photos.zip",
        "http://[::ffff:192.168.0.1]/x.zip",
    ],
)
def test_private_urls_are_refused_for_inputs_and_webhooks(strict, payload, url):
    api, alice = strict
    payload["input"]["instance_data"] = url
    payload["webhook_completed"] = url
    with pytest.raises(APIError) as caught:
        api.client(alice).train(payload)
    errors = detail(caught.value)
    assert "non-public address" in errors["input.instance_data"]
    assert "non-public address" in errors["webhook_completed"]
