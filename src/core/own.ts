// Lookups in fixed tables by a string that a device or a message chose. A plain object also
// answers `constructor`, `__proto__`, `toString`, `hasOwnProperty` … from Object.prototype: a
// Tencent report with "state":"constructor" once made a record whose state was the Object
// function (and vanished on disk). Only a table's own entries count.

/** `table[key]` when `key` is one of the table's own entries, else undefined. */
export function own<V>(table: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}
