// Request bodies name their fields: an unknown one is a mistake worth naming, never dropped.

/** The first key of `o` not in `allowed`, cut to 64 characters (it is the caller's text), or undefined. */
export function unknownField(o: object, allowed: readonly string[]): string | undefined {
  for (const key of Object.keys(o)) {
    if (!allowed.includes(key)) return key.length > 64 ? `${key.slice(0, 64)}…` : key;
  }
  return undefined;
}
