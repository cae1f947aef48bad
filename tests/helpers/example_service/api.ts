/**
 * A tiny example service, used only by tests, to show that a service is one
 * folder (commands, apply, reads, api) plus one registration line:
 *
 * ```ts
 * new KvStateMachine(store, {}, { extra: [{ id: EXAMPLE_ID, service: exampleService() }] });
 * ```
 *
 * @module
 */
import { encodeEnvelope } from "../../../src/state/envelope.ts";
import type { EnvelopeSession } from "../../../src/state/envelope.ts";
import { type AddCommand, encodeAdd } from "./commands.ts";

export {
  type ApplyCounter,
  type ExampleResult,
  exampleService,
} from "./apply.ts";
export { readCounter } from "./reads.ts";

/** The example service's envelope id (its registration line). */
export const EXAMPLE_ID = 200;

/** The log entry of an add. */
export function exampleEntry(
  command: AddCommand,
  session?: EnvelopeSession,
): Uint8Array {
  return encodeEnvelope({
    serviceId: EXAMPLE_ID,
    ...(session === undefined ? {} : { session }),
    payload: encodeAdd(command),
  });
}
