/**
 * The one place environment variables are read. Services declare which variables
 * map to which option (dot-path) and get a raw object to merge under their config.
 */
export type EnvMap = Readonly<Record<string, string>>;

/** A value read from the environment, coerced from string where a schema expects it. */
export function readEnv(map: EnvMap, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(map)) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    setPath(out, path.split("."), coerce(raw));
  }
  return out;
}

function coerce(raw: string): unknown {
  if (raw === "true") return true;
  if (raw === "false") return false;
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw);
  return raw;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i] as string;
    if (typeof cur[k] !== "object" || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1] as string] = value;
}

/** Deep-merges plain objects; later sources win. Arrays and scalars are replaced. */
export function mergeRaw(...sources: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const src of sources) {
    if (src === null || typeof src !== "object" || Array.isArray(src)) continue;
    for (const [k, v] of Object.entries(src)) {
      const prev = out[k];
      out[k] =
        v !== null && typeof v === "object" && !Array.isArray(v) && prev !== null && typeof prev === "object" && !Array.isArray(prev)
          ? mergeRaw(prev, v)
          : v;
    }
  }
  return out;
}
