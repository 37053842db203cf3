import { readFileSync } from "node:fs";
import { type MsgHdrs, type NatsConnection, connect, credsAuthenticator, headers as natsHeaders } from "@nats-io/transport-node";
import { Kvm, type KV } from "@nats-io/kv";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type Bus, DEFAULT_REQUEST_TIMEOUT_MS, type Json, type Kv, type KvEntry, type Subscription } from "./bus";
import { fromNatsError } from "./nats-error";

export interface NatsBusOptions {
  /** e.g. "127.0.0.1:4222"; several for a cluster. */
  readonly servers: string | string[];
  /** Connection name shown by the server (service and id). */
  readonly name?: string;
  /** Path of a NATS .creds file (user JWT and nkey seed), e.g. mounted from a Secret. */
  readonly credentials?: string;
  /** User and password (nats-auth.ts: one user per role). */
  readonly user?: string;
  readonly password?: string;
  /** Revisions kept per KV key (plan history for rollback). */
  readonly kvHistory?: number;
}

/** Plans are rolled back to earlier revisions: keep a few. */
export const DEFAULT_KV_HISTORY = 10;

const enc = (v: Json) => new TextEncoder().encode(JSON.stringify(v ?? null));
const dec = (b: Uint8Array): Json => (b.length === 0 ? null : (JSON.parse(new TextDecoder().decode(b)) as Json));

class NatsKv implements Kv {
  constructor(private readonly kv: KV) {}
  async get(key: string): Promise<KvEntry | undefined> {
    try {
      const e = await this.kv.get(key);
      if (!e || e.operation !== "PUT") return undefined;
      return { key, value: dec(e.value), revision: e.revision };
    } catch (err) {
      throw fromNatsError(err, `kv get ${key}`);
    }
  }
  async put(key: string, value: Json) {
    try {
      return await this.kv.put(key, enc(value));
    } catch (err) {
      throw fromNatsError(err, `kv put ${key}`);
    }
  }
  async create(key: string, value: Json) {
    try {
      return await this.kv.create(key, enc(value));
    } catch (err) {
      const e = fromNatsError(err, `kv create ${key}`);
      throw e.code === Code.Aborted ? new SwitchyardError(`kv key ${key} already exists`, Code.AlreadyExists, { cause: err }) : e;
    }
  }
  async update(key: string, value: Json, revision: number) {
    try {
      return await this.kv.update(key, enc(value), revision);
    } catch (err) {
      const e = fromNatsError(err, `kv update ${key}`);
      throw new SwitchyardError(`kv key ${key} is not at revision ${revision}`, e.code === Code.Unavailable ? Code.Aborted : e.code, { cause: err });
    }
  }
  async watch(key: string, onEntry: (e: KvEntry) => void): Promise<Subscription> {
    const it = await this.kv.watch({ key });
    void (async () => {
      for await (const e of it) {
        if (e.operation === "PUT") onEntry({ key: e.key, value: dec(e.value), revision: e.revision });
      }
    })();
    return { unsubscribe: () => it.stop() };
  }
  async history(key: string): Promise<KvEntry[]> {
    const out: KvEntry[] = [];
    const it = await this.kv.history({ key });
    for await (const e of it) if (e.operation === "PUT") out.push({ key: e.key, value: dec(e.value), revision: e.revision });
    return out;
  }
  async delete(key: string) {
    try {
      await this.kv.purge(key);
    } catch (err) {
      throw fromNatsError(err, `kv delete ${key}`);
    }
  }
  async keys(filter: string) {
    try {
      const out: string[] = [];
      for await (const k of await this.kv.keys(filter)) out.push(k);
      return out;
    } catch (err) {
      throw fromNatsError(err, `kv keys ${filter}`);
    }
  }
}

class NatsBus implements Bus {
  private readonly kvs = new Map<string, Promise<Kv>>();
  constructor(
    private readonly nc: NatsConnection,
    private readonly kvHistory: number,
  ) {}

  publish(subject: string, payload: Json): void {
    try {
      this.nc.publish(subject, enc(payload));
    } catch (e) {
      throw fromNatsError(e, `publish ${subject}`);
    }
  }

