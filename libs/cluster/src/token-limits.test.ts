import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { Code, createClient } from "@switchyard/client";
import { BUNDLED_MODEL_DIR } from "@switchyard/model";
import { clientFor, loadContracts } from "@switchyard/proto";
import { rejection } from "@switchyard/errors/testing";
import { type EmbeddedCluster, startEmbeddedCluster } from "./embedded";

/**
 * Per-token limits (#12: clients set their own priority; nothing bounded one caller) on
 * every way in — native gRPC, KServe gRPC, KServe REST, the OpenAI-style endpoint — over
 * real sockets. "small" may run 1 request and 250 image-steps at once, at priority ≤ 5.
 */
const SMALL = "small-token-0123456789";
const OTHER = "other-token-0123456789";
let cluster: EmbeddedCluster;
let http: string;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let kserve: any;

beforeAll(async () => {
  cluster = await startEmbeddedCluster({
    modelDir: BUNDLED_MODEL_DIR, workers: 1, port: 0, httpPort: 0,
    apiTokens: [{ name: "small", token: SMALL, limits: { maxConcurrent: 1, maxWork: 250, maxPriority: 5 } }, OTHER],
  });
  http = `http://127.0.0.1:${cluster.gateway.httpPort}`;
  kserve = new (clientFor(loadContracts().inference, "GRPCInferenceService"))(cluster.address, grpc.credentials.createInsecure());
});
afterAll(async () => {
  kserve?.close();
  await cluster?.stop();
});

const native = (token: string) => createClient({ address: cluster.address, token, maxAttempts: 1 });

/** One request on each of the four paths as `token`: [code or "ok", message]. */
async function everyPath(token: string, p: { steps: number; count: number; priority: number }): Promise<Record<string, [number | "ok", string]>> {
  const out: Record<string, [number | "ok", string]> = {};
  const c = native(token);
  try {
    await c.generateImages({ label: 3, count: p.count, steps: p.steps, priority: p.priority, seed: 1 });
    out.native = ["ok", ""];
  } catch (e) {
    const se = e as { code: number; message: string };
    out.native = [se.code, se.message];
  } finally {
    c.close();
  }
  const md = new grpc.Metadata();
  md.set("authorization", `Bearer ${token}`);
  const labels = Buffer.alloc(4 * p.count);
  out.kserveGrpc = await new Promise((resolve) =>
    kserve.ModelInfer(
      { modelName: "dit-moe-fmnist", inputs: [{ name: "LABEL", datatype: "INT32", shape: [p.count, 1] }], outputs: [{ name: "IMAGE" }], rawInputContents: [labels], parameters: { steps: { int64Param: p.steps }, priority: { int64Param: p.priority } } },
      md,
      (e: grpc.ServiceError | null) => resolve(e ? [e.code, e.details] : ["ok", ""]),
    ),
  );
  const post = async (path: string, body: unknown): Promise<[number | "ok", string]> => {
    const r = await fetch(`${http}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    const text = await r.text();
    return r.ok ? ["ok", ""] : [r.status, text];
  };
  out.kserveRest = await post("/v2/models/dit-moe-fmnist/infer", { inputs: [{ name: "LABEL", datatype: "INT32", shape: [p.count, 1], data: Array(p.count).fill(3) }], parameters: { steps: p.steps, priority: p.priority } });
  out.openai = await post("/v1/images/generations", { prompt: "sneaker", n: p.count, steps: p.steps, priority: p.priority });
  return out;
}

describe("per-token limits on every API (#12 defect 6)", () => {
  it("refuse a priority above the token's maximum with PERMISSION_DENIED naming the field", async () => {
    const r = await everyPath(SMALL, { steps: 2, count: 1, priority: 6 });
    expect(r.native).toEqual([Code.PermissionDenied, expect.stringContaining("priority 6 is above the maximum of 5 for API token small")]);
    expect(r.kserveGrpc).toEqual([Code.PermissionDenied, expect.stringContaining("parameters.priority 6 is above the maximum of 5 for API token small")]);
    expect(r.kserveRest).toEqual([403, expect.stringContaining("parameters.priority 6 is above the maximum of 5")]);
    expect(r.openai).toEqual([403, expect.stringContaining("priority 6 is above the maximum of 5")]);
    // another token has no such cap
    expect(Object.values(await everyPath(OTHER, { steps: 2, count: 1, priority: 6 })).map((x) => x[0])).toEqual(["ok", "ok", "ok", "ok"]);
  });

  it("refuse more images × steps than the token may have in flight, with RESOURCE_EXHAUSTED", async () => {
    const r = await everyPath(SMALL, { steps: 130, count: 2, priority: 0 });
    for (const [code, msg] of Object.values(r)) {
      expect([Code.ResourceExhausted, 429]).toContain(code);
      expect(msg).toContain("API token small has 0 of its 250 image-steps in flight; this request adds 260");
    }
  });

  it("refuse a second concurrent request of the token while its first runs, and take it once the first ends", async () => {
    const c = native(SMALL);
    const ac = new AbortController();
    const first = c.generateImages({ label: 1, count: 1, steps: 200, seed: 2 }, { signal: ac.signal });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await everyPath(SMALL, { steps: 2, count: 1, priority: 0 });
      for (const [code, msg] of Object.values(r)) {
        expect([Code.ResourceExhausted, 429]).toContain(code);
        expect(msg).toContain("API token small has 1 of its 1 concurrent requests in flight");
      }
      // the other token is not held back by this one's limit
      expect(Object.values(await everyPath(OTHER, { steps: 2, count: 1, priority: 0 })).map((x) => x[0])).toEqual(["ok", "ok", "ok", "ok"]);
    } finally {
      ac.abort();
      expect((await rejection(first)).code).toBe(Code.Canceled);
      c.close();
    }
    for (let i = 0; i < 50 && (await everyPath(SMALL, { steps: 2, count: 1, priority: 0 })).native?.[0] !== "ok"; i++) await new Promise((r) => setTimeout(r, 100));
    expect(Object.values(await everyPath(SMALL, { steps: 2, count: 1, priority: 5 })).map((x) => x[0])).toEqual(["ok", "ok", "ok", "ok"]);
  });
});
