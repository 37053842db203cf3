import { SwitchyardError } from "@switchyard/errors";
import { LOADTEST_HELP, runLoadtestCommand } from "@switchyard/loadtest";

/** `switchyard-loadtest …` = `switchyard loadtest …` (tools/cli delegates to the same library). */
function parse(argv: string[]): { flags: Record<string, unknown>; positionals: string[] } {
  const flags: Record<string, unknown> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith("--")) {
      positionals.push(a);
      continue;
    }
    const [k, v] = a.slice(2).split("=", 2) as [string, string | undefined];
    if (v !== undefined) flags[k] = v;
    else if (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith("--")) flags[k] = argv[++i];
    else flags[k] = true;
  }
  return { flags, positionals };
}

const parsed = parse(process.argv.slice(2));
const { flags } = parsed;
// `switchyard-loadtest loadtest run …` too: load processes are forked with the CLI's argument shape.
const positionals = parsed.positionals[0] === "loadtest" ? parsed.positionals.slice(1) : parsed.positionals;
if (flags.help || positionals.length === 0) console.log(LOADTEST_HELP);
else
  try {
    await runLoadtestCommand(flags, positionals);
  } catch (e) {
    console.error(`switchyard loadtest: ${SwitchyardError.from(e).message}`);
    process.exitCode = 1;
  }
