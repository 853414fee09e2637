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
    for (let c = text.charCodeAt(i); c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; c = text.charCodeAt(i)) i++;
  };
  const fail = (what: string): never => {
    throw new JsonSyntaxError(`${what} at offset ${i}`);
  };
  const str = (): string => {
    const start = i;
    let end = text.indexOf('"', i + 1);
    const slash = text.indexOf('\\', i + 1);
    if (end >= 0 && (slash < 0 || slash > end)) {
      // No escapes: the text between the quotes is the string (JSON.parse still checks control characters).
      i = end + 1;
      const plain = text.slice(start + 1, end);
      return /[\u0000-\u001f]/.test(plain) ? (JSON.parse(text.slice(start, i)) as string) : plain;
    }
    i++;
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    if (i >= text.length) fail('unterminated string');
    i++;
    end = i;
    return JSON.parse(text.slice(start, end)) as string;
  };
  const value = (): OrderedJson => {
    ws();
    const c = text[i];
    if (c === '"') return str();
    if (c === '{') {
      i++;
      const pairs: Array<[string, OrderedJson]> = [];
      ws();
      if (text[i] === '}') {
        i++;
        return new OrderedObject(pairs);
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a key');
        const k = str();
        ws();
        if (text[i++] !== ':') fail("expected ':'");
        pairs.push([k, value()]);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return new OrderedObject(pairs);
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const items: OrderedJson[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return items;
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return items;
        }
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
