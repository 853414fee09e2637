/** The flags of every command that can work on a cluster; no imports, so `main.ts` loads nothing heavy for them. */

export interface EtcdFlags {
  etcd?: string | undefined;
  'etcd-prefix'?: string | undefined;
  'etcd-ca'?: string | undefined;
  'etcd-cert'?: string | undefined;
  'etcd-key'?: string | undefined;
}

/** The same flags as parseArgs options. */
export const ETCD_OPTIONS = {
  etcd: { type: 'string' },
  'etcd-prefix': { type: 'string' },
  'etcd-ca': { type: 'string' },
  'etcd-cert': { type: 'string' },
  'etcd-key': { type: 'string' },
} as const;
