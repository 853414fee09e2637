/**
 * LIST and full UPDATE dumps of the whole preloaded directory, checked entry
 * by entry against the dataset (count, order and every byte).
 */
import { MupdateConn, type DataResponse, type RawTripleHandler } from './client.js';
import { EntryBytes, entryAt } from './dataset.js';
import { expectOk, WrongAnswer } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import { withCpu, type Context, type Measurement } from './workload-kit.js';

/** Compares the k-th entry of a full listing with the preloaded directory. */
function checkNth(d: DataResponse, k: number, what: string): void {
  const e = entryAt(k);
  if (d.kind !== 'MAILBOX' || d.args[0] !== e.name || d.args[1] !== e.location || d.args[2] !== e.acl) {
    throw new WrongAnswer(
      `${what}: entry ${k} is ${d.kind} ${JSON.stringify(d.args)}, expected MAILBOX ${JSON.stringify([e.name, e.location, e.acl])}`,
    );
  }
}

const MAILBOX_BYTES = Buffer.from('MAILBOX', 'latin1');

/** buf[start, end) is exactly expected[0, length). */
function sameBytes(buf: Buffer, start: number, end: number, expected: Buffer, length: number): boolean {
  if (end - start !== length) return false;
  for (let i = 0; i < length; i++) if (buf[start + i] !== expected[i]) return false;
  return true;
}

/**
 * Checks a full listing entry by entry, like checkNth: the k-th data
 * response must be exactly MAILBOX entryAt(k). Responses in the usual
 * three-literal shape arrive raw (onRaw) and are compared byte for byte with
 * the expected bytes, built incrementally (EntryBytes, itself compared with
 * entryAt every 4096 entries), so that the client decodes and builds no
 * strings per entry; any other response goes through checkNth (onData).
 */
class ListingCheck {
  count = 0;
  private readonly expected = new EntryBytes(0);

  constructor(
    private readonly what: string,
    private readonly onFirst: () => void,
  ) {}

  readonly onData = (d: DataResponse): void => {
    const k = this.count;
    if (k === 0) this.onFirst();
    checkNth(d, k, this.what);
    this.count = k + 1;
    this.expected.next();
  };

  readonly onRaw: RawTripleHandler = (buf, kindStart, kindEnd, s1, e1, s2, e2, s3, e3) => {
    const k = this.count;
    if (k === 0) this.onFirst();
    const x = this.expected;
    if (
      !sameBytes(buf, kindStart, kindEnd, MAILBOX_BYTES, MAILBOX_BYTES.length) ||
      !sameBytes(buf, s1, e1, x.name, x.nameLength) ||
      !sameBytes(buf, s2, e2, x.location, x.location.length) ||
      !sameBytes(buf, s3, e3, x.acl, x.aclLength)
    ) {
      const args = [buf.toString('latin1', s1, e1), buf.toString('latin1', s2, e2), buf.toString('latin1', s3, e3)];
      checkNth({ tag: '', kind: buf.toString('latin1', kindStart, kindEnd), args }, k, this.what);
      throw new Error(`bench bug: the expected bytes of entry ${k} are not entryAt(${k})`);
    }
    if ((k & 4095) === 0) this.selfCheck(k);
    this.count = k + 1;
    x.next();
  };

  /** The incrementally built bytes are entryAt's. */
  private selfCheck(k: number): void {
    const x = this.expected;
    const e = entryAt(k);
    if (
      x.k !== k ||
      x.name.toString('latin1', 0, x.nameLength) !== e.name ||
      x.location.toString('latin1') !== e.location ||
      x.acl.toString('latin1', 0, x.aclLength) !== e.acl
    ) {
      throw new Error(`bench bug: EntryBytes at ${k} (${x.k}) differs from entryAt(${k})`);
    }
  }
}

async function fullListing(ctx: Context, command: 'LIST' | 'UPDATE'): Promise<Measurement> {
  const conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
  try {
    let firstMs = 0;
    const t0 = performance.now();
    const check = new ListingCheck(command, () => {
      firstMs = performance.now() - t0;
    });
    const { result: status, serverCpuMs, clientCpuMs } = await withCpu(ctx, () => conn.command(command, check.onData, check.onRaw));
    const seconds = (performance.now() - t0) / 1000;
    const count = check.count;
    expectOk(status, command === 'LIST' ? 'list complete' : 'streaming starts', command);
    if (count !== ctx.sizes.entries) throw new WrongAnswer(`${command} returned ${count} entries, expected ${ctx.sizes.entries}`);
    return { value: seconds, correct: true, details: { entries: count, firstEntryMs: Math.round(firstMs), serverCpuMs, clientCpuMs } };
  } finally {
    conn.destroy();
  }
}

export const listAll = (ctx: Context) => fullListing(ctx, 'LIST');
export const dumpAll = (ctx: Context) => fullListing(ctx, 'UPDATE');
