/**
 * The test helpers' one source of reproducible pseudo-random numbers.
 */

/** A deterministic PRNG (mulberry32): numbers in [0, 1) from a seed, the same on every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A copy of `items` in a deterministic shuffled order (Fisher-Yates on `prng(seed)`). */
export function shuffled<T>(items: T[], seed: number): T[] {
  const rand = prng(seed);
  const a = items.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