  subscribe(subject: string, handler: (payload: Json, subject: string) => void): Subscription {
    const sub = this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (!err) handler(dec(msg.data), msg.subject);
      },
    });
    return { unsubscribe: () => sub.unsubscribe() };
  }

  serve(subject: string, handler: (payload: Json, headers: Readonly<Record<string, string>>) => Promise<Json>, options: { queue?: string } = {}): Subscription {
    const sub = this.nc.subscribe(subject, {
      ...(options.queue ? { queue: options.queue } : {}),
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          let reply: Json;
          try {
            const h: Record<string, string> = {};
            if (msg.headers) for (const k of msg.headers.keys()) h[k] = msg.headers.get(k);
            reply = await handler(dec(msg.data), h);
          } catch (e) {
            const se = SwitchyardError.from(e);
            reply = { error: { code: se.code, message: se.rawMessage } };
          }
          msg.respond(enc(reply));
        })();
      },
    });
    return { unsubscribe: () => sub.unsubscribe() };
  }

  async request(subject: string, payload: Json, options: { timeoutMs?: number; headers?: Readonly<Record<string, string>> } = {}): Promise<Json> {
    let reply: Json;
    try {
      let hs: MsgHdrs | undefined;
      if (options.headers && Object.keys(options.headers).length > 0) {
        hs = natsHeaders();
        for (const [k, v] of Object.entries(options.headers)) hs.set(k, v);
      }
      const m = await this.nc.request(subject, enc(payload), { timeout: options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, ...(hs ? { headers: hs } : {}) });
      reply = dec(m.data);
    } catch (e) {
      throw fromNatsError(e, `request ${subject}`);
    }
    return unwrapReply(reply);
  }

  kv(bucket: string, options: { readonly maxAgeMs?: number } = {}): Promise<Kv> {
    let p = this.kvs.get(bucket);
    if (!p) {
      p = new Kvm(this.nc)
        .create(bucket, { history: this.kvHistory, ...(options.maxAgeMs ? { ttl: options.maxAgeMs } : {}) })
        .then((kv) => new NatsKv(kv) as Kv)
        .catch((e) => {
          this.kvs.delete(bucket);
          throw fromNatsError(e, `kv bucket ${bucket}`);
        });
      this.kvs.set(bucket, p);
    }
    return p;
  }

  async flush(): Promise<void> {
    try {
      await this.nc.flush();
    } catch (e) {
      // e.g. "connection disconnected" while NATS is away: transient, the client may retry
      throw fromNatsError(e, "flush to NATS");
    }
  }

  async close(): Promise<void> {
    if (this.nc.isClosed()) return;
    try {
      await this.nc.drain();
    } catch {
      await this.nc.close();
    }
  }
}

/** A handler's thrown error travels as {error: {code, message}} and is rethrown here. */
export function unwrapReply(reply: Json): Json {
  if (reply && typeof reply === "object" && !Array.isArray(reply) && reply.error && typeof reply.error === "object" && !Array.isArray(reply.error)) {
    const e = reply.error as { code?: Json; message?: Json };
    if (typeof e.code === "number") throw new SwitchyardError(String(e.message ?? "remote error"), e.code as Code);
  }
  return reply;
}

export async function createNatsBus(options: NatsBusOptions): Promise<Bus> {
  // A user JWT + nkey seed in a .creds file (NATS decentralised auth); user:password
  // and tokens may also be given in the URL (nats://user:pass@host:4222).
  let creds: Uint8Array | undefined;
  if (options.credentials) {
    try {
      creds = readFileSync(options.credentials);
    } catch (e) {
      throw new SwitchyardError(`nats credentials ${options.credentials} cannot be read: ${(e as Error).message}`, Code.InvalidArgument, { field: "natsCredentials", cause: e });
    }
  }
  try {
    const nc = await connect({
      servers: options.servers,
      ...(creds ? { authenticator: credsAuthenticator(creds) } : {}),
      ...(options.user ? { user: options.user, pass: options.password ?? "" } : {}),
      ...(options.name ? { name: options.name } : {}),
      maxReconnectAttempts: -1,
    });
    return new NatsBus(nc, options.kvHistory ?? DEFAULT_KV_HISTORY);
  } catch (e) {
    throw fromNatsError(e, `connect to NATS at ${String(options.servers)}`);
  }
}
