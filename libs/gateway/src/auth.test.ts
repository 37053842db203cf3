import { describe, expect, it } from "vitest";
import { Code, SwitchyardError } from "@switchyard/errors";
import { checkToken } from "./auth";

/** The code a check throws, or undefined when it passes. */
const code = (f: () => void) => {
  try {
    f();
  } catch (e) {
    return SwitchyardError.from(e).code;
  }
  return undefined;
};

describe("checkToken", () => {
  it("is open without tokens", () => {
    expect(code(() => checkToken(undefined, []))).toBeUndefined();
  });

  it("takes only `Bearer <token>` with a configured token (#12 defect 7: Bearer was optional)", () => {
    expect(code(() => checkToken("Bearer s3cret", ["s3cret"]))).toBeUndefined();
    expect(code(() => checkToken("bearer s3cret", ["s3cret"]))).toBeUndefined();
    for (const h of [undefined, "", "s3cret", "Basic s3cret", "Bearer", "Bearer nope", "Bearer s3cret extra"]) {
      expect(code(() => checkToken(h, ["s3cret"]))).toBe(Code.Unauthenticated);
    }
  });
});
