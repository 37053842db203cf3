import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { resolveGenerateParams } from "./request";
import { BUNDLED_MODEL_DIR, parseManifest } from "./manifest";


const manifest = parseManifest(JSON.parse(readFileSync(join(BUNDLED_MODEL_DIR, "manifest.json"), "utf8")));

function fail(raw: unknown): SwitchyardError {
  try {
    resolveGenerateParams(raw, manifest);
  } catch (e) {
    return SwitchyardError.from(e);
  }
  throw new Error("accepted");
}

describe("generation parameters", () => {
  it("apply the model's defaults", () => {
    expect(resolveGenerateParams({ label: 3 }, manifest)).toEqual({
      label: 3, count: 1, steps: 20, sampler: "euler", guidance: 2, shift: 1, seed: 0,
    });
    expect(resolveGenerateParams(undefined, manifest).label).toBeUndefined();
  });

  it.each([
    [{ steps: 0 }, "steps 0 must be an integer >= 1 and <= 1000"],
    [{ steps: 1e9 }, "steps 1000000000 must be an integer >= 1 and <= 1000"],
    [{ label: 10 }, "label 10 must be an integer >= 0 and <= 9"],
    [{ label: -1 }, "label -1"],
    [{ count: 0 }, "count 0 must be an integer >= 1 and <= 256"],
    [{ sampler: "ddim" }, 'sampler "ddim" must be one of "euler", "heun", "pc"'],
    [{ guidance: Number.NaN }, "guidance"],
    [{ guidance: 100 }, "guidance 100 must be a number >= 0 and <= 30"],
    [{ shift: 0 }, "shift 0 must be a number >= 0.01 and <= 100"],
    [{ seed: 1.5 }, "seed 1.5 must be an integer"],
    [{ stepz: 3 }, "stepz is not a known field"],
  ])("reject %j naming the field", (raw, msg) => {
    const e = fail(raw);
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toContain(msg);
  });
});

describe("guidance intervals (#18)", () => {
  it("take guidance_t_min / guidance_t_max (either alone: the other end of [0, 1]); absent, nothing is added", () => {
    expect(resolveGenerateParams({ label: 1, guidance_t_min: 0.2, guidance_t_max: 0.8 }, manifest).guidanceInterval).toEqual({ tMin: 0.2, tMax: 0.8 });
    expect(resolveGenerateParams({ label: 1, guidance_t_max: 0.5 }, manifest).guidanceInterval).toEqual({ tMin: 0, tMax: 0.5 });
    expect(resolveGenerateParams({ label: 1, guidance_t_min: 0.5 }, manifest).guidanceInterval).toEqual({ tMin: 0.5, tMax: 1 });
    expect("guidanceInterval" in resolveGenerateParams({ label: 1 }, manifest)).toBe(false);
  });

  it.each([
    [{ guidance_t_min: 0.9, guidance_t_max: 0.1 }, "guidance_t_min 0.9 must be <= guidance_t_max 0.1"],
    [{ guidance_t_min: -0.1 }, "guidance_t_min -0.1 must be a number >= 0 and <= 1"],
    [{ guidance_t_max: 2 }, "guidance_t_max 2 must be a number >= 0 and <= 1"],
  ])("reject %j naming the field", (raw, msg) => {
    const e = fail({ label: 1, ...raw });
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toContain(msg);
  });

  it("are carried only where there is guidance, and checked again at the scheduler", async () => {
    const { checkResolvedParams, toResolvedParams } = await import("./request");
    const guided = toResolvedParams(resolveGenerateParams({ label: 1, guidance_t_min: 0.2 }, manifest), manifest);
    expect(guided.guidanceInterval).toEqual({ tMin: 0.2, tMax: 1 });
    expect(checkResolvedParams(guided, manifest).guidanceInterval).toEqual({ tMin: 0.2, tMax: 1 });
    expect("guidanceInterval" in toResolvedParams(resolveGenerateParams({ guidance_t_min: 0.2 }, manifest), manifest)).toBe(false); // unconditional
    expect("guidanceInterval" in toResolvedParams(resolveGenerateParams({ label: 1, guidance: 1, guidance_t_min: 0.2 }, manifest), manifest)).toBe(false);
    expect(() => checkResolvedParams({ ...guided, guidanceInterval: { tMin: 0.7, tMax: 0.3 } }, manifest)).toThrow(/params.guidanceInterval \[0.7, 0.3\] must satisfy 0 <= tMin <= tMax <= 1/);
  });
});

describe("residual reuse (#18)", () => {
  it("takes reuse_threshold in (0, 1]; 0 or absent is off and adds nothing; the scheduler checks it again", async () => {
    const { checkResolvedParams, toResolvedParams } = await import("./request");
    expect(resolveGenerateParams({ label: 1, reuse_threshold: 0.2 }, manifest).reuseThreshold).toBe(0.2);
    expect("reuseThreshold" in resolveGenerateParams({ label: 1, reuse_threshold: 0 }, manifest)).toBe(false);
    expect("reuseThreshold" in resolveGenerateParams({ label: 1 }, manifest)).toBe(false);
    const carried = toResolvedParams(resolveGenerateParams({ reuse_threshold: 0.1 }, manifest), manifest); // unconditional too
    expect(carried.reuseThreshold).toBe(0.1);
    expect(checkResolvedParams(carried, manifest).reuseThreshold).toBe(0.1);
    expect(() => checkResolvedParams({ ...carried, reuseThreshold: 0 }, manifest)).toThrow("params.reuseThreshold 0 must be > 0 and <= 1");
  });

  it.each([
    [{ reuse_threshold: -0.1 }, "reuse_threshold -0.1 must be a number >= 0 and <= 1"],
    [{ reuse_threshold: 1.5 }, "reuse_threshold 1.5 must be a number >= 0 and <= 1"],
    [{ reuse_threshold: "high" }, "reuse_threshold"],
  ])("rejects %j naming the field", (raw, msg) => {
    const e = fail({ label: 1, ...raw });
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toContain(msg);
  });
});
