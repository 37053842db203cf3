import { describe, expect, it } from "vitest";
import { frechetDistance, meanCov, sqrtPsd } from "./frechet";

describe("frechet", () => {
  it("is zero for identical Gaussians and |mu1-mu2|^2 for shifted ones", () => {
    const cov = [2, 0.5, 0.5, 1];
    expect(frechetDistance([0, 0], cov, [0, 0], cov)).toBeCloseTo(0, 8);
    expect(frechetDistance([1, 2], cov, [0, 0], cov)).toBeCloseTo(5, 8);
  });

  it("matches the closed form for diagonal covariances", () => {
    // sum (sqrt(a) - sqrt(b))^2 over the diagonal
    const d = frechetDistance([0, 0], [4, 0, 0, 9], [0, 0], [1, 0, 0, 1]);
    expect(d).toBeCloseTo((2 - 1) ** 2 + (3 - 1) ** 2, 8);
  });

  it("square root squares back", () => {
    const a = new Float64Array([4, 1, 0.5, 1, 3, 0.2, 0.5, 0.2, 2]);
    const r = sqrtPsd(a, 3);
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) {
        let s = 0;
        for (let k = 0; k < 3; k++) s += r[i * 3 + k]! * r[k * 3 + j]!;
        expect(s).toBeCloseTo(a[i * 3 + j]!, 8);
      }
  });

  it("computes an unbiased covariance like numpy.cov", () => {
    const { mu, cov } = meanCov(new Float32Array([1, 2, 3, 4, 5, 9]), 3, 2);
    expect(Array.from(mu)).toEqual([3, 5]);
    expect(Array.from(cov)).toEqual([4, 7, 7, 13]);
  });
});
