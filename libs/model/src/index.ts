export { createOnnxModel, createClassifier, DEFAULT_DENSE_THREADS, DEFAULT_EXPERT_THREADS, DEFAULT_SHARED_THREAD, SHARED_THREAD_MIN_ROWS, threadDefaults } from "./onnx-model";
export type { ModelParts, Classifier, ThreadDefaults } from "./onnx-model";
export { EXECUTION_PROVIDERS, parseExecutionProvider } from "./session-options";
export type { ExecutionProvider } from "./session-options";
// The manifest lives in @switchyard/manifest (no ONNX Runtime); re-exported for compute-side callers.
export { BUNDLED_MODEL_DIR, loadManifest, indexParts } from "@switchyard/manifest";
export type { Manifest } from "@switchyard/manifest";
export { createThreadExpertDevice, DEFAULT_DEVICE_STREAMS } from "./expert-device";
export { createPartThread } from "./part-thread";
export type { PartThread, PartThreadOptions } from "./part-thread";
export { threadCalls } from "./thread-calls";
export type { ThreadCalls, ThreadReply } from "./thread-calls";
