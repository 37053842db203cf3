export { Code, codeToString } from "./code";
export { SwitchyardError, invalidArgument, formatFieldPath } from "./switchyard-error";
