import { gatherRowsFrom } from "@switchyard/engine";
import { Code, SwitchyardError } from "@switchyard/errors";
import { type ExchangeRequestMsg, type ExchangeResponseMsg, rowSource } from "@switchyard/proto";
import type { HeldExperts } from "./held-experts";
import type { LayerTraffic } from "./runtime";

interface Contribution {
  readonly req: ExchangeRequestMsg;
  readonly resolve: (r: ExchangeResponseMsg) => void;
  readonly reject: (e: unknown) => void;
}

interface Barrier {
  readonly expected: ReadonlySet<string>;
  readonly got: Map<string, Contribution>;
  readonly timer: NodeJS.Timeout;
}

/**
 * The owner side of a tick: per layer, waits until every home of the tick has sent its
 * rows (its own included), runs each held expert once over the rows of all homes, and
 * answers each home with the output of every assignment it sent (views on the experts'
 * outputs where it can).
 */
export class ExpertOwner {
  private readonly barriers = new Map<string, Barrier>();
  /** Gathered expert inputs of the layers being computed (reused). */
  private readonly scratch = createScratch();
  /** Rows computed per global expert. */
  readonly expertRows: number[];

  constructor(
    private readonly D: number,
    private readonly E: number,
    layers: number,
    private readonly timeoutMs: number,
    private readonly traffic: readonly LayerTraffic[],
    private readonly held: HeldExperts,
  ) {
    this.expertRows = new Array(layers * E).fill(0);
  }

  exchange(req: ExchangeRequestMsg, local = false): Promise<ExchangeResponseMsg> {
    if (!local) {
      const t = this.traffic[req.layer];
      if (!t) return Promise.reject(new SwitchyardError(`layer ${req.layer} must be < ${this.traffic.length}`, Code.InvalidArgument));
      t.rowsReceived += req.rows;
      t.bytesReceived += req.rows * this.D * 4 + req.assignRow.byteLength + req.assignExpert.byteLength;
    }
    const bad = invalidExchange(req, this.D, this.E);
    if (bad) return Promise.reject(new SwitchyardError(`exchange from ${req.from}: ${bad}`, Code.InvalidArgument));
    const key = `${req.tick}/${req.micro ?? 0}/${req.layer}`;
    let b = this.barriers.get(key);
    if (!b) {
      const timer = setTimeout(() => this.failBarrier(key, new SwitchyardError(`tick ${req.tick} layer ${req.layer}: not every home sent its rows within ${this.timeoutMs} ms`, Code.Unavailable)), this.timeoutMs);
      timer.unref?.();
      b = { expected: new Set(req.homes), got: new Map(), timer };
      this.barriers.set(key, b);
    }
    const barrier = b;
    return new Promise<ExchangeResponseMsg>((resolve, reject) => {
      if (barrier.got.has(req.from)) {
        reject(new SwitchyardError(`tick ${req.tick} layer ${req.layer}: ${req.from} sent twice`, Code.AlreadyExists));
        return;
      }
      barrier.got.set(req.from, { req, resolve, reject });
      if ([...barrier.expected].every((h) => barrier.got.has(h))) {
        clearTimeout(barrier.timer);
        this.barriers.delete(key);
        this.computeLayer(req.tick, req.layer, [...barrier.got.values()], req.micros ?? 1).catch((e) => {
          for (const c of barrier.got.values()) c.reject(e);
        });
      }
    });
  }

  private failBarrier(key: string, e: SwitchyardError): void {
    const b = this.barriers.get(key);
    if (!b) return;
    this.barriers.delete(key);
    for (const c of b.got.values()) c.reject(e);
  }

