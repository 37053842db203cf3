import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as fc from "fast-check";
import * as grpc from "@grpc/grpc-js";
import { createMemoryBus } from "@switchyard/bus";
import { type Bus, channels, f32ToBase64, publish, serve, subjects as makeSubjects } from "@switchyard/contract";
import { BUNDLED_MODEL_DIR, loadManifest } from "@switchyard/manifest";
import { clientFor, loadContracts } from "@switchyard/proto";
import { type GatewayServer, startGatewayServer } from "./server";

/**
 * #12: every public API fuzzed with 10,000 generated requests each, over its real socket
 * (gRPC and HTTP), against a gateway whose scheduler answers at once (so that valid
 * requests complete without computing). Every request must end in a result or a clear
 * client error — never INTERNAL/UNKNOWN or a 5xx — with a bounded message, and the
 * gateway must keep serving.
 */
const RUNS = Number(process.env.SWITCHYARD_FUZZ_RUNS ?? 10_000);
const manifest = loadManifest(BUNDLED_MODEL_DIR);
const P = manifest.image.channels * manifest.image.height * manifest.image.width;
const subjects = makeSubjects("fuzz");
const CLIENT_CODES = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.NOT_FOUND, grpc.status.RESOURCE_EXHAUSTED, grpc.status.OUT_OF_RANGE, grpc.status.UNIMPLEMENTED]);
/** Longest error message a client may get back (client strings echoed in it are clipped). */
const MAX_MESSAGE_CHARS = 600;

let bus: Bus;
let server: GatewayServer;
let generate: grpc.Client & { Generate(req: unknown): grpc.ClientReadableStream<unknown> };
let infer: grpc.Client & { ModelInfer(req: unknown, cb: (e: grpc.ServiceError | null, r: unknown) => void): void };
let http: string;
const accepted = { n: 0 };

beforeAll(async () => {
  bus = createMemoryBus();
  const ch = channels(subjects);
  // A scheduler that accepts and finishes at once: the gateway's parsing, admission and
  // streaming are what is fuzzed here, not the model.
  serve(bus, ch.intake(manifest.name), async (msg) => {
    accepted.n++;
    setImmediate(() => {
      const zero = f32ToBase64(new Float32Array(P));
      for (let i = 0; i < msg.params.count; i++) publish(bus, ch.events(msg.requestId), { type: "image", index: i, data: zero });
      publish(bus, ch.events(msg.requestId), { type: "done", queueMs: 0, computeMs: 0, totalMs: 0, evals: msg.params.steps, seed: msg.params.seed });
    });
    return { accepted: true, queuePosition: 0 };
  });
  server = await startGatewayServer({ bus, subjects, manifest, port: 0, httpPort: 0, maxInflight: 64 });
  const c = loadContracts();
  generate = new (clientFor(c.switchyard, "Switchyard"))(server.address, grpc.credentials.createInsecure()) as unknown as typeof generate;
  infer = new (clientFor(c.inference, "GRPCInferenceService"))(server.address, grpc.credentials.createInsecure()) as unknown as typeof infer;
  http = `http://127.0.0.1:${server.httpPort}`;
});
afterAll(async () => {
  generate?.close();
  infer?.close();
  await server?.stop();
  await bus?.close();
});

/** Integers as fuzzers find bugs: small ones, edges, and anything in int32. */
const int32 = () => fc.oneof(fc.integer({ min: -3, max: 12 }), fc.constantFrom(0, -1, 255, 256, 257, 1000, 2 ** 31 - 1, -(2 ** 31)), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }));
const anyNumber = () => fc.oneof(fc.double(), fc.constantFrom(0, 1, 2, 30, 31, -1, 1e308, Number.NaN, Number.POSITIVE_INFINITY), fc.integer({ min: -5, max: 40 }));
const text = () => fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", maxLength: 20 }), fc.constantFrom("", "a.b", "a_b", "*", ">", " ", "x".repeat(10_000), manifest.name));
const anyJson = () => fc.oneof(anyNumber(), text(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 8 }), fc.integer(), { maxKeys: 3 }));

