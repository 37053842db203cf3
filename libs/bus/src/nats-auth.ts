import { randomBytes } from "node:crypto";

/**
 * Who may do what on NATS. Each role connects as its own user, and the server lets it
 * publish and subscribe only where its work is: a gateway cannot publish worker
 * heartbeats or request events, a worker cannot publish results or submit requests,
 * nothing but a scheduler writes the plans in force or the request journal. An operator
 * (the CLI, benches) may do anything. `switchyard up` generates the users and starts
 * nats-server with `natsAuthorizationConfig`; on Kubernetes the same block configures
 * the NATS the chart connects to (k8s/switchyard/README.md), and the chart takes each
 * role's password from a Secret.
 */
export const NATS_ROLES = ["gateway", "scheduler", "worker", "operator"] as const;
export type NatsRole = (typeof NATS_ROLES)[number];

export interface NatsUser {
  readonly user: string;
  readonly password: string;
}
export type NatsUsers = Readonly<Record<NatsRole, NatsUser>>;

/** One user per role, named after it, each with a fresh 192-bit password. */
export function generateNatsUsers(): NatsUsers {
  const one = (role: NatsRole): NatsUser => ({ user: `switchyard-${role}`, password: randomBytes(24).toString("base64url") });
  return { gateway: one("gateway"), scheduler: one("scheduler"), worker: one("worker"), operator: one("operator") };
}

export interface NatsPermissions {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
  /** May answer requests it received (the reply subjects), and nothing else on _INBOX. */
  readonly allowResponses: boolean;
}

/** The JetStream API a KV client needs to read and watch bucket `b` (nats.js: stream info, ordered consumers, direct get). */
function kvRead(b: string): string[] {
  const s = `KV_${b}`;
  return [
    "$JS.API.INFO", `$JS.API.STREAM.INFO.${s}`, `$JS.API.STREAM.CREATE.${s}`, `$JS.API.STREAM.MSG.GET.${s}`, `$JS.API.DIRECT.GET.${s}`, `$JS.API.DIRECT.GET.${s}.>`,
    `$JS.API.CONSUMER.CREATE.${s}`, `$JS.API.CONSUMER.CREATE.${s}.>`, `$JS.API.CONSUMER.INFO.${s}.>`, `$JS.API.CONSUMER.DELETE.${s}.>`, `$JS.API.CONSUMER.MSG.NEXT.${s}.>`,
    `$JS.FC.${s}.>`, `$JS.ACK.${s}.>`,
  ];
}

/** Reading, plus writing and purging keys of bucket `b`. */
function kvWrite(b: string): string[] {
  return [...kvRead(b), `$JS.API.STREAM.UPDATE.KV_${b}`, `$JS.API.STREAM.MSG.DELETE.KV_${b}`, `$KV.${b}.>`];
}

/** A role's permissions on the subjects of prefix `p` (subjects.ts). */
export function rolePermissions(role: NatsRole, p: string): NatsPermissions {
  const perm = permissionsOf(role, p);
  return { ...perm, publish: [...new Set(perm.publish)], subscribe: [...new Set(perm.subscribe)] };
}

function permissionsOf(role: NatsRole, p: string): NatsPermissions {
  const plans = `${p}-plans`;
  const requests = `${p}-requests`;
  switch (role) {
    case "gateway":
      return {
        publish: [`${p}.intake.>`, `${p}.cancel`, `${p}.resend`, ...kvRead(requests)],
        subscribe: [`${p}.events.>`, `${p}.workers.*.heartbeat`, `${p}.workers.*.leave`, `${p}.metrics.scheduler.*`, "_INBOX.>"],
        allowResponses: false,
      };
    case "scheduler":
      return {
        publish: [`${p}.events.>`, `${p}.metrics.scheduler.*`, ...kvWrite(plans), ...kvWrite(requests)],
        subscribe: [`${p}.intake.>`, `${p}.cancel`, `${p}.resend`, `${p}.workers.*.heartbeat`, `${p}.workers.*.leave`, `${p}.workers.*.drain`, "_INBOX.>"],
        allowResponses: true,
      };
    case "worker":
      return {
        publish: [`${p}.workers.*.heartbeat`, `${p}.workers.*.leave`, `${p}.workers.*.drain`, ...kvRead(plans)],
        subscribe: [`${p}.workers.*.heartbeat`, `${p}.workers.*.leave`, "_INBOX.>"],
        allowResponses: false,
      };
    case "operator":
      return { publish: [">"], subscribe: [">"], allowResponses: true };
  }
}

const quote = (s: string) => JSON.stringify(s);

/**
 * The nats-server `authorization` block for `users` on prefix `p`: one user per role
 * with its permissions. Clients that give no user are refused.
 */
export function natsAuthorizationConfig(users: NatsUsers, p: string): string {
  const entries = NATS_ROLES.map((role) => {
    const perm = rolePermissions(role, p);
    const list = (xs: readonly string[]) => `[${xs.map(quote).join(", ")}]`;
    return [
      `    {`,
      `      user: ${quote(users[role].user)}, password: ${quote(users[role].password)}`,
      `      permissions: {`,
      `        publish: { allow: ${list(perm.publish)} }`,
      `        subscribe: { allow: ${list(perm.subscribe)} }`,
      ...(perm.allowResponses ? [`        allow_responses: true`] : []),
      `      }`,
      `    }`,
    ].join("\n");
  });
  return `authorization {\n  users: [\n${entries.join("\n")}\n  ]\n}\n`;
}

/** The environment a role's service takes its NATS user from. */
export function natsUserEnv(u: NatsUser): Record<string, string> {
  return { SWITCHYARD_NATS_USER: u.user, SWITCHYARD_NATS_PASSWORD: u.password };
}
