/**
 * Rendezvous (highest random weight) assignment of a group's partitions to
 * its members, pure and deterministic: partition p goes to the member with
 * the highest score, the first 8 bytes (big-endian, unsigned) of
 * BLAKE3(`group 00 p(decimal) 00 memberId`); equal scores (never seen in
 * practice) go to the greater member id. A join or a leave therefore moves
 * only the partitions it must: a newcomer takes exactly the partitions it
 * now scores highest on, a leaver's partitions go to the runner-up, and
 * every other partition stays.
 *
 * @module
 */
import { blake3 } from "@noble/hashes/blake3.js";

const utf8 = new TextEncoder();

/** The score of `memberId` for partition `partition` of `group`. */
export function rendezvousScore(
  group: string,
  partition: number,
  memberId: string,
): bigint {
  const input = utf8.encode(`${group}\0${partition}\0${memberId}`);
  const digest = blake3(input);
  return new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0);
}

/** Whether `a` (with score `scoreA`) beats `b` (with `scoreB`). */
function beats(a: string, scoreA: bigint, b: string, scoreB: bigint): boolean {
  return scoreA > scoreB || (scoreA === scoreB && a > b);
}

/** The owner of `partition` among `memberIds` (null when there is none). */
export function ownerOf(
  group: string,
  partition: number,
  memberIds: Iterable<string>,
): string | null {
  let best: string | null = null;
  let bestScore = 0n;
  for (const id of memberIds) {
    const score = rendezvousScore(group, partition, id);
    if (best === null || beats(id, score, best, bestScore)) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}

/** The owner of each of `partitions` partitions among `memberIds`. */
export function assignment(
  group: string,
  partitions: number,
  memberIds: readonly string[],
): (string | null)[] {
  const owners: (string | null)[] = [];
  for (let p = 0; p < partitions; p++) {
    owners.push(ownerOf(group, p, memberIds));
  }
  return owners;
}

/**
 * The owner of `partition` after a membership change, computed from its
 * owner before: `current` (the owner among the old members, or null) still
 * owns it unless it left or one of `added` beats it; an orphaned partition
 * is recomputed over every member. Equal to {@linkcode ownerOf} over
 * `members` when `current` was the old owner (the property test checks),
 * at the cost of `added.length + 1` hashes for a partition whose owner
 * stayed.
 */
export function reassignedOwner(
  group: string,
  partition: number,
  current: string | null,
  members: ReadonlySet<string>,
  added: readonly string[],
): string | null {
  if (current === null || !members.has(current)) {
    return ownerOf(group, partition, members);
  }
  let best = current;
  let bestScore = rendezvousScore(group, partition, current);
  for (const id of added) {
    if (!members.has(id) || id === current) continue;
    const score = rendezvousScore(group, partition, id);
    if (beats(id, score, best, bestScore)) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}
