export type { Bus, Json, Kv, KvEntry, Subscription } from "@switchyard/contract";
export { DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_REQUEST_TIMEOUT_MS } from "@switchyard/contract";

/** True when a NATS-style subject pattern matches a subject. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== "*" && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}
