import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { createEngine, generate } from "@switchyard/engine";
import { resolveGenerateParams } from "@switchyard/manifest";
import { BUNDLED_MODEL_DIR, type ModelParts, createOnnxModel } from "@switchyard/model";
import { clientFor, loadContracts } from "@switchyard/proto";
import { maxAbsDiff } from "@switchyard/tensor";
import { type EmbeddedCluster, startEmbeddedCluster } from "./embedded";

/** KServe v2 / Open Inference Protocol over a real gRPC socket. */
let cluster: EmbeddedCluster;
let reference: ModelParts;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let stub: any;

beforeAll(async () => {
  reference = await createOnnxModel({ dir: BUNDLED_MODEL_DIR });
  cluster = await startEmbeddedCluster({ modelDir: BUNDLED_MODEL_DIR, workers: 2, port: 0 });
  const Ctor = clientFor(loadContracts().inference, "GRPCInferenceService");
  stub = new Ctor(cluster.address, grpc.credentials.createInsecure());
});
afterAll(async () => {
  stub?.close();
  await cluster?.stop();
  await reference?.close();
});

function call<T>(method: string, req: unknown): Promise<T> {
  return new Promise((resolve, reject) => stub[method](req, (e: grpc.ServiceError | null, r: T) => (e ? reject(e) : resolve(r))));
}

function labels(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeInt32LE(v, i * 4));
  return b;
}

const infer = (ls: number[], parameters: Record<string, unknown>) => ({
  modelName: "dit-moe-fmnist",
  id: "t1",
  parameters,
  inputs: [{ name: "LABEL", datatype: "INT32", shape: [ls.length, 1] }],
  outputs: [{ name: "IMAGE" }],
  rawInputContents: [labels(ls)],
});

