import { copiesOf, servingCopy } from "@switchyard/contract";
import { type ExpertExecutor, type ExpertGroups, type LayerOutputs, alongside } from "@switchyard/engine";
import { Code, SwitchyardError } from "@switchyard/errors";
import type { ExchangeRequestMsg, ExchangeResponseMsg, PeerClient, TickRequestMsg } from "@switchyard/proto";
import type { LayerTraffic } from "./runtime";

/**
 * The home side of a tick: per MoE layer, the rows of this worker's images go to the
 * workers holding their experts (one Exchange to every holder, possibly empty, since
 * holders wait for every home), and the answers are weighted and summed in the
 * engine's order.
 */
export interface HomeContext {
  readonly id: string;
  /** Hidden size, experts per layer, layers. */
  readonly D: number;
  readonly E: number;
  readonly layers: number;
  readonly peers: PeerClient;
  /** Per-layer traffic counters (sent rows and bytes, received answers). */
  readonly traffic: readonly LayerTraffic[];
  /** This worker's own expert owner: its share goes there without the wire. */
  exchangeLocal(msg: ExchangeRequestMsg): Promise<ExchangeResponseMsg>;
}

/** The ExpertExecutor of one tick on its home: splits each layer's assignments by the copy that serves them, exchanges, combines. */
export function homeExecutor(ctx: HomeContext, req: TickRequestMsg, micro = 0, micros = 1): ExpertExecutor {
  // Every home sends every expert holder one message per layer (holders wait for all homes).
  const owners = [...new Set([...req.owners, ...(req.replicas ?? []).flat()])].sort();
  // Experts with redundant copies (the rest have one holder, their owner).
  const copies = (g: number): readonly string[] | undefined => (req.replicas?.[g]?.length ? copiesOf(req, g) : undefined);
  const slot = new Map(owners.map((w, k) => [w, k]));
  const W = owners.length;
  return {
    runLayer: async (layer: number, u: Float32Array, groups: ExpertGroups, rows: number, init: () => Promise<Float32Array | undefined>): Promise<LayerOutputs> => {
      const D = ctx.D;
      const nA = groups.row.length;
      // Split the assignments by owner (typed arrays, one pass): per owner the unique
      // rows it needs (first-use order), and per assignment its local row, expert, and
      // position in the engine's expert-major order.
      const nRows = new Int32Array(W);
      const nAs = new Int32Array(W);
      const rowsOf = owners.map(() => new Int32Array(nA));
      const ar = owners.map(() => new Int32Array(nA));
      const ae = owners.map(() => new Int32Array(nA));
      const pos = owners.map(() => new Int32Array(nA));
      const local = new Int32Array(rows * W).fill(-1); // [row, owner] → local row
      for (let e = 0; e < groups.numExperts; e++) {
        const g = layer * ctx.E + e;
        const owner = req.owners[g]!;
        // With copies, the one dispatch rule (servingCopy) picks the copy per row.
        const c = copies(g);
        const fixed = slot.get(owner);
        if (fixed === undefined) throw new SwitchyardError(`expert ${layer}/${e} owner ${owner} is unknown`, Code.Internal);
        for (let i = groups.offsets[e]!; i < groups.offsets[e + 1]!; i++) {
          const r = groups.row[i]!;
          const k = c ? slot.get(servingCopy(c, ctx.id, r))! : fixed;
          let l = local[r * W + k]!;
          if (l < 0) {
            l = nRows[k]!++;
            local[r * W + k] = l;
            rowsOf[k]![l] = r;
          }
          const j = nAs[k]!++;
          ar[k]![j] = l;
          ae[k]![j] = e;
          pos[k]![j] = i;
        }
      }
      // Where each assignment's expert output is (engine's expert-major order): chunk
      // and float offset, so the sum below reads the answers in place.
      const chunkOf = new Int32Array(nA);
      const offOf = new Int32Array(nA);
      const chunks: Float32Array[] = [];
      const exchanges = owners.map(async (owner, k) => {
        const n = nAs[k]!;
        const msg: ExchangeRequestMsg = {
          tick: req.tick,
          layer,
          from: ctx.id,
          homes: req.homes,
          rows: nRows[k]!,
          u: { src: u, index: rowsOf[k]!.subarray(0, nRows[k]!), dim: D },
          assignRow: ar[k]!.subarray(0, n),
          assignExpert: ae[k]!.subarray(0, n),
          ...(micros > 1 ? { micro, micros } : {}),
        };
        let out: readonly Float32Array[];
        if (owner === ctx.id) out = (await ctx.exchangeLocal(msg)).y;
        else {
          const t = ctx.traffic[layer]!;
          t.rowsSent += msg.rows;
          t.bytesSent += msg.rows * D * 4 + msg.assignRow.byteLength + msg.assignExpert.byteLength;
          out = (await ctx.peers.exchange(owner, msg)).y;
          for (const c of out) t.bytesReceived += c.byteLength;
        }
        const p = pos[k]!;
        let j = 0;
        for (const c of out) {
          const q = chunks.push(c) - 1;
          for (let o = 0; o + D <= c.length && j < n; o += D, j++) {
            chunkOf[p[j]!] = q;
            offOf[p[j]!] = o;
          }
        }
        const floats = out.reduce((a, c) => a + c.length, 0);
        if (j !== n || floats !== n * D) throw new SwitchyardError(`exchange with ${owner}: ${floats / D} outputs for ${n} assignments`, Code.Internal);
      });
      // The rows are on their way: the shared expert (the base) runs meanwhile. The
      // engine mixes the answers in place, in ascending expert order per row exactly as
      // with experts in-process (mixAndCombine), so that results are bitwise the same
      // wherever experts live (a different summation order flips near-tie routing
      // decisions later on).
      const [base] = await alongside(Promise.all(exchanges), init);
      return { base, outputs: { chunks, chunkOf, offOf } };
    },
  };
}

/** A micro-batch without images: its (empty) part of every layer's exchange still goes to every holder. */
export async function sendEmpty(ctx: HomeContext, req: TickRequestMsg, micro: number, micros: number): Promise<void> {
  const run = homeExecutor(ctx, req, micro, micros);
  const E = ctx.E;
  const empty: ExpertGroups = { numExperts: E, offsets: new Int32Array(E + 1), row: new Int32Array(0), weight: new Float32Array(0) };
  for (let l = 0; l < ctx.layers; l++) await run.runLayer(l, new Float32Array(0), empty, 0, async () => undefined);
}
