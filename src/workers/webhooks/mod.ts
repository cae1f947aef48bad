/**
 * The webhook worker's library (issue 17, "Webhook delivery"): the SSRF
 * guard, Standard Webhooks signing, the retry policy and one delivery
 * attempt. The claim/begin/finish loop that drives them lives in the
 * worker host. The target checks shared with the server are in
 * `src/protocol/hook_targets.ts`, re-exported here.
 *
 * @module
 */
export * from "./guard.ts";
export * from "./sign.ts";
export * from "./schedule.ts";
export * from "./deliver.ts";
export * from "../../protocol/hook_targets.ts";
