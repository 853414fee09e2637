/**
 * Module hooks for the benchmark process: `test/helpers/cyrus.ts` imports
 * `ava` for its test-registration helper, and ava refuses to load outside its
 * own runner. The benchmark uses only that helper's server functions, so
 * `ava` resolves to a stub whose registration functions throw if called.
 */
interface ResolveResult {
  url: string;
  shortCircuit?: boolean;
}
type NextResolve = (specifier: string, context: unknown) => Promise<ResolveResult>;

export async function resolve(specifier: string, context: unknown, next: NextResolve): Promise<ResolveResult> {
  if (specifier === 'ava') return { url: new URL('./ava-stub.js', import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
