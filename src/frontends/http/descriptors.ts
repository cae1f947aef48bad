/**
 * Descriptor budget of the HTTP listener: how many descriptors are free at
 * start, and the connection cap that fits them while keeping a reserve for
 * the log, the state store and peers (see `connection_guard.ts`).
 *
 * @module
 */

/** Descriptors kept for the log, the state store, peers, QUIC and workers. */
export const DESCRIPTOR_RESERVE = 256;
/** Descriptors one relayed connection uses (outer socket, relay socket, inner accept). */
export const DESCRIPTORS_PER_CONNECTION = 3;

/**
 * How many more descriptors this process can open now, up to `max`:
 * `path` (a file the node may read) is opened read-only until the system
 * refuses or `max` is reached, then every one is closed again. Measured,
 * not read from the limit, because reading `/proc/self/limits` needs every
 * permission in Deno; and it counts what is really left.
 */
export function availableDescriptors(path: string, max: number): number {
  const opened: Deno.FsFile[] = [];
  try {
    while (opened.length < max) {
      try {
        opened.push(Deno.openSync(path, { read: true }));
      } catch {
        break;
      }
    }
    return opened.length;
  } finally {
    for (const file of opened) file.close();
  }
}

/** Descriptors `connections` relayed connections need, with the reserve. */
export function descriptorsNeeded(connections: number): number {
  return connections * DESCRIPTORS_PER_CONNECTION + DESCRIPTOR_RESERVE;
}

/**
 * The connection cap that fits `descriptors` free ones (keeping
 * {@linkcode DESCRIPTOR_RESERVE}), and a warning when it is below `wanted`.
 */
export function fitConnectionCap(
  wanted: number,
  descriptors: number | null,
): { cap: number; warning: string | null } {
  if (descriptors === null) return { cap: wanted, warning: null };
  const fits = Math.floor(
    (descriptors - DESCRIPTOR_RESERVE) / DESCRIPTORS_PER_CONNECTION,
  );
  if (fits >= wanted) return { cap: wanted, warning: null };
  const cap = Math.max(1, fits);
  return {
    cap,
    warning:
      `only ${descriptors} more descriptors can be opened (ulimit -n), below the ${
        descriptorsNeeded(wanted)
      } that ${wanted} HTTP connections need (${DESCRIPTORS_PER_CONNECTION} each, plus ${DESCRIPTOR_RESERVE} kept for the log, the state store and peers): serving at most ${cap} connections; raise the limit`,
  };
}
