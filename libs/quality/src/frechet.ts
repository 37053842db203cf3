/**
 * Fréchet distance between Gaussians fitted to feature sets (FID-style):
 *   |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1^1/2 S2 S1^1/2)^1/2 )
 * Matrices are dense row-major n×n float64; square roots via Jacobi eigendecomposition
 * (symmetric PSD inputs; negative round-off eigenvalues are clamped to 0).
 */

/** Eigen-decomposition of a symmetric matrix: values and column eigenvectors (row-major). */
export function symmetricEigen(a: Float64Array, n: number, maxSweeps = 60): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q]! ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * n + q]! - m[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p]!, mkq = m[k * n + q]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k]!, mqk = m[q * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!, vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = m[i * n + i]!;
  return { values, vectors: v };
}

/** Square root of a symmetric PSD matrix. */
export function sqrtPsd(a: Float64Array, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(a, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(Math.max(0, values[k]!));
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = vectors[i * n + k]! * s;
      for (let j = 0; j < n; j++) out[i * n + j]! += vik * vectors[j * n + k]!;
    }
  }
  return out;
}

function matmul(a: Float64Array, b: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) {
      const aik = a[i * n + k]!;
      for (let j = 0; j < n; j++) out[i * n + j]! += aik * b[k * n + j]!;
    }
  return out;
}

function trace(a: Float64Array, n: number): number {
  let t = 0;
  for (let i = 0; i < n; i++) t += a[i * n + i]!;
  return t;
}

export function frechetDistance(mu1: ArrayLike<number>, cov1: ArrayLike<number>, mu2: ArrayLike<number>, cov2: ArrayLike<number>): number {
  const n = mu1.length;
  let d = 0;
  for (let i = 0; i < n; i++) d += ((mu1[i] as number) - (mu2[i] as number)) ** 2;
  const s1 = Float64Array.from(cov1);
  const s2 = Float64Array.from(cov2);
  const r1 = sqrtPsd(s1, n);
  const inner = matmul(matmul(r1, s2, n), r1, n);
  // symmetrise round-off before the second square root
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) inner[i * n + j] = inner[j * n + i] = (inner[i * n + j]! + inner[j * n + i]!) / 2;
  return d + trace(s1, n) + trace(s2, n) - 2 * trace(sqrtPsd(inner, n), n);
}

/** Mean [F] and covariance [F*F] (unbiased, like numpy.cov) of `rows` feature vectors. */
export function meanCov(features: Float32Array, rows: number, dim: number): { mu: Float64Array; cov: Float64Array } {
  const mu = new Float64Array(dim);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dim; j++) mu[j]! += features[r * dim + j]!;
  for (let j = 0; j < dim; j++) mu[j]! /= rows;
  const cov = new Float64Array(dim * dim);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < dim; i++) {
      const di = features[r * dim + i]! - mu[i]!;
      for (let j = i; j < dim; j++) cov[i * dim + j]! += di * (features[r * dim + j]! - mu[j]!);
    }
  }
  for (let i = 0; i < dim; i++)
    for (let j = i; j < dim; j++) {
      const c = cov[i * dim + j]! / Math.max(1, rows - 1);
      cov[i * dim + j] = c;
      cov[j * dim + i] = c;
    }
  return { mu, cov };
}
