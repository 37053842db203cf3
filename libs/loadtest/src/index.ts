export { summarySchema } from "./summary";
export { LOADTEST_HELP, runLoadtestCommand } from "./command";