describe("KServe v2 gRPC", () => {
  it("answers liveness, readiness and metadata", async () => {
    expect(await call("ServerLive", {})).toEqual({ live: true });
    expect(await call("ModelReady", { name: "dit-moe-fmnist" })).toEqual({ ready: true });
    const md = await call<{ extensions: string[] }>("ServerMetadata", {});
    expect(md.extensions).toContain("statistics");
    const mm = await call<{ inputs: { name: string; shape: number[] }[] }>("ModelMetadata", { name: "dit-moe-fmnist" });
    expect(mm.inputs[0]).toMatchObject({ name: "LABEL", datatype: "INT32" });
    const cfg = await call<{ config: { maxBatchSize: number } }>("ModelConfig", { name: "dit-moe-fmnist" });
    expect(cfg.config.maxBatchSize).toBe(64);
    await expect(call("ModelMetadata", { name: "nope" })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("generates with raw tensors and equals the engine", async () => {
    const r = await call<{ outputs: { name: string; shape: number[] }[]; rawOutputContents: Buffer[] }>(
      "ModelInfer",
      infer([3, -1], { steps: { int64Param: 4 }, sampler: { stringParam: "heun" }, guidance: { doubleParam: 2.5 }, seed: { int64Param: 9 } }),
    );
    expect(r.outputs[0]).toMatchObject({ name: "IMAGE", datatype: "FP32", shape: [2, 1, 28, 28] });
    const raw = r.rawOutputContents[0]!;
    const x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    const engine = createEngine({ parts: reference });
    const want0 = await generate(engine, resolveGenerateParams({ label: 3, steps: 4, sampler: "heun", guidance: 2.5, seed: 9 }, reference.manifest));
    const want1 = await generate(engine, resolveGenerateParams({ steps: 4, sampler: "heun", guidance: 2.5, seed: 10 }, reference.manifest));
    expect(maxAbsDiff(x.subarray(0, 784), want0.images[0]!)).toBeLessThanOrEqual(1e-5);
    expect(maxAbsDiff(x.subarray(784), want1.images[0]!)).toBeLessThanOrEqual(1e-5);
    const st = await call<{ modelStats: { inferenceCount: number; inferenceStats: { success: { count: number } } }[] }>("ModelStatistics", { name: "dit-moe-fmnist" });
    expect(st.modelStats[0]!.inferenceCount).toBeGreaterThanOrEqual(2);
    expect(st.modelStats[0]!.inferenceStats.success.count).toBeGreaterThanOrEqual(1);
  });

  it.each([
    ["inputs", { ...infer([3], {}), inputs: [{ name: "X", datatype: "INT32", shape: [1, 1] }] }],
    ["inputs[0].datatype", { ...infer([3], {}), inputs: [{ name: "LABEL", datatype: "FP32", shape: [1, 1] }] }],
    ["inputs[0].shape", { ...infer([3], {}), inputs: [{ name: "LABEL", datatype: "INT32", shape: [1, 3] }] }],
    ["raw_input_contents[0]", { ...infer([3], {}), rawInputContents: [Buffer.alloc(3)] }],
    ["LABEL[0] 42", infer([42], {})],
    ["steps 0", infer([3], { steps: { int64Param: 0 } })],
    ["sampler", infer([3], { sampler: { stringParam: "ddim" } })],
    ["parameters.bogus", infer([3], { bogus: { boolParam: true } })],
    ["parameters.triton_foo is reserved by Triton", infer([3], { triton_foo: { boolParam: true } })],
    ["parameters.sequence_id 4 is not allowed", infer([3], { sequence_id: { int64Param: 4 } })],
  ])("rejects bad input with INVALID_ARGUMENT naming %s", async (field, req) => {
    await expect(call("ModelInfer", req)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringContaining(field) });
  });

  it("accepts Triton's triton_enable_empty_final_response (perf_analyzer sends it) and marks stream responses final", async () => {
    const flag = { triton_enable_empty_final_response: { boolParam: true }, steps: { int64Param: 1 } };
    const r = await call<{ outputs: unknown[] }>("ModelInfer", infer([2], flag));
    expect(r.outputs).toHaveLength(1);
    const s = stub.ModelStreamInfer();
    const got = new Promise<{ errorMessage: string; inferResponse: { parameters: Record<string, { boolParam: boolean }> } }>((resolve, reject) => {
      s.on("data", resolve);
      s.on("error", reject);
    });
    s.write(infer([2], flag));
    s.end();
    const msg = await got;
    expect(msg.errorMessage).toBe("");
    expect(msg.inferResponse.parameters.triton_final_response?.boolParam).toBe(true);
  });

  it("streams inferences (ModelStreamInfer) with per-request errors in the stream", async () => {
    const s = stub.ModelStreamInfer();
    const got: { errorMessage: string; inferResponse: { id: string } }[] = [];
    const done = new Promise<void>((resolve, reject) => {
      s.on("data", (d: (typeof got)[number]) => got.push(d));
      s.on("end", resolve);
      s.on("error", reject);
    });
    s.write({ ...infer([1], { steps: { int64Param: 2 } }), id: "a" });
    s.write({ ...infer([99], {}), id: "b" });
    s.end();
    await done;
    expect(got).toHaveLength(2);
    expect(got.find((g) => g.inferResponse.id === "a")?.errorMessage).toBe("");
    expect(got.find((g) => g.inferResponse.id === "b")?.errorMessage).toContain("LABEL[0] 99");
  });

  // The real external peer, where its Python client is installed (pip install tritonclient[grpc]).
  const hasTritonClient = spawnSync("python3", ["-c", "import tritonclient.grpc"], { stdio: "ignore" }).status === 0;
  it.skipIf(!hasTritonClient)("serves tritonclient", async () => {
    const script = join(tmpdir(), `sy-tc-${process.pid}.py`);
    writeFileSync(
      script,
      [
        "import sys, numpy as np, tritonclient.grpc as g",
        "c = g.InferenceServerClient(sys.argv[1])",
        "assert c.is_server_live() and c.is_model_ready('dit-moe-fmnist')",
        "i = g.InferInput('LABEL', [2, 1], 'INT32'); i.set_data_from_numpy(np.array([[5], [8]], dtype=np.int32))",
        "r = c.infer('dit-moe-fmnist', [i], parameters={'steps': 3, 'seed': 1})",
        "x = r.as_numpy('IMAGE'); assert x.shape == (2, 1, 28, 28), x.shape",
        "print('ok', x.shape, c.get_model_config('dit-moe-fmnist').config.max_batch_size)",
      ].join("\n"),
    );
    // async: the server runs in this process and must keep answering
    const r = await promisify(execFile)("python3", [script, cluster.address], { encoding: "utf8", timeout: 60_000 });
    expect(r.stdout).toContain("ok (2, 1, 28, 28) 64");
  });
});
