"""Triton's own Python clients (tritonclient 2.73, grpc and http) against Switchyard."""

import queue

import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

MODEL = "dit-moe-fmnist"


def labels(mod, values, binary=True):
    i = mod.InferInput("LABEL", [len(values), 1], "INT32")
    arr = np.array([[v] for v in values], dtype=np.int32)
    if mod is th:
        i.set_data_from_numpy(arr, binary_data=binary)
    else:
        i.set_data_from_numpy(arr)
    return i


@pytest.mark.parametrize("mod", [tg, th], ids=["grpc", "http"])
def test_health_metadata_config(mod, grpc_address, http_address):
    c = mod.InferenceServerClient(grpc_address if mod is tg else http_address)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert not _ready_or_false(c, "nope")
    md = c.get_server_metadata()
    ext = md.extensions if mod is tg else md["extensions"]
    assert "statistics" in ext and "model_configuration" in ext
    mm = c.get_model_metadata(MODEL)
    inputs = mm.inputs if mod is tg else mm["inputs"]
    first = inputs[0]
    assert (first.name if mod is tg else first["name"]) == "LABEL"
    cfg = c.get_model_config(MODEL)
    assert (cfg.config.max_batch_size if mod is tg else cfg["max_batch_size"]) == 64


def _ready_or_false(c, name):
    try:
        return c.is_model_ready(name)
    except InferenceServerException:
        return False


@pytest.mark.parametrize("mod,binary", [(tg, True), (th, True), (th, False)], ids=["grpc", "http-binary", "http-json"])
def test_infer_same_seed_same_images_and_statistics(mod, binary, grpc_address, http_address):
    c = mod.InferenceServerClient(grpc_address if mod is tg else http_address)
    outputs = [th.InferRequestedOutput("IMAGE", binary_data=binary)] if mod is th else None
    r1 = c.infer(MODEL, [labels(mod, [5, 8], binary)], outputs=outputs, parameters={"steps": 3, "seed": 1, "sampler": "heun"})
    x = r1.as_numpy("IMAGE")
    assert x.shape == (2, 1, 28, 28) and x.dtype == np.float32 and np.isfinite(x).all()
    r2 = c.infer(MODEL, [labels(mod, [8], binary)], outputs=outputs, parameters={"steps": 3, "seed": 2, "sampler": "heun"})
    # image i of a request uses seed + i: the second image of r1 is r2's
    assert np.array_equal(x[1], r2.as_numpy("IMAGE")[0])
    st = c.get_inference_statistics(MODEL)
    if mod is tg:
        s = st.model_stats[0]
        assert s.inference_count >= 3 and s.inference_stats.success.count >= 2
        assert s.inference_stats.queue.count >= 2 and s.inference_stats.compute_infer.ns > 0
    else:
        s = st["model_stats"][0]
        assert s["inference_count"] >= 3 and s["inference_stats"]["compute_infer"]["ns"] > 0


@pytest.mark.parametrize("mod", [tg, th], ids=["grpc", "http"])
def test_errors_name_the_field(mod, grpc_address, http_address):
    c = mod.InferenceServerClient(grpc_address if mod is tg else http_address)
    cases = [
        ({"steps": 0}, [3], "parameters.steps 0 must be an integer >= 1"),
        ({"bogus": 1}, [3], "parameters.bogus is not a known parameter"),
        ({}, [42], "LABEL[0] 42 must be -1 (unconditional) or an integer >= 0 and <= 9"),
    ]
    for params, ls, want in cases:
        with pytest.raises(InferenceServerException) as e:
            c.infer(MODEL, [labels(mod, ls)], parameters=params)
        assert want in e.value.message(), (params, e.value.message())
        assert "INVALID_ARGUMENT" in str(e.value.status()) or str(e.value.status()) == "400"
    with pytest.raises(InferenceServerException) as e:
        c.infer("nope", [labels(mod, [1])])
    assert "not served here" in e.value.message()
    # tritonclient sends Triton's reserved parameters from its own arguments
    with pytest.raises(InferenceServerException) as e:
        c.infer(MODEL, [labels(mod, [1])], sequence_id=7)
    assert "parameters.sequence_id 7 is not allowed: model dit-moe-fmnist is not stateful" in e.value.message()


def test_reserved_parameters_accepted_as_triton_does(grpc_address):
    c = tg.InferenceServerClient(grpc_address)
    r = c.infer(MODEL, [labels(tg, [1])], parameters={"steps": 1}, timeout=60_000_000)
    assert r.as_numpy("IMAGE").shape == (1, 1, 28, 28)
    # a timeout too short to finish answers DEADLINE_EXCEEDED
    with pytest.raises(InferenceServerException) as e:
        c.infer(MODEL, [labels(tg, [1] * 8)], parameters={"steps": 1000}, timeout=200_000)
    assert "DEADLINE_EXCEEDED" in str(e.value.status())


def test_stream_infer_with_final_response_flag(grpc_address):
    c = tg.InferenceServerClient(grpc_address)
    q = queue.Queue()
    c.start_stream(callback=lambda result, error: q.put((result, error)))
    try:
        c.async_stream_infer(MODEL, [labels(tg, [7])], request_id="s1", parameters={"steps": 2}, enable_empty_final_response=True)
        c.async_stream_infer(MODEL, [labels(tg, [7])], request_id="s2", parameters={"steps": 0})
        got = {}
        for _ in range(2):
            result, error = q.get(timeout=60)
            if error is None:
                got[result.get_response().id] = result
            else:
                got["error"] = error
        ok = got["s1"]
        assert ok.as_numpy("IMAGE").shape == (1, 1, 28, 28)
        assert ok.get_response().parameters["triton_final_response"].bool_param is True
        assert "parameters.steps 0" in got["error"].message()
    finally:
        c.stop_stream()
