/**
 * Aspen's client module. The typed client (`connect()`) arrives with the node
 * runtime; for now this module exports the shared Raft and protocol types.
 *
 * @module
 */
export type { Entry, LogIndex, NodeId, Term } from "./src/raft/types.ts";
