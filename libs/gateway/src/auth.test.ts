import { describe, expect, it } from "vitest";
import { Code } from "@switchyard/errors";
import { caught } from "@switchyard/errors/testing";
import { checkToken } from "./auth";

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
