import { generateNatsUsers, natsAuthorizationConfig } from "@switchyard/bus";
import { DEFAULT_SUBJECT_PREFIX, subjects } from "@switchyard/contract";
import { str } from "../args";

export const NATS_CONFIG_HELP = `switchyard nats-config [--prefix P] [--secret NAME]
  Prints a nats-server authorization block with a fresh user per role (gateway,
  scheduler, worker, operator), each allowed only its own subjects, for the NATS server
  a Switchyard release connects to (e.g. the nats-io chart's config.merge), and on
  stderr the kubectl command that stores the same passwords in the Secret the chart's
  nats.users.existingSecret names. switchyard up does this itself.
  --prefix P     subject prefix (the chart's nats.subjectPrefix; default ${DEFAULT_SUBJECT_PREFIX})
  --secret NAME  the Secret's name in the printed command (default switchyard-nats-users)`;

export async function runNatsConfig(flags: Record<string, unknown>): Promise<void> {
  const prefix = str(flags, "prefix") ?? DEFAULT_SUBJECT_PREFIX;
  subjects(prefix); // names the field when the prefix is not a valid subject token
  const users = generateNatsUsers();
  process.stdout.write(natsAuthorizationConfig(users, prefix));
  const secret = str(flags, "secret") ?? "switchyard-nats-users";
  const lit = (role: "gateway" | "scheduler" | "worker") => `--from-literal=${role}=${users[role].password}`;
  process.stderr.write(`# store the roles' passwords for the chart (nats.users.existingSecret=${secret}):\nkubectl create secret generic ${secret} ${lit("gateway")} ${lit("scheduler")} ${lit("worker")}\n# operator (CLI): SWITCHYARD_NATS_USER=${users.operator.user} SWITCHYARD_NATS_PASSWORD=${users.operator.password}\n`);
}
