"""switchyard-client against a live cluster (started by npm test, or `npm start`)."""

import asyncio
import io
import os
import socket

import grpc
import numpy as np
import pytest
from PIL import Image

from switchyard_client import Accepted, AsyncClient, Client, Progress, Result, SwitchyardError


def test_readme_example(address):
    # the README's example, as written there
    from switchyard_client import Client, Progress, Result

    with Client(address) as client:
        for ev in client.generate(label=7, count=2, steps=6, seed=1, preview_interval=3):
            if isinstance(ev, Progress):
                print(f"step {ev.step}/{ev.steps}", "preview" if ev.previews else "")
            elif isinstance(ev, Result):
                for i, img in enumerate(ev.pil_images()):
                    img.save(f"/tmp/sneaker-{i}.png")
    assert Image.open("/tmp/sneaker-1.png").size == (28, 28)


def test_events_are_typed_with_numpy_previews_and_images(address):
    with Client(address) as c:
        events = list(c.generate(label=3, count=2, steps=4, sampler="heun", guidance=2.5, seed=11, preview_interval=2))
    assert isinstance(events[0], Accepted) and events[0].request_id
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert [len(p.previews) for p in progress] == [0, 2, 0, 2]
    assert progress[1].previews[0].shape == (1, 28, 28) and progress[1].previews[0].dtype == np.float32
    result = events[-1]
    assert isinstance(result, Result)
    assert result.seed == 11 and len(result.images) == 2
    assert result.images[0].shape == (1, 28, 28) and np.isfinite(result.images[0]).all()
    assert result.timings.model_evals > 0
    png = Image.open(io.BytesIO(result.pngs[0]))
    assert png.size == (28, 28)
    assert result.pil_images()[1].size == (28, 28)


def test_same_seed_same_images(address):
    with Client(address) as c:
        a = c.generate_images(label=5, steps=3, seed=42)
        b = c.generate_images(label=5, steps=3, seed=42)
    assert np.array_equal(a.images[0], b.images[0])


def test_guidance_interval(address):
    with Client(address) as c:
        whole = c.generate_images(label=4, steps=6, seed=3)
        same = c.generate_images(label=4, steps=6, seed=3, guidance_t_min=0.0, guidance_t_max=1.0)
        part = c.generate_images(label=4, steps=6, seed=3, guidance_t_min=0.3, guidance_t_max=0.7)
        with pytest.raises(SwitchyardError) as e:
            c.generate_images(label=4, steps=2, guidance_t_min=0.9, guidance_t_max=0.1)
    assert np.array_equal(whole.images[0], same.images[0])
    assert not np.array_equal(whole.images[0], part.images[0])
    assert whole.timings.guided_evals == 6 and 0 < part.timings.guided_evals < 6
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.field == "guidance_t_min"


def test_residual_reuse(address):
    with Client(address) as c:
        plain = c.generate_images(label=6, count=2, steps=10, seed=8)
        reused = c.generate_images(label=6, count=2, steps=10, seed=8, reuse_threshold=0.2)
        with pytest.raises(SwitchyardError) as e:
            c.generate_images(label=6, steps=2, reuse_threshold=1.5)
    assert (plain.timings.reused_evals, plain.timings.full_evals) == (0, 0)
    assert reused.timings.reused_evals > 0
    assert reused.timings.reused_evals + reused.timings.full_evals == 2 * 10
    assert not np.array_equal(plain.images[0], reused.images[0])
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.field == "reuse_threshold"


def test_bad_input_names_the_field(address):
    with Client(address) as c:
        with pytest.raises(SwitchyardError) as e:
            c.generate_images(label=3, steps=0)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.field == "steps"
    assert "steps 0 must be an integer >= 1" in e.value.message
    with pytest.raises(ValueError, match="sampler 'ddim'"):
        Client(address).generate_images(sampler="ddim")


def test_deadline(address):
    with Client(address) as c:
        with pytest.raises(SwitchyardError) as e:
            c.generate_images(label=1, count=8, steps=1000, timeout=0.3)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_cancel_by_id(address):
    with Client(address) as c:
        stream = c.generate(label=2, steps=1000, request_id="py-cancel-1")
        first = next(stream)
        assert isinstance(first, Accepted)
        assert c.cancel("py-cancel-1") is True
        with pytest.raises(SwitchyardError) as e:
            for _ in stream:
                pass
        assert e.value.code == grpc.StatusCode.CANCELLED


def test_leaving_the_loop_cancels(address):
    with Client(address) as c:
        for ev in c.generate(label=2, steps=1000):
            if isinstance(ev, Progress):
                break  # the generator's close cancels the call
        # the gateway is still fine afterwards
        assert c.generate_images(steps=1).images


def test_models(address):
    with Client(address) as c:
        (m,) = c.list_models()
        assert m.name == "dit-moe-fmnist" and m.num_classes == 10
        assert c.get_model("dit-moe-fmnist").class_names[7] == "sneaker"
        with pytest.raises(SwitchyardError) as e:
            c.get_model("nope")
        assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_retries_unavailable_then_fails_with_its_code():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there
    with Client(f"127.0.0.1:{port}", max_attempts=3, backoff_s=0.01) as c:
        with pytest.raises(SwitchyardError) as e:
            c.generate_images(steps=1, timeout=5)
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_token_is_sent(address):
    # an open gateway ignores tokens; the header must not break anything
    with Client(address, token="t0") as c:
        assert c.generate_images(steps=1).images
    auth = os.environ.get("SWITCHYARD_AUTH_ADDRESS")  # a gateway with tokens, from npm test
    if not auth:
        pytest.skip("SWITCHYARD_AUTH_ADDRESS is not set")
    # that gateway serves TLS with a test CA
    with open(os.environ["SWITCHYARD_AUTH_CA"], "rb") as f:
        ca = f.read()
    with Client(auth, token="wrong", root_certificates=ca, max_attempts=1) as c:
        with pytest.raises(SwitchyardError) as e:
            c.list_models()
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    with Client(auth, token=os.environ["SWITCHYARD_TEST_TOKEN"], root_certificates=ca) as c:
        assert c.list_models()[0].name == "dit-moe-fmnist"
    with Client(auth, token=os.environ["SWITCHYARD_TEST_TOKEN"], max_attempts=1) as c:  # plaintext to a TLS port
        with pytest.raises(SwitchyardError) as e:
            c.list_models(timeout=5)
        assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_asyncio(address):
    async def main():
        async with AsyncClient(address) as c:
            kinds = [type(ev).__name__ async for ev in c.generate(label=4, steps=3, seed=2)]
            results = await asyncio.gather(*(c.generate_images(label=i, steps=2, seed=i) for i in range(3)))
            with pytest.raises(SwitchyardError) as e:
                await c.generate_images(guidance=99)
            return kinds, results, e.value

    kinds, results, err = asyncio.run(main())
    assert kinds == ["Accepted", "Progress", "Progress", "Progress", "Result"]
    assert [r.seed for r in results] == [0, 1, 2]
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.field == "guidance"
