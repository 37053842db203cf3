import { describe, expect, it } from "vitest";
import { z } from "zod";
import { Code, SwitchyardError } from "@switchyard/errors";
import { intInRange, numberInRange } from "./schemas";
import { mergeRaw, readEnv } from "./env";
import { MAX_LISTED_ISSUES, parseOrThrow } from "./zod-errors";


const schema = z.strictObject({
  steps: intInRange(1, 1000).default(20),
  guidance: numberInRange(0, 20).default(1),
  sampler: z.enum(["euler", "heun", "pc"]).default("euler"),
  images: z.array(z.strictObject({ label: intInRange(0, 9) })).optional(),
});

function fail(input: unknown): SwitchyardError {
  try {
    parseOrThrow(schema, input);
  } catch (e) {
    return SwitchyardError.from(e);
  }
  throw new Error("expected a failure");
}

describe("parseOrThrow", () => {
  it("applies defaults", () => {
    expect(parseOrThrow(schema, {})).toEqual({ steps: 20, guidance: 1, sampler: "euler" });
  });

  it("names the field, the value and what is allowed", () => {
    const e = fail({ steps: 0 });
    expect(e.code).toBe(Code.InvalidArgument);
    expect(e.message).toBe("[invalid_argument] steps 0 must be an integer >= 1 and <= 1000");
    expect(e.field).toBe("steps");
    expect(fail({ steps: 2.5 }).message).toContain("steps 2.5 must be an integer");
    expect(fail({ steps: "ten" }).message).toContain('steps "ten" must be an integer >= 1 and <= 1000');
    expect(fail({ sampler: "ddim" }).message).toContain('sampler "ddim" must be one of "euler", "heun", "pc"');
    expect(fail({ images: [{ label: 3 }, { label: 12 }] }).field).toBe("images[1].label");
    expect(fail({ bogus: 1 }).message).toContain("bogus is not a known field");
  });

  it("reports every bad field", () => {
    const e = fail({ steps: -1, guidance: 99 });
    expect(e.message).toContain("steps -1");
    expect(e.message).toContain("guidance 99 must be a number >= 0 and <= 20");
  });
});

describe("env", () => {
  it("reads mapped variables and coerces scalars", () => {
    const raw = readEnv({ SY_PORT: "server.port", SY_TLS: "tls", SY_NAME: "name" }, { SY_PORT: "8001", SY_TLS: "true", SY_NAME: "a" });
    expect(raw).toEqual({ server: { port: 8001 }, tls: true, name: "a" });
  });

  it("merges with later sources winning", () => {
    expect(mergeRaw({ a: { b: 1, c: 2 } }, { a: { c: 3 } }, undefined)).toEqual({ a: { b: 1, c: 3 } });
  });
});

describe("error messages stay bounded (#12 defect 7)", () => {
  it("name the first few offending fields and count the rest, however many a request gets wrong", () => {
    const schema = z.strictObject({ inputs: z.array(z.strictObject({ name: z.string() })) });
    const bad = { inputs: Array.from({ length: 1000 }, () => ({ name: 7 })) };
    let message = "";
    try {
      parseOrThrow(schema, bad, { what: "request" });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("inputs[0].name 7 must be string");
    expect(message).toContain(`… and ${1000 - MAX_LISTED_ISSUES} more`);
    expect(message.length).toBeLessThan(600);
    // before: every one of the 1000 issues was listed (about 33,000 characters)
  });
});
