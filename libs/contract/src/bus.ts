/**
 * The control-plane bus: publish/subscribe, request/reply with queue groups, and a
 * key-value store with compare-and-set and watch. Payloads are JSON values (small
 * control messages; tensors travel over gRPC). Two implementations share this
 * interface: NATS (`createNatsBus`) and in-memory (`createMemoryBus`) for the
 * embedded single-process mode and unit tests.
 */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json | undefined };

export interface Subscription {
  unsubscribe(): void;
}

export interface KvEntry {
  readonly key: string;
  readonly value: Json;
  readonly revision: number;
}

export interface Kv {
  get(key: string): Promise<KvEntry | undefined>;
  /** Writes unconditionally; returns the new revision. */
  put(key: string, value: Json): Promise<number>;
  /** Writes only if the key does not exist (ALREADY_EXISTS otherwise). */
  create(key: string, value: Json): Promise<number>;
  /** Compare-and-set: writes only if the key's revision is `revision` (ABORTED otherwise). */
  update(key: string, value: Json, revision: number): Promise<number>;
  /** Calls `onEntry` with the current value (if any) and every later write of `key`. */
  watch(key: string, onEntry: (e: KvEntry) => void): Promise<Subscription>;
  /** Every stored revision of a key, oldest first. */
  history(key: string): Promise<KvEntry[]>;
  /** Removes a key and its history (a no-op when absent). */
  delete(key: string): Promise<void>;
  /** The keys that exist and match `filter` (NATS wildcards: `a.*`, `a.>`). */
  keys(filter: string): Promise<string[]>;
}

export interface Bus {
  publish(subject: string, payload: Json): void;
  /** `subject` may use NATS wildcards (`*` one token, `>` the rest). */
  subscribe(subject: string, handler: (payload: Json, subject: string) => void): Subscription;
  /** Serves requests; with a queue group, each request goes to one member only. `headers`: the request's message headers. */
  serve(subject: string, handler: (payload: Json, headers: Readonly<Record<string, string>>) => Promise<Json>, options?: { queue?: string }): Subscription;
  /**
   * One request, one reply; UNAVAILABLE when nobody serves the subject, DEADLINE_EXCEEDED on timeout.
   * `headers` travel as NATS message headers (e.g. W3C `traceparent`).
   */
  request(subject: string, payload: Json, options?: { timeoutMs?: number; headers?: Readonly<Record<string, string>> }): Promise<Json>;
  /**
   * A KV bucket, created if missing. `maxAgeMs`: entries (and the markers deletes leave)
   * older than this are dropped by the store; every opener of a bucket passes the same.
   */
  kv(bucket: string, options?: { readonly maxAgeMs?: number }): Promise<Kv>;
  /** Waits until published messages have reached the server (no-op in memory). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * NATS's default max_payload (1 MiB). Messages larger than this are refused by the
 * server and by the in-memory bus alike; tensors travel over gRPC, not the bus.
 */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** A request that nobody answers within this time fails with DEADLINE_EXCEEDED. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
