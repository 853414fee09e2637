/**
 * A small JSON reader that keeps the order of object members. JavaScript
 * objects put integer-like keys first, which would reorder ACLs such as
 * `alice lrs 1000 lr` read from a dump.
 */
export type OrderedJson = string | number | boolean | null | OrderedJson[] | OrderedObject;

export class OrderedObject {
  constructor(readonly pairs: Array<[string, OrderedJson]>) {}

  get(key: string): OrderedJson | undefined {
    return this.pairs.find(([k]) => k === key)?.[1];
  }
}

export class JsonSyntaxError extends Error {}

export function parseOrderedJson(text: string): OrderedJson {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const fail = (what: string): never => {
    throw new JsonSyntaxError(`${what} at offset ${i}`);
  };
  const str = (): string => {
    const start = i;
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): OrderedJson => {
    ws();
    const c = text[i];
    if (c === '"') return str();
    if (c === '{') {
      i++;
      const pairs: Array<[string, OrderedJson]> = [];
      ws();
      if (text[i] === '}') { i++; return new OrderedObject(pairs); }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail("expected ':'");
        pairs.push([k, value()]);
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return new OrderedObject(pairs); }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const items: OrderedJson[] = [];
      ws();
      if (text[i] === ']') { i++; return items; }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return items; }
        fail("expected ',' or ']'");
      }
    }
    const m = /^(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 64));
    if (!m) return fail('unexpected character');
    i += m[0].length;
    return JSON.parse(m[0]) as OrderedJson;
  };
  const v = value();
  ws();
  if (i !== text.length) fail('text after the value');
  return v;
}
