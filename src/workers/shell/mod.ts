/**
 * The shell worker's library (issue 19, "The shell worker"): the policy,
 * head and tail output capture, process-group records and one attempt's
 * run. The claim loop that feeds it jobs lives in the worker host.
 *
 * @module
 */
export * from "./policy.ts";
export * from "./capture.ts";
export * from "./proc_table.ts";
export * from "./groups.ts";
export * from "./workdir.ts";
export * from "./run.ts";
