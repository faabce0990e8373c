// RFC 6902 JSON Patch builders with RFC 6901 pointers. No diffing: callers say what to add,
// replace or remove, and these helpers get the protocol details right (escaping, creating a
// missing parent, index order), which is where hand-written admission patches usually break.

export type PatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

export type Patch = PatchOp[];

/** A pointer as its unescaped reference tokens, e.g. `['metadata', 'annotations', 'taskgrant.io/task-uid']`. */
export type PointerTokens = readonly (string | number)[];

/** RFC 6901 §3: `~` must become `~0` before `/` becomes `~1`, or `/` would decode as `~` + `1`. */
export function escapeToken(token: string | number): string {
  return String(token).replaceAll('~', '~0').replaceAll('/', '~1');
}

export function pointer(tokens: PointerTokens): string {
  return tokens.map((t) => `/${escapeToken(t)}`).join('');
}

/** RFC 6902 `add` replaces an existing member, so it doubles as "set" for object members. */
export function add(tokens: PointerTokens, value: unknown): PatchOp {
  return { op: 'add', path: pointer(tokens), value };
}

export function replace(tokens: PointerTokens, value: unknown): PatchOp {
  return { op: 'replace', path: pointer(tokens), value };
}

export function remove(tokens: PointerTokens): PatchOp {
  return { op: 'remove', path: pointer(tokens) };
}

/**
 * Sets one key of a string map (labels, annotations). RFC 6902 refuses to add below a missing
 * parent, and Kubernetes omits empty maps, so an absent map is created with the entry in it.
 */
export function setMapEntry(mapTokens: PointerTokens, current: unknown, key: string, value: unknown): PatchOp {
  if (typeof current === 'object' && current !== null && !Array.isArray(current)) return add([...mapTokens, key], value);
  return add(mapTokens, { [key]: value });
}

export type ItemEdit = { type: 'keep' } | { type: 'remove' } | { type: 'replace'; value: unknown };

export interface ArrayEdit<T> {
  /** Decided per existing item, against the array as it is before the patch. */
  edit?: (item: T, index: number) => ItemEdit;
  /** New items placed first, in this order. */
  prepend?: readonly unknown[];
  /** New items placed last, in this order. */
  append?: readonly unknown[];
}

/**
 * Ops that edit one array in place. Indices shift as ops apply, so the order is fixed:
 * replacements at the original indices, then removals from the highest index down, then
 * insertions at the front (in reverse, so they end up in the given order), then `-` appends.
 * An absent array is created whole when something is inserted.
 */
export function editArray<T>(tokens: PointerTokens, current: readonly T[] | undefined, spec: ArrayEdit<T>): Patch {
  const prepend = spec.prepend ?? [];
  const append = spec.append ?? [];
  if (current === undefined) return prepend.length + append.length > 0 ? [add(tokens, [...prepend, ...append])] : [];
  const replacements: Patch = [];
  const removals: Patch = [];
  current.forEach((item, index) => {
    const decision = spec.edit ? spec.edit(item, index) : { type: 'keep' as const };
    switch (decision.type) {
      case 'keep':
        return;
      case 'replace':
        replacements.push(replace([...tokens, index], decision.value));
        return;
      case 'remove':
        removals.unshift(remove([...tokens, index]));
        return;
      default: {
        const never: never = decision;
        throw new Error(`unknown array edit ${JSON.stringify(never)}`);
      }
    }
  });
  const inserts = [...prepend].reverse().map((value) => add([...tokens, 0], value));
  const appends = append.map((value) => add([...tokens, '-'], value));
  return [...replacements, ...removals, ...inserts, ...appends];
}
