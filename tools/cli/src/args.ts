import { Code, SwitchyardError } from "@switchyard/errors";

/** Numeric flag: INVALID_ARGUMENT naming the flag when it is not a number. */
export function num(flags: Record<string, unknown>, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
    throw new SwitchyardError(`--${name} ${JSON.stringify(v)} must be a number`, Code.InvalidArgument, { field: name });
  }
  return n;
}

export function str(flags: Record<string, unknown>, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

/** Drops undefined values so schema defaults apply. */
export function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
