/** Caps on everything a client controls on the wire (spec 1.7). */
export interface WireLimits {
  /** Longest tag, in bytes. */
  maxTag: number;
  /** Longest command word, in bytes. */
  maxWord: number;
  /** Longest string argument (quoted or literal), in bytes. */
  maxString: number;
  /** Most bytes one command may span, literals included. */
  maxCommand: number;
  /** Longest line during a SASL exchange. */
  maxSaslLine: number;
}

export const DEFAULT_LIMITS: WireLimits = {
  maxTag: 64,
  maxWord: 64,
  // Everything a Debian Cyrus master accepts is accepted too.
  maxString: 131072,
  maxCommand: 512 * 1024,
  maxSaslLine: 32 * 1024,
};
