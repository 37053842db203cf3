import type * as ort from "onnxruntime-node";
import { Code, SwitchyardError } from "@switchyard/errors";

/**
 * Where ONNX Runtime runs a model's parts. "cuda": NVIDIA GPUs through ONNX Runtime's
 * CUDA provider, with the CPU for nodes it does not take; it needs the provider's
 * libraries next to onnxruntime-node's (services/worker/README.md).
 */
export const EXECUTION_PROVIDERS = ["cpu", "cuda"] as const;
export type ExecutionProvider = (typeof EXECUTION_PROVIDERS)[number];

/** `value` as an ExecutionProvider; INVALID_ARGUMENT naming `field` and what is allowed otherwise. */
export function parseExecutionProvider(value: string, field = "executionProvider"): ExecutionProvider {
  if ((EXECUTION_PROVIDERS as readonly string[]).includes(value)) return value as ExecutionProvider;
  throw new SwitchyardError(`${field} "${value}" must be one of ${EXECUTION_PROVIDERS.map((p) => `"${p}"`).join(", ")}`, Code.InvalidArgument, { field });
}

/** ONNX Runtime's provider list for `provider`: CUDA first where asked, the CPU for what it does not take. */
export function executionProvidersFor(provider: ExecutionProvider): string[] {
  return provider === "cuda" ? ["cuda", "cpu"] : ["cpu"];
}

/** The options of every session the model's parts run in (here and on a part thread). */
export function sessionOptions(threads: number, provider: ExecutionProvider = "cpu"): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: executionProvidersFor(provider),
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
