"""The official `openai` package's images API against Switchyard's HTTP port."""

import base64
import io
import os

import openai
import pytest
from PIL import Image


def client(http_address, key="none", ca=None):
    scheme = "https" if ca else "http"
    extra = {"http_client": openai.DefaultHttpx2Client(verify=ca)} if ca else {}
    return openai.OpenAI(base_url=f"{scheme}://{http_address}/v1", api_key=key, max_retries=0, **extra)


def test_generates_pngs(http_address, tmp_path):
    r = client(http_address).images.generate(model="dit-moe-fmnist", prompt="Ankle Boot", n=3, size="28x28", response_format="b64_json", extra_body={"steps": 8, "seed": 3, "sampler": "pc", "guidance": 2.0})
    assert len(r.data) == 3 and r.created > 0
    for i, d in enumerate(r.data):
        png = base64.b64decode(d.b64_json)
        (tmp_path / f"boot-{i}.png").write_bytes(png)
        assert Image.open(io.BytesIO(png)).size == (28, 28)
    assert r.data[0].revised_prompt == "ankle-boot"
    # the same seed gives the same images
    again = client(http_address).images.generate(prompt="ankle-boot", n=1, extra_body={"steps": 8, "seed": 3, "sampler": "pc", "guidance": 2.0})
    assert again.data[0].b64_json == r.data[0].b64_json


@pytest.mark.parametrize(
    "kwargs,status,param,text",
    [
        (dict(prompt="a cat"), 400, "prompt", "must be one of the model's class names: t-shirt, trouser"),
        (dict(prompt="bag", size="1024x1024"), 400, "size", 'must be "28x28"'),
        (dict(prompt="bag", response_format="url"), 400, "response_format", '"url" is not served'),
        (dict(prompt="bag", n=0), 400, "n", "n 0 must be >= 1"),
        (dict(prompt="bag", extra_body={"steps": 0}), 400, "steps", "steps 0 must be an integer >= 1"),
        (dict(prompt="bag", model="dall-e-3"), 404, "model", "is not served here"),
    ],
)
def test_errors_in_openai_shape(http_address, kwargs, status, param, text):
    with pytest.raises(openai.APIStatusError) as e:
        client(http_address).images.generate(**kwargs)
    assert e.value.status_code == status
    err = e.value.body
    assert err["param"] == param and text in err["message"], err
    assert err["type"] == "invalid_request_error"


def test_api_key_is_the_bearer_token_over_https(auth_http_address):
    ca = os.environ["SWITCHYARD_AUTH_CA"]
    with pytest.raises(openai.AuthenticationError) as e:
        client(auth_http_address, "wrong", ca).images.generate(prompt="bag")
    assert e.value.status_code == 401 and e.value.body["type"] == "authentication_error"
    models = client(auth_http_address, os.environ["SWITCHYARD_TEST_TOKEN"], ca).models.list()
    assert [m.id for m in models.data] == ["dit-moe-fmnist"]
