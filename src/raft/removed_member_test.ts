/**
 * Traffic from a removed member: dropped by the core; accepted by the
 * `nonMemberAppend` planted bug (the old behaviour), where it deposes the
 * leader.
 */
import assert from "node:assert/strict";
import { InteractionEnv, parseCommand } from "./_interaction_env.ts";

function afterForgedAppend(knob: string | null): string {
  const env = new InteractionEnv();
  const run = (line: string) => env.run(parseCommand(line));
  run(`add-nodes 3${knob === null ? "" : ` knob=${knob}`}`);
  for (
    const line of [
      "campaign 1",
      "stabilize",
      "propose 1 a",
      "conf-change 1 type=remove node=3",
      "stabilize",
      "forge-append 3 1",
      "forge-append 3 2",
      "stabilize",
    ]
  ) run(line);
  return run("raft-state");
}

Deno.test("removed member: its append at a higher term changes nothing", () => {
  const state = afterForgedAppend(null);
  assert.match(state, /^1: leader term=1 /m);
  assert.match(state, /^2: follower term=1 vote=1 leader=1 /m);
});

Deno.test("removed member: the planted bug lets the same append depose the leader", () => {
  const state = afterForgedAppend("nonMemberAppend");
  assert.doesNotMatch(state, /^1: leader term=1 /m);
  assert.match(state, /^2: follower term=2 /m);
});
