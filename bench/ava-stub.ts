/** Stands in for `ava` inside the benchmark process (see ava-shim.ts). */
type Stub = ((...args: unknown[]) => never) & { serial: Stub; skip: Stub };

const stub = ((): never => {
  throw new Error('ava test registration is not available in the benchmark process');
}) as Stub;
stub.serial = stub;
stub.skip = stub;

export default stub;
