import { z } from "zod";
import { type Bus, DEFAULT_SUBJECT_PREFIX } from "@switchyard/contract";
import { createNatsBus } from "./nats-bus";

/** Where every role and the CLI look for NATS unless told otherwise (SWITCHYARD_NATS). */
export const DEFAULT_NATS_SERVERS = "127.0.0.1:4222";

/** The bus settings every role's configuration has, and their environment variables. */
export const BUS_ENV = {
  SWITCHYARD_NATS: "nats",
  SWITCHYARD_NATS_CREDS: "natsCredentials",
  SWITCHYARD_NATS_USER: "natsUser",
  SWITCHYARD_NATS_PASSWORD: "natsPassword",
  SWITCHYARD_SUBJECT_PREFIX: "subjectPrefix",
} as const;

export const busConfigShape = {
  nats: z.string().min(1).default(DEFAULT_NATS_SERVERS),
  /** NATS .creds file (user JWT + nkey seed); unset = none (user:password may be in the URL). */
  natsCredentials: z.string().min(1).optional(),
  /** NATS user and password (the role's user, nats-auth.ts); unset = none. */
  natsUser: z.string().min(1).max(256).optional(),
  natsPassword: z.string().min(1).max(1024).optional(),
  /** Isolates clusters sharing one NATS server. */
  subjectPrefix: z.string().min(1).default(DEFAULT_SUBJECT_PREFIX),
};

export interface BusConfig {
  readonly nats: string;
  readonly natsCredentials?: string | undefined;
  readonly natsUser?: string | undefined;
  readonly natsPassword?: string | undefined;
}

/** Connects a role to NATS as its configuration says; `name` shows in the server's connection list. */
export function connectBus(cfg: BusConfig, name: string): Promise<Bus> {
  return createNatsBus({
    servers: cfg.nats, name,
    ...(cfg.natsCredentials ? { credentials: cfg.natsCredentials } : {}),
    ...(cfg.natsUser ? { user: cfg.natsUser, password: cfg.natsPassword ?? "" } : {}),
  });
}
