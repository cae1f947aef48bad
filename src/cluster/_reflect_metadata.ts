/**
 * The smallest `Reflect` metadata shim that `tsyringe` (pulled in by
 * `@peculiar/x509`) checks for at load time. Aspen never uses decorator
 * metadata itself and `reflect-metadata` is not in the import map, so this
 * WeakMap-backed stand-in is enough. Import it before `@peculiar/x509`.
 *
 * @module
 */

type MetadataTable = Map<unknown, unknown>;
const tables = new WeakMap<object, MetadataTable>();

function tableOf(target: object, create: boolean): MetadataTable | undefined {
  let table = tables.get(target);
  if (table === undefined && create) {
    table = new Map();
    tables.set(target, table);
  }
  return table;
}

// deno-lint-ignore no-explicit-any
const reflect = Reflect as any;
if (typeof reflect.getMetadata !== "function") {
  reflect.defineMetadata = (key: unknown, value: unknown, target: object) => {
    tableOf(target, true)!.set(key, value);
  };
  reflect.getOwnMetadata = (key: unknown, target: object) =>
    tableOf(target, false)?.get(key);
  reflect.getMetadata = (key: unknown, target: object): unknown => {
    for (
      let current: object | null = target;
      current !== null;
      current = Object.getPrototypeOf(current)
    ) {
      const table = tableOf(current, false);
      if (table?.has(key)) return table.get(key);
    }
    return undefined;
  };
}
