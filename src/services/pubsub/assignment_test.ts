import assert from "node:assert/strict";
import fc from "fast-check";
import { blake3 } from "@noble/hashes/blake3.js";
import {
  assignment,
  ownerOf,
  reassignedOwner,
  rendezvousScore,
} from "./assignment.ts";

const memberId = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/);
const members = fc.uniqueArray(memberId, { minLength: 1, maxLength: 12 });
const group = fc.stringMatching(/^[A-Za-z0-9._-]{1,20}$/);
const partitions = fc.integer({ min: 1, max: 64 });

Deno.test("rendezvousScore() is the first 8 bytes of BLAKE3(group 00 p 00 member), big-endian", () => {
  const digest = blake3(new TextEncoder().encode("g\u00003\u0000m1"));
  let expected = 0n;
  for (const byte of digest.subarray(0, 8)) {
    expected = (expected << 8n) | BigInt(byte);
  }
  assert.equal(rendezvousScore("g", 3, "m1"), expected);
  assert.notEqual(rendezvousScore("g", 3, "m1"), rendezvousScore("g", 4, "m1"));
});

Deno.test("assignment() gives every partition one owner among the members, whatever their order", () => {
  fc.assert(
    fc.property(group, partitions, members, (g, p, ids) => {
      const owners = assignment(g, p, ids);
      assert.equal(owners.length, p);
      for (const owner of owners) {
        assert.ok(owner !== null && ids.includes(owner));
      }
      assert.deepEqual(assignment(g, p, [...ids].reverse()), owners);
      assert.deepEqual(assignment(g, p, ids), owners, "deterministic");
    }),
  );
  assert.deepEqual(assignment("g", 3, []), [null, null, null]);
});

Deno.test("assignment() moves only the newcomer's partitions on a join and only the leaver's on a leave", () => {
  fc.assert(
    fc.property(group, partitions, members, memberId, (g, p, ids, extra) => {
      fc.pre(!ids.includes(extra));
      const before = assignment(g, p, ids);
      const joined = assignment(g, p, [...ids, extra]);
      for (let i = 0; i < p; i++) {
        assert.ok(joined[i] === before[i] || joined[i] === extra, "join");
      }
      const leaver = ids[0]!;
      const left = assignment(g, p, ids.slice(1));
      for (let i = 0; i < p; i++) {
        if (before[i] !== leaver) assert.equal(left[i], before[i], "leave");
        else assert.notEqual(left[i], leaver);
      }
    }),
  );
});

Deno.test("reassignedOwner() from the old owner equals ownerOf() over the new members", () => {
  fc.assert(
    fc.property(
      group,
      partitions,
      members,
      fc.uniqueArray(memberId, { maxLength: 4 }),
      fc.nat(),
      (g, p, ids, added, dropMask) => {
        const old = ids;
        const kept = old.filter((_, i) => ((dropMask >> (i % 30)) & 1) === 0);
        const fresh = added.filter((id) => !old.includes(id));
        const now = new Set([...kept, ...fresh]);
        for (let i = 0; i < p; i++) {
          const current = ownerOf(g, i, old);
          assert.equal(
            reassignedOwner(g, i, current, now, fresh),
            ownerOf(g, i, now),
          );
        }
      },
    ),
  );
});
