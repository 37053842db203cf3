import type { z } from "zod";
import { Code, SwitchyardError, formatFieldPath } from "@switchyard/errors";

/** Longest rendering of an offending value inside an error message. */
const MAX_VALUE_CHARS = 60;

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

function repr(value: unknown): string {
  let s: string;
  if (typeof value === "string") s = JSON.stringify(value);
  else if (typeof value === "bigint") s = `${value}`;
  else if (value === undefined) s = "(missing)";
  else {
    try {
      s = JSON.stringify(value) ?? String(value);
    } catch {
      s = String(value);
    }
  }
  return s.length > MAX_VALUE_CHARS ? `${s.slice(0, MAX_VALUE_CHARS)}…` : s;
}

/** One zod issue as `field value what-is-allowed`. */
export function describeIssue(issue: z.core.$ZodIssue, input: unknown, prefix: readonly (string | number)[] = []): string {
  const path = [...prefix, ...(issue.path as (string | number)[])];
  const field = formatFieldPath(path) || "(root)";
  const value = valueAt(input, issue.path as PropertyKey[]);
  // Messages set by our own schemas start with "must": they say what is allowed.
  if (issue.message.startsWith("must")) return `${field} ${repr(value)} ${issue.message}`;
  switch (issue.code) {
    case "invalid_type":
      return value === undefined
        ? `${field} is required (${issue.expected})`
        : `${field} ${repr(value)} must be ${issue.expected}`;
    case "too_small": {
      const op = issue.inclusive ? ">=" : ">";
      const what = issue.origin === "string" || issue.origin === "array" ? " in length" : "";
      return `${field} ${repr(value)} must be ${op} ${String(issue.minimum)}${what}`;
    }
    case "too_big": {
      const op = issue.inclusive ? "<=" : "<";
      const what = issue.origin === "string" || issue.origin === "array" ? " in length" : "";
      return `${field} ${repr(value)} must be ${op} ${String(issue.maximum)}${what}`;
    }
    case "invalid_value":
      return `${field} ${repr(value)} must be one of ${issue.values.map((v) => repr(v)).join(", ")}`;
    case "unrecognized_keys":
      return `${issue.keys.map((k) => formatFieldPath([...path, k])).join(", ")} is not a known field`;
    case "invalid_format":
      return `${field} ${repr(value)} must be a valid ${issue.format}`;
    case "not_multiple_of":
      return `${field} ${repr(value)} must be a multiple of ${String(issue.divisor)}`;
    default:
      return `${field} ${repr(value)}: ${issue.message}`;
  }
}

/** Issues named in one error message; the rest are counted. */
export const MAX_LISTED_ISSUES = 5;
/** Longest description of one issue (field paths are client strings too). */
const MAX_ISSUE_CHARS = 200;

function clipPart(s: string): string {
  return s.length <= MAX_ISSUE_CHARS ? s : `${s.slice(0, MAX_ISSUE_CHARS)}…`;
}

/**
 * Converts a zod failure into INVALID_ARGUMENT naming the offending fields (the first
 * MAX_LISTED_ISSUES, then how many more); the first field is kept on `error.field`.
 */
export function fromZodError(error: z.ZodError, input: unknown, options: { what?: string; prefix?: readonly (string | number)[] } = {}): SwitchyardError {
  const prefix = options.prefix ?? [];
  // Bounded: a request with a thousand bad fields gets the first few named, not an echo of itself.
  const parts = error.issues.slice(0, MAX_LISTED_ISSUES).map((i) => clipPart(describeIssue(i, input, prefix)));
  if (error.issues.length > MAX_LISTED_ISSUES) parts.push(`… and ${error.issues.length - MAX_LISTED_ISSUES} more`);
  const first = error.issues[0];
  const field = first ? formatFieldPath([...prefix, ...(first.path as (string | number)[])]) : undefined;
  const lead = options.what ? `${options.what}: ` : "";
  return new SwitchyardError(`${lead}${parts.join("; ")}`, Code.InvalidArgument, {
    cause: error,
    ...(field ? { field } : {}),
  });
}

/** Parses `input` with `schema` or throws INVALID_ARGUMENT naming the field(s). */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, options: { what?: string; prefix?: readonly (string | number)[] } = {}): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success) throw fromZodError(r.error, input, options);
  return r.data;
}
