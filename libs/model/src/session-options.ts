import type * as ort from "onnxruntime-node";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Where ONNX Runtime runs a model's parts. "cuda": NVIDIA GPUs through ONNX Runtime's
 * CUDA provider, with the CPU for nodes it does not take; it needs the provider's
 * libraries next to onnxruntime-node's (services/worker/README.md).
 */
export const EXECUTION_PROVIDERS = ["cpu", "cuda"] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

/** The options of every session the model's parts run in (here and on a part thread). */
export function sessionOptions(threads: number, provider: ExecutionProvider = "cpu"): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: provider === "cuda" ? ["cuda", "cpu"] : ["cpu"],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    enableCpuMemArena: true,
    // Every session has its own intra-op pool; spinning pools starve each other and
    // the JS thread (measured: 4x slower steps at 2 threads with spinning on).
    extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
  };
}

/**
 * A session that could not be created because its execution provider is missing (its
 * shared library did not load): FAILED_PRECONDITION naming the setting; undefined for
 * any other failure.
 */
export function providerUnavailable(provider: ExecutionProvider, cause: unknown): SwitchyardError | undefined {
  if (provider === "cpu") return undefined;
  const msg = cause instanceof Error ? cause.message : String(cause);
  if (!/AppendExecutionProvider|providers_(shared|cuda)|Failed to load (shared )?librar/i.test(msg)) return undefined;
  return new SwitchyardError(
    `executionProvider "${provider}" is not available to this onnxruntime-node install (its provider libraries did not load: ${msg.split("\n")[0]!.slice(0, 300)}); install them (services/worker/README.md) or use "cpu"`,
    Code.FailedPrecondition,
    { field: "executionProvider", cause },
  );
}
