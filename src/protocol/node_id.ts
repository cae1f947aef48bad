/**
 * Node ids by prefix: the short id the logs print (or any unique prefix of
 * at least {@linkcode NODE_ID_PREFIX_MIN} characters) names a member, for
 * the CLI and the admin routes alike.
 *
 * @module
 */

/** Fewest characters of a node id prefix accepted in place of the id. */
export const NODE_ID_PREFIX_MIN = 6;

/** What a given node id names among the members. */
export type NodeIdMatch =
  | { readonly kind: "found"; readonly id: string }
  | { readonly kind: "unknown" }
  | { readonly kind: "tooShort" }
  | { readonly kind: "ambiguous"; readonly matches: readonly string[] };

/** Matches `text` against member ids: the id itself wins, then a unique prefix. */
export function matchNodeId(
  text: string,
  ids: readonly string[],
): NodeIdMatch {
  if (ids.includes(text)) return { kind: "found", id: text };
  const matches = text === "" ? [] : ids.filter((id) => id.startsWith(text));
  if (matches.length === 0) return { kind: "unknown" };
  if (text.length < NODE_ID_PREFIX_MIN) return { kind: "tooShort" };
  if (matches.length > 1) return { kind: "ambiguous", matches };
  return { kind: "found", id: matches[0]! };
}

const short = (id: string) => id.slice(0, 10);

/** One readable sentence for a match that names no single member. */
export function nodeIdMatchMessage(
  text: string,
  match: Exclude<NodeIdMatch, { kind: "found" }>,
  ids: readonly string[],
): string {
  switch (match.kind) {
    case "unknown":
      return `Unknown node '${text}': no member's id starts with it (members: ${
        ids.map(short).join(", ")
      })`;
    case "tooShort":
      return `Node id prefix '${text}' is too short: give at least ${NODE_ID_PREFIX_MIN} characters or the whole id`;
    case "ambiguous":
      return `Node id prefix '${text}' is ambiguous: it matches ${
        match.matches.map(short).join(", ")
      }; give more characters`;
  }
}
