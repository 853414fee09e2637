/** The directory as the protocol sees it (spec 4.1): name -> active or reserved entry. */
export type EntryState = 'active' | 'reserved';

export interface Entry {
  name: Buffer;
  state: EntryState;
  location: Buffer;
  /** Always empty for reserved entries. */
  acl: Buffer;
}

/** One committed change; `entry` null means the name was removed. */
export interface Change {
  seq: number;
  name: Buffer;
  entry: Entry | null;
  previous: Entry | null;
}

/** A write that would take a name from the server that holds it (issue: operator queue). */
export interface ConflictClaim {
  name: Buffer;
  current: Entry;
  claimed: { state: EntryState; location: Buffer; acl: Buffer };
  command: string;
  /** The authorized identity that made the claim. */
  user: string;
  /** The identity that authenticated (records made before it was kept have none: then it was `user`). */
  authcid?: string | undefined;
  peer: string;
}

export type ConflictStatus = 'open' | 'resolved' | 'dismissed';

export interface ConflictRecord extends ConflictClaim {
  id: number;
  status: ConflictStatus;
  firstSeen: string;
  lastSeen: string;
  /** How many times the same claim was made. */
  count: number;
  resolution?: { keep: 'current' | 'claimant' | 'none'; at: string; by: string };
  /** On a decision (resolved): how many times the losing backend made its claim again and was refused (decisions.ts). */
  refused?: number;
  /** When the last of those claims came. */
  lastRefused?: string;
}

/** Writes a decision may make inside the same transaction. */
export interface TxnTools {
  /**
   * Records (or, for a repeat of the same claim, updates) an open conflict.
   * A claim an operator already decided against (decisions.ts) opens
   * nothing: it is counted on that decision, which is returned (status
   * `resolved`).
   */
  recordConflict(claim: ConflictClaim): ConflictRecord;
}

/** What a write decides, given the entry's current state, inside the write transaction. */
export type Decision<R> = { kind: 'put'; entry: Entry; result: R } | { kind: 'delete'; result: R } | { kind: 'keep'; result: R };

/** Which entries a scan yields. */
export interface ScanFilter {
  /** Only entries whose location starts with these bytes (LIST's prefix). */
  locationPrefix?: Buffer | undefined;
  /** Only entries whose server part (spec 4.3) is one of these (UPDATE's host list). */
  servers?: ReadonlySet<string> | undefined;
}

export interface Snapshot {
  /** Sequence number of the last change the snapshot contains. */
  readonly seq: number;
  /** Entries in directory order. */
  entries(): IterableIterator<Entry>;
  /**
   * Entries in directory order as transient views: the entry object and its
   * buffers are reused, valid only until the next step or any other read of
   * the directory in the same thread, whichever comes first (copy what must
   * be kept). For dumps, which encode each entry at once and keep nothing.
   * A filter naming one server (one `servers` element, or a
   * `locationPrefix` with a `!`) reads only that server's entries.
   */
  scan(filter?: ScanFilter): IterableIterator<Entry>;
  find(name: Buffer): Entry | undefined;
  /** Changes with seq in (after, snapshot seq], in commit order; null when the change log no longer holds them all. */
  changesSince(after: number): IterableIterator<Change> | null;
  /** Digest of the logged change `seq` (see changeDigest in codec.ts); null when not in the log. */
  changeDigest(seq: number): string | null;
  close(): void;
}

export type ChangeListener = (change: Change) => void;

/** Directory order (spec 4.5): `cyrus` for 3.6+, `bytes` for 3.0-3.4 backends. */
export type DirectoryOrder = 'cyrus' | 'bytes';

export class StorageError extends Error {}

/**
 * The directory cannot be changed now (a cluster's etcd has no quorum or
 * does not answer); the message says so and is meant for the client's NO.
 */
export class StorageUnavailable extends StorageError {}

/** An operator request on a conflict that does not apply (unknown id, already closed). */
export class ConflictRefusal extends Error {}

/** One name's new state in a batch; null removes it. */
export interface BatchItem {
  name: Buffer;
  entry: Entry | null;
}

export interface DirectoryStore {
  readonly order: DirectoryOrder;
  /** Random id of this directory, fixed at creation: change-log sequence numbers are only meaningful with it. */
  readonly id: string;
  /** Current entry of a name (latest committed state). */
  find(name: Buffer): Entry | undefined;
  /**
   * Atomically reads a name's entry, lets `decide` choose, and writes the
   * decision. Resolves only after the commit is durable and listeners have
   * been told; rejects with StorageError when it could not be stored.
   * `writer` (any object standing for the client, e.g. its connection) lets
   * the store commit a lone client's writes without batching delays.
   */
  mutate<R>(name: Buffer, decide: (current: Entry | undefined, txn: TxnTools) => Decision<R>, writer?: object): Promise<R>;
  listConflicts(status?: ConflictStatus): ConflictRecord[];
  /** How many conflicts are open, without reading them. */
  openConflictCount(): number;
  getConflict(id: number): ConflictRecord | undefined;
  /**
   * Closes an open conflict in one transaction with its directory change:
   * `claimant` puts the claimed entry, `current` keeps the directory as it is,
   * `none` (dismiss) changes nothing. Listeners see the change.
   */
  closeConflict(id: number, keep: 'current' | 'claimant' | 'none', by: string): Promise<ConflictRecord>;
  /**
   * Applies many changes in one durable transaction (unchanged items are
   * skipped) and sets `meta` keys in the same transaction. Resolves with the
   * number of entries that changed.
   */
  applyMany(items: BatchItem[], meta?: Record<string, unknown>): Promise<number>;
  getMeta(key: string): unknown;
  /** A consistent read view; its `seq` tells which changes it already holds. */
  snapshot(): Snapshot;
  subscribe(listener: ChangeListener): () => void;
  /**
   * Resolves once every change committed anywhere before the call has been
   * applied here and told to listeners (a cluster node catching up with
   * etcd: NOOP's promise across nodes). A single store has nothing to wait for.
   */
  sync?(): Promise<void>;
  /**
   * Unmaps the directory file while nothing reads or writes it, so an idle
   * server's RSS no longer counts the pages it touched; false when it could
   * not now. Stores without a local file leave it out.
   */
  releaseMapping?(): Promise<boolean>;
  readonly lastSeq: number;
  /** A cluster node: whether etcd answers now and how far the local view is behind it (for the metrics). */
  health?(): Promise<{ reachable: boolean; viewLagRevisions: number | null }>;
  close(): Promise<void>;
}
