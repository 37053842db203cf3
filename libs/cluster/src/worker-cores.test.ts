import { describe, expect, it } from "vitest";
import { threadDefaults } from "@switchyard/model";
import { resolveWorkerConfig } from "@switchyard/worker";
import { workerCoresShare } from "./processes";

describe("worker cores", () => {
  it("a launcher gives each worker on one machine its share, at least one core", () => {
    expect(workerCoresShare(2, 2)).toBe(1);
    expect(workerCoresShare(16, 3)).toBe(5);
    expect(workerCoresShare(2, 4)).toBe(1);
    expect(workerCoresShare(8, 0)).toBe(8);
  });

  it("thread defaults follow the cores: one core runs one thread, more use up to 4 and the shared expert's own", () => {
    expect(threadDefaults(1)).toEqual({ denseThreads: 1, sharedThread: false });
    expect(threadDefaults(2)).toEqual({ denseThreads: 2, sharedThread: true });
    expect(threadDefaults(16)).toEqual({ denseThreads: 4, sharedThread: true });
  });

  it("SWITCHYARD_WORKER_CORES is read, and a bad one is refused naming the field and what is allowed", () => {
    expect(resolveWorkerConfig({ SWITCHYARD_WORKER_CORES: "3" }).cores).toBe(3);
    expect(resolveWorkerConfig({}).cores).toBeUndefined();
    expect(() => resolveWorkerConfig({ SWITCHYARD_WORKER_CORES: "0" })).toThrow("cores 0 must be an integer >= 1 and <= 4096");
  });
});
