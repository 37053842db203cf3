import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { getEventListeners } from "node:events";
import { createMemoryBus } from "@switchyard/bus";
import { f32ToBase64, SCHEDULER_QUEUE_GROUP, subjects } from "@switchyard/contract";
import { createGatewayMetrics, createRequestTracker } from "./admission";
import { type KserveRequest, createKserveCore, parseInferRequest } from "./kserve-core";

const m = loadManifest(BUNDLED_MODEL_DIR);

const req = (parameters: Record<string, unknown>, values: unknown[] = [3], extra: Partial<KserveRequest> = {}): KserveRequest => ({
  modelName: m.name,
  modelVersion: "",
  id: "r1",
  parameters,
  inputs: [{ name: "LABEL", datatype: "INT32", shape: [values.length, 1], values }],
  outputs: [],
  rawField: "raw_input_contents",
  ...extra,
});

const fail = (r: KserveRequest) => caught(() => parseInferRequest(r, m, 1000));

describe("parseInferRequest", () => {
  it("gives image i seed + i, with the same options", () => {
    const p = parseInferRequest(req({ steps: 4, seed: 10, sampler: "heun" }, [3, -1]), m);
    expect(p.submits.map((s) => [s.params.conditional ? s.params.label : null, s.params.seed, s.params.steps, s.params.sampler])).toEqual([
      [3, 10, 4, "heun"],
      [null, 11, 4, "heun"],
    ]);
    expect(p.submits[0]!.requestId).toMatch(/^r1#0-/);
  });

  it("takes a guidance interval (guidance_t_min / guidance_t_max) and names a bad one (#18)", () => {
    const p = parseInferRequest(req({ guidance_t_min: 0.25, guidance_t_max: 0.75 }, [3]), m);
    expect(p.submits[0]!.params.guidanceInterval).toEqual({ tMin: 0.25, tMax: 0.75 });
    expect(fail(req({ guidance_t_min: 0.8, guidance_t_max: 0.2 }, [3])).message).toContain("parameters.guidance_t_min 0.8 must be <= guidance_t_max 0.2");
  });

  it("takes reuse_threshold and names a bad one (#18)", () => {
    expect(parseInferRequest(req({ reuse_threshold: 0.2 }, [3]), m).submits[0]!.params.reuseThreshold).toBe(0.2);
    expect(fail(req({ reuse_threshold: 2 }, [3])).message).toContain("parameters.reuse_threshold 2 must be a number >= 0 and <= 1");
  });

  it("accepts Triton's reserved parameters as Triton does", () => {
    const p = parseInferRequest(req({ triton_enable_empty_final_response: true, sequence_id: 0, sequence_start: false, timeout: 2_000_000, binary_data_output: true }), m, 1000);
    expect(p.options).toEqual({ enableEmptyFinalResponse: true, binaryDataOutput: true, deadlineMs: 3000 });
    expect(parseInferRequest(req({}), m).options).toEqual({ enableEmptyFinalResponse: false, binaryDataOutput: false, deadlineMs: undefined });
  });

  it.each([
    [{ triton_foo: 1 }, "parameters.triton_foo", "is reserved by Triton and not supported here"],
    [{ bogus: 1 }, "parameters.bogus", "is not a known parameter (allowed: steps, sampler"],
    [{ sequence_id: 5 }, "parameters.sequence_id", "5 is not allowed: model dit-moe-fmnist is not stateful"],
    [{ timeout: -1 }, "parameters.timeout", "must be an integer >= 0 (microseconds"],
    [{ triton_enable_empty_final_response: "yes" }, "parameters.triton_enable_empty_final_response", "must be a boolean"],
    [{ steps: 0 }, "parameters.steps", "parameters.steps 0 must be an integer >= 1 and <= 1000"],
    [{ priority: 1e9 }, "parameters.priority", "must be an integer >= -1000 and <= 1000"],
  ])("refuses %j naming %s", (params, field, text) => {
    const e = fail(req(params));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.field).toBe(field);
    expect(e.message).toContain(text);
  });

  it("checks tensors, labels and outputs", () => {
    expect(fail(req({}, [12])).message).toContain("LABEL[0] 12 must be -1 (unconditional) or an integer >= 0 and <= 9");
    expect(fail(req({}, ["x"])).field).toBe("LABEL[0]");
    expect(fail(req({}, [1], { outputs: [{ name: "X" }] })).field).toBe("outputs");
    expect(fail(req({}, [1], { inputs: [{ name: "LABEL", datatype: "INT32", shape: [1, 1], raw: new Uint8Array(3) }] })).message).toContain("raw_input_contents[0] has 3 bytes");
    expect(fail(req({}, [1], { modelName: "x".repeat(10_000) })).code).toBe(Code.NotFound);
    expect(fail(req({}, [1], { modelName: "x".repeat(10_000) })).message.length).toBeLessThan(200);
  });
});

describe("KServe core over many requests of one stream", () => {
  it("leaves no abort listener behind per request (ModelStreamInfer shares one signal; each left listener held its request's images)", async () => {
    const bus = createMemoryBus();
    const s = subjects("kl");
    // A scheduler stand-in: accepts, then sends the image and done.
    bus.serve(s.intake(m.name), async (p) => {
      const sub = p as unknown as { requestId: string };
      setTimeout(() => {
        bus.publish(s.events(sub.requestId), { type: "image", index: 0, data: f32ToBase64(new Float32Array(m.image.channels * m.image.height * m.image.width)) });
        bus.publish(s.events(sub.requestId), { type: "done", queueMs: 1, computeMs: 1, tickMs: 1, totalMs: 2, evals: 1, seed: 1 });
      }, 1);
      return { accepted: true, queuePosition: 0 };
    }, { queue: SCHEDULER_QUEUE_GROUP });
    const core = createKserveCore({ bus, subjects: s, manifest: m, submitTimeoutMs: 1000, tracker: createRequestTracker(createGatewayMetrics(), 100) });
    const stream = new AbortController();
    for (let i = 0; i < 20; i++) await core.infer(req({ steps: 2 }, [3], { id: `r${i}` }), undefined, stream.signal);
    expect(getEventListeners(stream.signal, "abort")).toHaveLength(0);
    await bus.close();
  });
});
