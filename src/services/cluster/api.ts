/**
 * The cluster service's facade for the node (membership, revocations,
 * join admission).
 *
 * @module
 */
export {
  clusterService,
  ClusterState,
  JOIN_TOKEN_FRESH,
  JOIN_TOKEN_FULL,
  JOIN_TOKEN_USED,
  JOIN_TOKENS_MAX,
  REVOKED_MAX,
} from "./apply.ts";
export {
  type ClusterCommand,
  decodeClusterCommand,
  encodeClusterCommand,
} from "./commands.ts";
