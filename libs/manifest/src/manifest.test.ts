import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { BUNDLED_MODEL_DIR, loadManifest, parseManifest } from "./manifest";

const base = JSON.parse(readFileSync(join(BUNDLED_MODEL_DIR, "manifest.json"), "utf8")) as Record<string, unknown>;

/** A manifest being mutated on purpose: loosely typed by design. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type M = any;

function mutate(f: (m: M) => void): unknown {
  const m = structuredClone(base);
  f(m);
  return m;
}

function failure(raw: unknown): SwitchyardError {
  try {
    parseManifest(raw);
  } catch (e) {
    return SwitchyardError.from(e);
  }
  throw new Error("manifest was accepted");
}

describe("manifest", () => {
  it("accepts the bundled model's manifest and indexes every part", () => {
    const m = parseManifest(base);
    expect(m.moe.numExperts).toBeGreaterThanOrEqual(32);
    expect(m.parts).toHaveLength(2 + m.architecture.numLayers * (2 + m.moe.numExperts));
  });

  it.each([
    ["format", (m: M) => (m.format = "v0"), "format"],
    ["topK type", (m: M) => (m.moe.topK = "two"), "moe.topK"],
    ["topK > experts", (m: M) => (m.moe.topK = 99), "moe.topK"],
    ["negative layers", (m: M) => (m.architecture.numLayers = 0), "architecture.numLayers"],
    ["bad dtype", (m: M) => (m.parts[0].inputs[0].dtype = "complex64"), "parts[0].inputs[0].dtype"],
    ["bad sha", (m: M) => (m.parts[3].sha256 = "xyz"), "parts[3].sha256"],
    ["unknown field", (m: M) => (m.moe.extra = 1), "moe"],
    ["null label inside classes", (m: M) => (m.conditioning.nullLabel = 3), "conditioning.nullLabel"],
    ["expert out of range", (m: M) => (m.parts.find((p: { kind?: string; name?: string }) => p.kind === "expert").expert = 999), "expert"],
    ["missing expert", (m: M) => m.parts.splice(m.parts.findIndex((p: { kind?: string; name?: string }) => p.name === "block2.expert5"), 1), "parts"],
    ["duplicate part", (m: M) => m.parts.push(m.parts[1]), "name"],
  ])("rejects %s naming the field", (_, f, field) => {
    const e = failure(mutate(f));
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toContain(field);
  });

  it("says which part is missing", () => {
    const e = failure(mutate((m) => m.parts.splice(m.parts.findIndex((p: { name: string }) => p.name === "block2.expert5"), 1)));
    expect(e.message).toContain("missing block2.expert5");
  });

  it("reports a missing part file and a missing manifest", () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-manifest-"));
    try {
      expect(() => loadManifest(dir)).toThrow(/no readable manifest.json/);
      writeFileSync(join(dir, "manifest.json"), "{ not json");
      expect(() => loadManifest(dir)).toThrow(/not valid JSON/);
      writeFileSync(join(dir, "manifest.json"), JSON.stringify(base));
      mkdirSync(join(dir, "parts"));
      const e = (() => {
        try {
          loadManifest(dir);
        } catch (err) {
          return SwitchyardError.from(err);
        }
        throw new Error("accepted");
      })();
      expect(e.code).toBe(Code.NotFound);
      expect(e.message).toMatch(/parts\[0\]\.file "parts\/embed.onnx" does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
