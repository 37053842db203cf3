import { Code, SwitchyardError } from "@switchyard/errors";
import { type Bus, DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_REQUEST_TIMEOUT_MS, type Json, type Kv, type KvEntry, type Subscription, subjectMatches } from "./bus";

interface Sub {
  pattern: string;
  handler: (payload: Json, subject: string) => void;
  queue: string | undefined;
  serve: ((payload: Json, headers: Readonly<Record<string, string>>) => Promise<Json>) | undefined;
}

/**
 * Deep copy so that no subscriber shares objects with a publisher (as over a wire),
 * refusing what NATS would refuse: payloads over its limit.
 */
function wire(v: Json, subject = ""): Json {
  if (v === undefined) return null;
  const text = JSON.stringify(v);
  if (text.length > DEFAULT_MAX_PAYLOAD_BYTES / 4 && Buffer.byteLength(text) > DEFAULT_MAX_PAYLOAD_BYTES) {
    throw new SwitchyardError(`message on ${subject} of ${Buffer.byteLength(text)} bytes exceeds the bus payload limit of ${DEFAULT_MAX_PAYLOAD_BYTES} bytes`, Code.ResourceExhausted);
  }
  return JSON.parse(text) as Json;
}

class MemoryKv implements Kv {
  private readonly entries = new Map<string, KvEntry[]>();
  private readonly watchers = new Map<string, Set<(e: KvEntry) => void>>();
  constructor(private readonly rev: { n: number }) {}

  private write(key: string, value: Json): number {
    const e: KvEntry = { key, value: wire(value), revision: ++this.rev.n };
    const h = this.entries.get(key) ?? [];
    h.push(e);
    this.entries.set(key, h);
    for (const w of this.watchers.get(key) ?? []) queueMicrotask(() => w(e));
    return e.revision;
  }
  async get(key: string) {
    return this.entries.get(key)?.at(-1);
  }
  async put(key: string, value: Json) {
    return this.write(key, value);
  }
  async create(key: string, value: Json) {
    if (this.entries.has(key)) throw new SwitchyardError(`kv key ${key} already exists`, Code.AlreadyExists);
    return this.write(key, value);
  }
  async update(key: string, value: Json, revision: number) {
    const cur = this.entries.get(key)?.at(-1)?.revision ?? 0;
    if (cur !== revision) throw new SwitchyardError(`kv key ${key} is at revision ${cur}, not ${revision}`, Code.Aborted);
    return this.write(key, value);
  }
  async watch(key: string, onEntry: (e: KvEntry) => void): Promise<Subscription> {
    const set = this.watchers.get(key) ?? new Set();
    set.add(onEntry);
    this.watchers.set(key, set);
    const cur = this.entries.get(key)?.at(-1);
    if (cur) queueMicrotask(() => onEntry(cur));
    return { unsubscribe: () => set.delete(onEntry) };
  }
  async history(key: string) {
    return [...(this.entries.get(key) ?? [])];
  }
  async delete(key: string) {
    this.entries.delete(key);
  }
  async keys(filter: string) {
    return [...this.entries.keys()].filter((k) => subjectMatches(filter, k));
  }
}

class MemoryBus implements Bus {
  private readonly subs = new Set<Sub>();
  private readonly kvs = new Map<string, MemoryKv>();
  private readonly rev = { n: 0 };
  private rr = 0;
  private closed = false;

  publish(subject: string, payload: Json): void {
    if (this.closed) return;
    const msg = wire(payload, subject);
    const groups = new Map<string, Sub[]>();
    for (const s of this.subs) {
      if (s.serve || !subjectMatches(s.pattern, subject)) continue;
      if (s.queue) groups.set(s.queue, [...(groups.get(s.queue) ?? []), s]);
      else queueMicrotask(() => s.handler(msg, subject));
    }
    for (const members of groups.values()) {
      const s = members[this.rr++ % members.length]!;
      queueMicrotask(() => s.handler(msg, subject));
    }
  }

  subscribe(subject: string, handler: (payload: Json, subject: string) => void): Subscription {
    const s: Sub = { pattern: subject, handler, queue: undefined, serve: undefined };
    this.subs.add(s);
    return { unsubscribe: () => this.subs.delete(s) };
  }

  serve(subject: string, handler: (payload: Json, headers: Readonly<Record<string, string>>) => Promise<Json>, options: { queue?: string } = {}): Subscription {
    const s: Sub = { pattern: subject, handler: () => undefined, queue: options.queue, serve: handler };
    this.subs.add(s);
    return { unsubscribe: () => this.subs.delete(s) };
  }

  async request(subject: string, payload: Json, options: { timeoutMs?: number; headers?: Readonly<Record<string, string>> } = {}): Promise<Json> {
    if (this.closed) throw new SwitchyardError("bus is closed", Code.Unavailable);
    const servers = [...this.subs].filter((s) => s.serve && subjectMatches(s.pattern, subject));
    if (servers.length === 0) throw new SwitchyardError(`no responders for ${subject}`, Code.Unavailable);
    const s = servers[this.rr++ % servers.length]!;
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      return wire(
        await Promise.race([
          (async () => s.serve!(wire(payload), { ...(options.headers ?? {}) }))(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new SwitchyardError(`request to ${subject} timed out after ${timeoutMs} ms`, Code.DeadlineExceeded)), timeoutMs);
          }),
        ]),
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** `maxAgeMs` is not applied in memory (the process does not live that long). */
  async kv(bucket: string, _options?: { readonly maxAgeMs?: number }): Promise<Kv> {
    let kv = this.kvs.get(bucket);
    if (!kv) this.kvs.set(bucket, (kv = new MemoryKv(this.rev)));
    return kv;
  }

  async flush(): Promise<void> {
    await new Promise((r) => setImmediate(r));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.subs.clear();
  }
}

/** The in-memory bus: same semantics as NATS within one process. */
export function createMemoryBus(): Bus {
  return new MemoryBus();
}