function checkMessage(message: string): void {
  expect(message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
}

describe(`every API, ${RUNS} generated requests each: no crash, no INTERNAL, bounded messages`, () => {
  it("native gRPC Generate (streaming)", async () => {
    const valid = fc.record(
      {
        label: fc.integer({ min: 0, max: 9 }), count: fc.integer({ min: 1, max: 3 }), steps: fc.integer({ min: 1, max: 3 }), sampler: fc.constantFrom(0, 1, 2, 3),
        guidance: fc.double({ min: 0, max: 30, noNaN: true }), shift: fc.double({ min: 0.01, max: 100, noNaN: true }), seed: fc.nat().map(String), priority: fc.integer({ min: -1000, max: 1000 }),
        previewInterval: fc.integer({ min: 0, max: 2 }), requestId: fc.oneof(fc.constant(""), fc.uuid()),
      },
      { requiredKeys: [] },
    );
    const wild = fc.record(
      {
        model: fc.oneof(fc.constant(""), fc.constant(manifest.name), text()),
        label: int32(), count: fc.oneof(fc.integer({ min: 0, max: 3 }), int32()), steps: fc.oneof(fc.integer({ min: 0, max: 3 }), int32()),
        sampler: fc.constantFrom(0, 1, 2, 3, 7), guidance: anyNumber(), shift: anyNumber(), seed: fc.oneof(fc.constant("0"), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String)),
        priority: int32(), previewInterval: fc.oneof(fc.constant(0), int32()), requestId: fc.oneof(fc.constant(""), text()),
      },
      { requiredKeys: [] },
    );
    const req = fc.oneof({ weight: 1, arbitrary: valid }, { weight: 3, arbitrary: wild });
    await fc.assert(
      fc.asyncProperty(req, async (r) => {
        const outcome = await new Promise<{ ok: boolean; code?: number; message?: string; images: number }>((resolve) => {
          let images = 0;
          const call = generate.Generate(r);
          call.on("data", (ev: { result?: { images: unknown[] } }) => (images += ev.result?.images.length ?? 0));
          call.on("error", (e: grpc.ServiceError) => resolve({ ok: false, code: e.code, message: e.details, images }));
          call.on("end", () => resolve({ ok: true, images }));
        });
        if (outcome.ok) expect(outcome.images).toBeGreaterThan(0);
        else {
          expect(CLIENT_CODES, `${outcome.code}: ${outcome.message}`).toContain(outcome.code);
          checkMessage(outcome.message!);
        }
      }),
      { numRuns: RUNS },
    );
  }, 600_000);

  it("KServe v2 gRPC ModelInfer", async () => {
    const param = fc.oneof(fc.record({ int64Param: int32() }), fc.record({ stringParam: text() }), fc.record({ boolParam: fc.boolean() }), fc.record({ doubleParam: anyNumber() }));
    const tensor = fc.record(
      {
        name: fc.oneof(fc.constant("LABEL"), text()),
        datatype: fc.constantFrom("INT32", "INT64", "FP32", "BYTES", "BOOL", "", "UINT8", "FP16"),
        shape: fc.array(fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constantFrom(2 ** 40, 0, 65)), { maxLength: 4 }),
        contents: fc.record({ intContents: fc.array(int32(), { maxLength: 6 }) }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    );
    const valid = fc.record({
      modelName: fc.constant(manifest.name),
      inputs: fc.integer({ min: 1, max: 3 }).chain((n) => fc.array(fc.integer({ min: -1, max: 9 }), { minLength: n, maxLength: n }).map((labels) => [{ name: "LABEL", datatype: "INT32", shape: [labels.length, 1], contents: { intContents: labels } }])),
      parameters: fc.record({ steps: fc.record({ int64Param: fc.integer({ min: 1, max: 3 }) }), seed: fc.record({ int64Param: fc.nat() }) }, { requiredKeys: ["steps"] }),
    });
    const wild = fc.record(
      {
        modelName: fc.oneof(fc.constant(manifest.name), text()), modelVersion: fc.oneof(fc.constant(""), fc.constant("1"), text()), id: text(),
        parameters: fc.dictionary(fc.oneof(fc.constantFrom("steps", "sampler", "guidance", "shift", "seed", "priority", "timeout", "sequence_id", "triton_x", "binary_data_output"), fc.string({ maxLength: 10 })), param, { maxKeys: 4 }),
        inputs: fc.array(tensor, { maxLength: 3 }),
        rawInputContents: fc.array(fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), { maxLength: 2 }),
      },
      { requiredKeys: [] },
    );
    const req = fc.oneof({ weight: 1, arbitrary: valid }, { weight: 3, arbitrary: wild });
    await fc.assert(
      fc.asyncProperty(req, async (r) => {
        const outcome = await new Promise<{ error: grpc.ServiceError | null; res: unknown }>((resolve) => infer.ModelInfer(r, (error, res) => resolve({ error, res })));
        if (outcome.error) {
          expect(CLIENT_CODES, `${outcome.error.code}: ${outcome.error.details}`).toContain(outcome.error.code);
          checkMessage(outcome.error.details);
        } else expect((outcome.res as { outputs: unknown[] }).outputs.length).toBeGreaterThan(0);
      }),
      { numRuns: RUNS },
    );
  }, 600_000);

  const postJson = async (path: string, body: unknown) => {
    const res = await fetch(`${http}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) });
    return { status: res.status, text: await res.text() };
  };
  const expectClean = (r: { status: number; text: string }) => {
    expect(r.status, r.text.slice(0, 300)).toBeLessThan(500);
    if (r.status >= 400) {
      const e = JSON.parse(r.text) as { error: string | { message: string } };
      checkMessage(typeof e.error === "string" ? e.error : e.error.message);
    }
  };

  it("KServe v2 REST infer", async () => {
    const input = fc.record(
      { name: fc.oneof(fc.constant("LABEL"), text()), datatype: fc.constantFrom("INT32", "FP32", "BYTES", "x"), shape: fc.array(fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constant(2 ** 40)), { maxLength: 3 }), data: fc.oneof(fc.array(anyJson(), { maxLength: 4 }), anyJson()), parameters: fc.dictionary(fc.string({ maxLength: 8 }), anyJson(), { maxKeys: 2 }) },
      { requiredKeys: [] },
    );
    const valid = fc
      .array(fc.integer({ min: -1, max: 9 }), { minLength: 1, maxLength: 3 })
      .chain((labels) => fc.record({ inputs: fc.constant([{ name: "LABEL", datatype: "INT32", shape: [labels.length, 1], data: labels }]), parameters: fc.record({ steps: fc.integer({ min: 1, max: 3 }), seed: fc.nat() }, { requiredKeys: [] }) }));
    const body = fc.oneof(
      { weight: 3, arbitrary: valid },
      { weight: 8, arbitrary: fc.record({ id: anyJson(), inputs: fc.oneof(fc.array(input, { maxLength: 3 }), anyJson()), outputs: fc.oneof(fc.array(fc.record({ name: text() }), { maxLength: 2 }), anyJson()), parameters: fc.oneof(fc.dictionary(fc.constantFrom("steps", "seed", "sampler", "guidance", "binary_data_output", "timeout", "triton_y"), anyJson(), { maxKeys: 3 }), anyJson()) }, { requiredKeys: [] }) },
      { weight: 1, arbitrary: fc.oneof(fc.jsonValue(), fc.string({ maxLength: 50 })) },
    );
    const model = fc.oneof({ weight: 9, arbitrary: fc.constant(manifest.name) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }).map(encodeURIComponent) });
    await fc.assert(fc.asyncProperty(model, body, async (m, b) => expectClean(await postJson(`/v2/models/${m}/infer`, b))), { numRuns: RUNS });
  }, 600_000);

  it("OpenAI-style POST /v1/images/generations", async () => {
    const names = manifest.conditioning.classNames ?? [];
    const body = fc.oneof(
      { weight: 3, arbitrary: fc.record({ prompt: fc.constantFrom(...names), n: fc.integer({ min: 1, max: 3 }), steps: fc.integer({ min: 1, max: 3 }), seed: fc.nat() }, { requiredKeys: ["prompt"] }) },
      {
        weight: 8,
        arbitrary: fc.record(
          {
            prompt: fc.oneof(fc.constantFrom(...names, "Ankle Boot", "T_SHIRT"), text(), anyJson()), n: fc.oneof(fc.integer({ min: 0, max: 3 }), anyJson()), size: fc.oneof(fc.constantFrom("28x28", "1024x1024"), text()),
            response_format: fc.oneof(fc.constantFrom("b64_json", "url"), text()), model: fc.oneof(fc.constant(manifest.name), text()), steps: fc.oneof(fc.integer({ min: 0, max: 3 }), anyJson()),
            seed: anyJson(), guidance: anyJson(), sampler: anyJson(), priority: anyJson(), extra: anyJson(),
          },
          { requiredKeys: [] },
        ),
      },
      { weight: 1, arbitrary: fc.oneof(fc.jsonValue(), fc.string({ maxLength: 50 })) },
    );
    await fc.assert(fc.asyncProperty(body, async (b) => expectClean(await postJson("/v1/images/generations", b))), { numRuns: RUNS });
  }, 600_000);

  it("served valid requests among the generated ones, and still serves", async () => {
    // The generators are biased so that a share of requests is valid (and completes).
    expect(accepted.n).toBeGreaterThan(RUNS / 2);
    const ok = await postJson("/v1/images/generations", { prompt: "sneaker", steps: 2 });
    expect(ok.status).toBe(200);
  });
});
