import { z } from "zod";
import { BUS_ENV, busConfigShape, connectBus } from "@switchyard/bus";
import type { Bus } from "@switchyard/contract";
import { parseOrThrow, readEnv } from "@switchyard/config";
import { str } from "./args";

/**
 * The CLI's NATS connection, configured as every service's is (SWITCHYARD_NATS,
 * SWITCHYARD_NATS_USER / SWITCHYARD_NATS_PASSWORD or SWITCHYARD_NATS_CREDS), `--nats`
 * overriding the address. Against `switchyard up`, use the operator user it prints.
 */
export function connectCliBus(flags: Record<string, unknown>): Promise<Bus> {
  const env = readEnv(BUS_ENV);
  const nats = str(flags, "nats");
  const cfg = parseOrThrow(z.object(busConfigShape), { ...env, ...(nats ? { nats } : {}) }, { what: "NATS settings" });
  return connectBus(cfg, "switchyard-cli");
}