  /** Runs each local expert once over the rows of every contribution. */
  private async computeLayer(tick: number, layer: number, contribs: Contribution[], micros: number): Promise<void> {
    const D = this.D;
    const E = this.E;
    // assignments of all contributions, grouped by expert
    const counts = new Int32Array(E + 1);
    for (const c of contribs) for (const e of c.req.assignExpert) counts[e + 1]!++;
    for (let e = 0; e < E; e++) counts[e + 1]! += counts[e]!;
    const n = counts[E]!;
    const who = new Int32Array(n);
    const row = new Int32Array(n);
    const slot = new Int32Array(n);
    const cursor = counts.slice(0, E);
    contribs.forEach((c, ci) => {
      const r = c.req;
      for (let i = 0; i < r.assignExpert.length; i++) {
        const p = cursor[r.assignExpert[i]!]!++;
        who[p] = ci;
        row[p] = r.assignRow[i]!;
        slot[p] = i;
      }
    });
    const active: number[] = [];
    for (let e = 0; e < E; e++) if (counts[e + 1]! > counts[e]!) active.push(e);
    // On an expert device x travels to its thread (a fresh buffer); on this process's
    // parts it is only read during the calls, so a scratch buffer serves again.
    const x = this.held.residency ? new Float32Array(n * D) : this.scratch.take(n * D);
    // Each assignment's row in the contributions' sources laid end to end (a home's own
    // contribution is a gather from its whole u: its index says which rows).
    const sources = contribs.map((c) => rowSource(c.req.u));
    const first = new Int32Array(contribs.length);
    for (let ci = 1; ci < contribs.length; ci++) first[ci] = first[ci - 1]! + sources[ci - 1]!.src.length / D;
    const at = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const { index } = sources[who[i]!]!;
      at[i] = first[who[i]!]! + (index ? index[row[i]!]! : row[i]!);
    }
    gatherRowsFrom(sources.map((s) => s.src), D, at, x);
    const off = Int32Array.from([...active.map((e) => counts[e]!), n]);
    const experts = Int32Array.from(active);
    let outs: readonly Float32Array[];
    try {
      outs = await this.held.run(tick, layer, experts, off, x, micros, D);
    } finally {
      if (!this.held.residency) this.scratch.give(x);
    }
    // Rows [a, b) of the layer's output (expert-major), which never straddle two experts here.
    const activeIdx = new Int32Array(E);
    active.forEach((e, k) => (activeIdx[e] = k));
    const rowsOf = (e: number, a: number, b: number) => outs[activeIdx[e]!]!.subarray((a - counts[e]!) * D, (b - counts[e]!) * D);
    for (const e of active) this.expertRows[layer * E + e]! += counts[e + 1]! - counts[e]!;
    // Output per assignment (unweighted; the home weights and sums in canonical order).
    // Within an expert the contributions' assignments lie in contribution order, so a
    // home that sent its assignments expert by expert (as homes do) gets views on the
    // experts' outputs.
    const start = counts.slice(0, E);
    contribs.forEach((c, ci) => {
      const ae = c.req.assignExpert;
      if (!ascending(ae)) {
        const yc = new Float32Array(ae.length * D);
        for (const e of active) for (let i = counts[e]!; i < counts[e + 1]!; i++) if (who[i] === ci) yc.set(rowsOf(e, i, i + 1), slot[i]! * D);
        c.resolve({ y: [yc] });
        return;
      }
      const chunks: Float32Array[] = [];
      for (let i = 0; i < ae.length; ) {
        const e = ae[i]!;
        let j = i;
        while (j < ae.length && ae[j] === e) j++;
        const b = start[e]!;
        chunks.push(rowsOf(e, b, b + j - i));
        start[e] = b + j - i;
        i = j;
      }
      c.resolve({ y: chunks });
    });
  }

  /** Fails every layer still waiting for homes. */
  close(): void {
    for (const key of [...this.barriers.keys()]) this.failBarrier(key, new SwitchyardError("worker is shutting down", Code.Unavailable));
  }
}

/**
 * Float32 buffers handed out and given back: a worker gathers every layer's expert
 * inputs (6.4 MB per layer at 128 images), and fresh buffers are external memory that
 * V8 answers with full mark-compacts every 64 MB.
 */
function createScratch(max = 4) {
  const free: Float32Array[] = [];
  return {
    /** A view of exactly `n` floats; its contents are unspecified. */
    take(n: number): Float32Array {
      const i = free.findIndex((b) => b.length >= n);
      const b = i >= 0 ? free.splice(i, 1)[0]! : new Float32Array(Math.ceil(n * 1.25));
      return b.subarray(0, n);
    },
    give(v: Float32Array): void {
      const b = new Float32Array(v.buffer as ArrayBuffer);
      if (free.length < max) free.push(b);
      else {
        // keep the largest
        const k = free.reduce((m, f, j) => (f.length < free[m]!.length ? j : m), 0);
        if (free[k]!.length < b.length) free[k] = b;
      }
    },
  };
}

/** Why an exchange request cannot be served, or undefined. */
function invalidExchange(req: ExchangeRequestMsg, D: number, E: number): string | undefined {
  const { src, index } = rowSource(req.u);
  if (index ? index.length !== req.rows || src.length % D !== 0 : src.length !== req.rows * D) return `u must hold rows*D = ${req.rows * D} floats`;
  if (req.assignRow.length !== req.assignExpert.length) return `assign_row has ${req.assignRow.length} entries, assign_expert ${req.assignExpert.length}: they must be equal`;
  for (let i = 0; i < req.assignRow.length; i++) {
    if (!(req.assignRow[i]! >= 0 && req.assignRow[i]! < req.rows)) return `assign_row[${i}] = ${req.assignRow[i]} must be >= 0 and < rows (${req.rows})`;
    if (!(req.assignExpert[i]! >= 0 && req.assignExpert[i]! < E)) return `assign_expert[${i}] = ${req.assignExpert[i]} must be >= 0 and < ${E}`;
  }
  return undefined;
}

function ascending(a: Int32Array): boolean {
  for (let i = 1; i < a.length; i++) if (a[i]! < a[i - 1]!) return false;
  return true;
}
