/**
 * The lease against a stalled leader: timed by the clock it answers;
 * timed by ticks (the old lease, kept as the `leaseTickCount` planted bug)
 * it answers from a lease the followers stopped honouring long ago.
 */
import assert from "node:assert/strict";
import { InteractionEnv, parseCommand } from "./_interaction_env.ts";
import { leaseBounds, resolveRaftConfig } from "./config.ts";
import { RaftNode } from "./raft_node.ts";
import type { NodeId } from "./types.ts";

/** Elects node 1 with a fresh lease, stalls it 2 s, reads: the read's trace. */
function readAfterStall(knob: string | null): string {
  const env = new InteractionEnv();
  const run = (line: string) => env.run(parseCommand(line));
  run(`add-nodes 3 read=lease${knob === null ? "" : ` knob=${knob}`}`);
  run("campaign 1");
  run("stabilize");
  run("tick-heartbeat 1");
  run("stabilize");
  run("stall 1 ms=2000");
  run("read-index 1 after-stall");
  return run("process-ready 1");
}

Deno.test("lease: a leader that stalled past its lease confirms the read with a heartbeat round", () => {
  const trace = readAfterStall(null);
  assert.doesNotMatch(trace, /read index=/);
  assert.match(trace, /heartbeat term=1 commit=1 ctx="after-stall"/);
});

Deno.test("lease: the tick-counted lease (planted bug) answers after the same stall", () => {
  // This is what the lease did before it read the clock.
  const trace = readAfterStall("leaseTickCount");
  assert.match(trace, /read index=1 ctx="after-stall"/);
});

Deno.test("lease: sized from the drift bound and delay margin", () => {
  const bounds = leaseBounds({
    electionTicks: 10,
    tickMs: 100,
    clockDrift: 0.1,
    maxDelayMs: 10,
    guarded: true,
  });
  assert.equal(bounds.voteGuardMs, 800);
  assert.ok(Math.abs(bounds.leaseMs - 800 / 1.1) < 1e-9);
  // lease * (1 + drift) <= (E - 1) * tick * (1 - drift) - delay
  assert.ok(bounds.leaseMs * 1.1 <= 9 * 100 * 0.9 - 10 + 1e-9);
  assert.equal(
    leaseBounds({
      electionTicks: 10,
      tickMs: 100,
      clockDrift: 0.1,
      maxDelayMs: 10,
      guarded: false,
    }).leaseMs,
    0,
  );
});

Deno.test("lease: a configuration without margin is refused", () => {
  const random = { nextInt: () => 0 };
  assert.throws(
    () =>
      resolveRaftConfig({
        id: "1" as NodeId,
        voters: ["1" as NodeId],
        electionTicks: 2,
        tickMs: 10,
        clockDrift: 0.3,
        maxDelayMs: 5,
        readOnly: "lease",
        random,
      }),
    /lease has no margin/,
  );
  assert.throws(
    () =>
      resolveRaftConfig({
        id: "1" as NodeId,
        voters: ["1" as NodeId],
        clockDrift: 0.6,
        random,
      }),
    /'clockDrift' must be in \[0, 0.5\)/,
  );
  // Safe reads need no lease margin.
  resolveRaftConfig({
    id: "1" as NodeId,
    voters: ["1" as NodeId],
    electionTicks: 2,
    tickMs: 10,
    clockDrift: 0.3,
    maxDelayMs: 5,
    random,
  });
});

Deno.test("lease: a heartbeat answer whose vote guard is shorter than the lease does not extend it", () => {
  const random = { nextInt: () => 0 };
  const ids = ["1", "2", "3"] as NodeId[];
  const leader = new RaftNode({
    id: ids[0]!,
    voters: ids,
    readOnly: "lease",
    random,
  });
  let now = 0;
  leader.campaign();
  const drain = () => {
    const out = [];
    while (leader.hasReady()) {
      const ready = leader.ready();
      out.push(...ready.messages);
      leader.advance();
    }
    return out;
  };
  drain();
  for (const from of [ids[1]!, ids[2]!]) {
    leader.step({
      type: "preVoteResp",
      from,
      to: ids[0]!,
      term: 1 as never,
      reject: false,
    }, now);
  }
  drain();
  for (const from of [ids[1]!, ids[2]!]) {
    leader.step({
      type: "voteResp",
      from,
      to: ids[0]!,
      term: 1 as never,
      reject: false,
    }, now);
  }
  drain();
  for (const from of [ids[1]!, ids[2]!]) {
    leader.step({
      type: "appResp",
      from,
      to: ids[0]!,
      term: 1 as never,
      index: 1 as never,
      reject: false,
      rejectHint: 0 as never,
      logTerm: 0 as never,
    }, now);
  }
  drain();
  assert.equal(leader.status().role, "leader");
  now = 100;
  leader.tick(now);
  drain();
  // Both followers answer, configured with a shorter election timeout (guard 100 ms).
  for (const from of [ids[1]!, ids[2]!]) {
    leader.step({
      type: "heartbeatResp",
      from,
      to: ids[0]!,
      term: 1 as never,
      context: new Uint8Array(0),
      sentAt: 100,
      voteGuardMs: 100,
    }, now);
  }
  drain();
  leader.readIndex(new TextEncoder().encode("r"), now + 1);
  const ready = leader.ready();
  assert.equal(
    ready.readStates.length,
    0,
    "a too-short guard extended the lease",
  );
  leader.advance();
  // The same answers with a guard covering the lease do extend it.
  for (const from of [ids[1]!, ids[2]!]) {
    leader.step({
      type: "heartbeatResp",
      from,
      to: ids[0]!,
      term: 1 as never,
      context: new Uint8Array(0),
      sentAt: 100,
      voteGuardMs: 800,
    }, now);
  }
  drain();
  // Without a clock reading for the input there is no lease.
  leader.readIndex(new TextEncoder().encode("no-clock"));
  assert.equal(leader.ready().readStates.length, 0);
  leader.advance();
  leader.readIndex(new TextEncoder().encode("s"), now + 2);
  assert.equal(leader.ready().readStates.length, 1);
});
