/** Finding an executable the way a shell would, plus a few system folders that a test's PATH may lack. */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';

/** The first executable `program` in PATH and then in `extraDirs`; undefined when there is none. */
export function findExecutable(program: string, extraDirs: string[]): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(extraDirs)) {
    if (!dir) continue;
    const p = join(dir, program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}
