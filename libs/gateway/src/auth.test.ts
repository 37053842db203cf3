import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { authenticate, checkToken } from "./auth";
import { resolveGatewayConfig } from "./config";

describe("checkToken", () => {
  it("is open without tokens", () => {
    expect(() => checkToken(undefined, [])).not.toThrow();
  });

  it("takes only `Bearer <token>` with a configured token (#12 defect 7: Bearer was optional)", () => {
    expect(() => checkToken("Bearer s3cret", ["s3cret"])).not.toThrow();
    expect(() => checkToken("bearer s3cret", ["s3cret"])).not.toThrow();
    for (const h of [undefined, "", "s3cret", "Basic s3cret", "Bearer", "Bearer nope", "Bearer s3cret extra"]) {
      expect(caught(() => checkToken(h, ["s3cret"])).code).toBe(Code.Unauthenticated);
    }
  });
});

describe("API tokens with names and limits (SWITCHYARD_API_TOKENS_FILE)", () => {
  const dir = mkdtempSync(join(tmpdir(), "sy-tokens-"));
  const file = (name: string, body: unknown) => {
    const p = join(dir, name);
    writeFileSync(p, typeof body === "string" ? body : JSON.stringify(body));
    return p;
  };

  it("names the caller, never by its token, and keeps the list's tokens", () => {
    const cfg = resolveGatewayConfig({ SWITCHYARD_API_TOKENS: "plain-token-000000", SWITCHYARD_API_TOKENS_FILE: file("ok.json", [{ name: "team-a", token: "a".repeat(20), maxConcurrent: 2, maxWork: 1000, maxPriority: 10 }]) });
    expect(cfg.tokens.map((t) => [t.name, t.limits])).toEqual([["token-1", {}], ["team-a", { maxConcurrent: 2, maxWork: 1000, maxPriority: 10 }]]);
    expect(authenticate(`Bearer ${"a".repeat(20)}`, cfg.tokens)?.name).toBe("team-a");
    expect(authenticate("Bearer plain-token-000000", cfg.tokens)?.name).toBe("token-1");
    expect(authenticate(undefined, [])).toBeUndefined();
  });

  it("refuses a file that does not fit, naming the entry's field", () => {
    const bad = (body: unknown) => caught(() => resolveGatewayConfig({ SWITCHYARD_API_TOKENS_FILE: file(`bad${Math.random()}.json`, body) }));
    expect(bad([{ name: "a", token: "short" }]).message).toMatch(/\[0\]\.token .*16/);
    expect(bad([{ name: "a", token: "a".repeat(20), maxPriority: 5000 }]).message).toMatch(/\[0\]\.maxPriority 5000/);
    expect(bad([{ name: "a", token: "a".repeat(20), rate: 3 }]).message).toMatch(/rate/);
    expect(bad([{ name: "a", token: "a".repeat(20) }, { name: "a", token: "b".repeat(20) }]).message).toMatch(/name a is used twice/);
    expect(bad("{not json").message).toMatch(/SWITCHYARD_API_TOKENS_FILE .* cannot be read as JSON/);
  });
});
