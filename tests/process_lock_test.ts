import assert from "node:assert/strict";
import {
  checkLockHistory,
  type LockEvent,
  parseLockEvents,
  revisionOf,
} from "./helpers/lock_history.ts";

function stamp(revision: number, counter = 0): string {
  return revision.toString(16).padStart(16, "0") +
    counter.toString(16).padStart(4, "0");
}

function grant(client: number, revision: number): LockEvent {
  return {
    type: "grant",
    client,
    name: "reg",
    lease: `${client}`.padStart(16, "0"),
    token: stamp(revision),
  };
}

function write(
  client: number,
  tokenRevision: number,
  outcome: "accepted" | "refused" | "unknown",
  revision?: number,
): LockEvent {
  return {
    type: "write",
    client,
    name: "reg",
    token: stamp(tokenRevision),
    outcome,
    ...(revision === undefined ? {} : { versionstamp: stamp(revision, 1) }),
  };
}

Deno.test("revisionOf() reads a token's revision and refuses other text", () => {
  assert.equal(revisionOf(stamp(0x1234, 7)), 0x1234);
  assert.throws(() => revisionOf("zz"), TypeError);
});

Deno.test("checkLockHistory() passes writes made while their token held", () => {
  const report = checkLockHistory([
    grant(1, 10),
    write(1, 10, "accepted", 12),
    grant(2, 14),
    write(2, 14, "accepted", 15),
    // A stale holder's fenced write refused, and one with no answer.
    write(1, 10, "refused"),
    write(3, 9, "unknown"),
  ]);
  assert.deepEqual(report, {
    grants: 2,
    accepted: 2,
    refused: 1,
    unknown: 1,
    stale: [],
  });
});

Deno.test("checkLockHistory() finds an accepted write whose token a newer grant had replaced", () => {
  const report = checkLockHistory([
    grant(1, 10),
    grant(2, 14),
    write(2, 14, "accepted", 15),
    // Client 1 was paused past its TTL and wrote after the lock moved.
    write(1, 10, "accepted", 16),
  ]);
  assert.equal(report.stale.length, 1);
  assert.match(
    report.stale[0]!,
    /^client 1 wrote 'reg' at revision 16 with token 0+a0000, but token 0+e0000 was granted at revision 14/,
  );
});

Deno.test("checkLockHistory() does not blame a write applied before the newer grant", () => {
  const report = checkLockHistory([
    grant(1, 10),
    write(1, 10, "accepted", 13),
    grant(2, 14),
  ]);
  assert.deepEqual(report.stale, []);
});

Deno.test("checkLockHistory() refuses an accepted write without its versionstamp", () => {
  assert.throws(
    () => checkLockHistory([write(1, 10, "accepted")]),
    TypeError,
  );
});

Deno.test("parseLockEvents() keeps event lines and skips logs and cut lines", () => {
  const events = parseLockEvents([
    "starting",
    JSON.stringify(grant(1, 10)),
    '{"type":"write","cli',
    JSON.stringify({ type: "other" }),
    JSON.stringify(write(1, 10, "refused")),
  ]);
  assert.deepEqual(events, [grant(1, 10), write(1, 10, "refused")]);
});
