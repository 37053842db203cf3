export { Code, codeToString, codeFromValue } from "./code";
export { SwitchyardError, invalidArgument, formatFieldPath } from "./switchyard-error";
export type { FieldPath } from "./switchyard-error";
