import assert from "node:assert/strict";
import fc from "fast-check";
import { majorityCommitted, majorityVoteResult } from "./quorum.ts";
import { type LogIndex, type NodeId, nodeId } from "./types.ts";

function ids(count: number): Set<NodeId> {
  return new Set(Array.from({ length: count }, (_, i) => nodeId(`n${i + 1}`)));
}

Deno.test("majorityCommitted() picks the index a majority holds", async (t) => {
  const cases: { acked: number[]; expected: number }[] = [
    { acked: [5], expected: 5 },
    { acked: [5, 3], expected: 3 },
    { acked: [5, 3, 1], expected: 3 },
    { acked: [1, 5, 3, 9], expected: 3 },
    { acked: [7, 7, 2, 2, 9], expected: 7 },
  ];
  for (const { acked, expected } of cases) {
    await t.step(`${JSON.stringify(acked)} → ${expected}`, () => {
      const voters = ids(acked.length);
      const byId = new Map(
        [...voters].map((id, i) => [id, acked[i] as LogIndex]),
      );
      assert.equal(majorityCommitted(voters, (id) => byId.get(id)), expected);
    });
  }
});

Deno.test("majorityCommitted() is held by a quorum and is the largest such index", () => {
  fc.assert(
    fc.property(
      fc.array(fc.nat(100), { minLength: 1, maxLength: 9 }),
      (acked) => {
        const voters = ids(acked.length);
        const byId = new Map(
          [...voters].map((id, i) => [id, acked[i] as LogIndex]),
        );
        const committed = majorityCommitted(voters, (id) => byId.get(id));
        const quorum = Math.floor(acked.length / 2) + 1;
        assert.ok(acked.filter((a) => a >= committed).length >= quorum);
        assert.ok(acked.filter((a) => a >= committed + 1).length < quorum);
      },
    ),
  );
});

Deno.test("majorityCommitted() counts a missing voter as index 0", () => {
  const voters = ids(3);
  assert.equal(
    majorityCommitted(
      voters,
      (id) => (id === "n1" ? 9 as LogIndex : undefined),
    ),
    0,
  );
});

Deno.test("majorityVoteResult() decides once the outcome is certain", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 9 }),
      fc.array(fc.option(fc.boolean(), { nil: undefined }), { maxLength: 9 }),
      (count, raw) => {
        const voters = [...ids(count)];
        const votes = new Map<NodeId, boolean>();
        voters.forEach((id, i) => {
          const vote = raw[i];
          if (vote !== undefined) votes.set(id, vote);
        });
        // A non-voter's vote never counts.
        votes.set(nodeId("outsider"), true);
        const granted = voters.filter((id) => votes.get(id) === true).length;
        const rejected = voters.filter((id) => votes.get(id) === false).length;
        const quorum = Math.floor(count / 2) + 1;
        const expected = granted >= quorum
          ? "won"
          : count - rejected < quorum
          ? "lost"
          : "pending";
        assert.equal(majorityVoteResult(new Set(voters), votes), expected);
      },
    ),
  );
});
