/**
 * MessagePack for the client module's graph, by its full `npm:` specifier:
 * `mod.ts` must load from a project that has no Aspen `deno.json` (whose
 * import map names `@msgpack/msgpack`). The version is the import map's;
 * `tests/front_door_test.ts` checks they agree.
 *
 * @module
 */
export * from "npm:@msgpack/msgpack@3.1.3";
