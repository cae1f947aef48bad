import assert from "node:assert/strict";
import fc from "fast-check";
import { AssertionError } from "../base/assert.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  ENVELOPE_VERSION,
} from "./envelope.ts";

Deno.test("encodeEnvelope() and decodeEnvelope() round-trip every service id, session and payload", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 255 }),
      fc.option(
        fc.record({
          clientId: fc.string({ unit: "grapheme", maxLength: 70 }),
          seq: fc.oneof(fc.nat(), fc.double()),
        }),
        { nil: undefined },
      ),
      fc.uint8Array({ maxLength: 64 }),
      (serviceId, session, payload) => {
        const bytes = encodeEnvelope({ serviceId, session, payload });
        assert.equal(bytes[0], ENVELOPE_VERSION);
        const decoded = decodeEnvelope(bytes);
        assert.equal(decoded.serviceId, serviceId);
        assert.deepEqual(decoded.payload, payload);
        if (session === undefined) assert.equal(decoded.session, undefined);
        else {
          assert.equal(decoded.session?.clientId, session.clientId);
          assert.ok(Object.is(decoded.session?.seq, session.seq));
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("encodeEnvelope() refuses a service id outside 1..255", () => {
  for (const serviceId of [0, 256, 1.5, -1]) {
    assert.throws(
      () => encodeEnvelope({ serviceId, payload: new Uint8Array() }),
      RangeError,
    );
  }
});

Deno.test("decodeEnvelope() refuses anything but an envelope with AssertionError", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), (data) => {
      try {
        decodeEnvelope(data);
      } catch (error) {
        assert.ok(error instanceof AssertionError, String(error));
      }
    }),
    { numRuns: 500 },
  );
  for (
    const data of [
      new Uint8Array([]),
      new Uint8Array([2, 1, 0]),
      new Uint8Array([1, 1, 2]),
      new Uint8Array([1, 1, 1, 0]),
      new Uint8Array([1, 1, 1, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
      new Uint8Array([1, 1, 1, 0, 0, 0, 0, 0]),
    ]
  ) {
    assert.throws(() => decodeEnvelope(data), AssertionError);
  }
});
