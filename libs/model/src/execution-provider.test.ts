import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR } from "@switchyard/manifest";
import { createOnnxModel } from "./onnx-model";
import { createPartThread } from "./part-thread";
import { parseExecutionProvider, providerUnavailable, sessionOptions } from "./session-options";

// onnxruntime-node's native folder: where its CUDA provider's libraries go when installed.
const ortBin = join(dirname(createRequire(import.meta.url).resolve("onnxruntime-node")), "..", "bin", "napi-v6", process.platform, process.arch);
const cudaInstalled = existsSync(join(ortBin, "libonnxruntime_providers_cuda.so"));

describe("execution provider", () => {
  it("asks ONNX Runtime for CUDA first and the CPU for the nodes CUDA does not take", () => {
    expect(sessionOptions(2).executionProviders).toEqual(["cpu"]);
    expect(sessionOptions(2, "cuda").executionProviders).toEqual(["cuda", "cpu"]);
    expect(sessionOptions(3, "cuda").intraOpNumThreads).toBe(3);
  });

  it("reads a provider's name, and refuses another naming the field and the choices", () => {
    expect(parseExecutionProvider("cuda")).toBe("cuda");
    expect(() => parseExecutionProvider("gpu", "--provider")).toThrow('--provider "gpu" must be one of "cpu", "cuda"');
  });

  it("explains a missing provider library and leaves other failures alone", () => {
    const missing = new Error("OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library");
    const e = providerUnavailable("cuda", missing)!;
    expect(e.code).toBe(Code.FailedPrecondition);
    expect(e.message).toMatch(/executionProvider "cuda" is not available to this onnxruntime-node install .* or use "cpu"/);
    expect(providerUnavailable("cpu", missing)).toBeUndefined();
    expect(providerUnavailable("cuda", new Error("Load model from x.onnx failed: protobuf parsing failed"))).toBeUndefined();
  });

  it.skipIf(cudaInstalled)("on a machine without CUDA's provider libraries, a model on cuda fails at once with that error (real ONNX Runtime)", async () => {
    const err = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, executionProvider: "cuda", sharedThread: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SwitchyardError);
    expect((err as SwitchyardError).code).toBe(Code.FailedPrecondition);
    expect((err as SwitchyardError).message).toMatch(/executionProvider "cuda" is not available/);
    // a part thread's sessions take the same provider
    await expect(createPartThread({ dir: BUNDLED_MODEL_DIR, files: ["parts/block0.shared.onnx"], executionProvider: "cuda" })).rejects.toMatchObject({ code: Code.FailedPrecondition, message: expect.stringMatching(/executionProvider "cuda" is not available/) });
  });

  it("runs on cpu as before when named", async () => {
    const m = await createOnnxModel({ dir: BUNDLED_MODEL_DIR, executionProvider: "cpu", experts: () => false, sharedThread: false });
    expect(m.manifest.architecture.numLayers).toBeGreaterThan(0);
    await m.close();
  });
});
